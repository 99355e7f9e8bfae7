package discovery

import "sync"

// maxClosed bounds the IDs a Watcher remembers between two calls of Closed: past it, Closed
// says "all" (the reader then checks every peer, as when the kernel's queue overflows).
const maxClosed = 1024

// Watcher tells of changes to the run dir's entries ([Local.Watch]).
type Watcher struct {
	// C receives a value (a buffer of one, so changes that come together are told once)
	// whenever a peer advertises, updates or withdraws its entry, or exits, crashed or not.
	// It is closed when the watch ends.
	C <-chan struct{}

	mu     sync.Mutex
	closed map[string]struct{} // IDs whose entries their owners closed; guarded by mu
	all    bool                // the watch could not tell which; guarded by mu
}

// Closed returns the IDs of the peers whose entries were closed by their owner since the
// last call: the only descriptor of an entry opened for writing is its owner's, so this is
// what its process's exit (a crash included), a withdrawal or the replaced file of an update
// look like. A peer that started, or rewrote its entry and lives on, is not named (a rewrite
// may name it: its old file is closed). all is true when the watch cannot tell which entries
// changed (the kernel's queue overflowed, or more than maxClosed IDs came between two
// calls): then any peer may have stopped. Call it after a value on C, which is sent after
// the IDs it tells of are recorded.
func (w *Watcher) Closed() (ids []string, all bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for id := range w.closed {
		ids = append(ids, id)
	}
	clear(w.closed)
	all, w.all = w.all, false
	return ids, all
}

// record notes what one read of events told, before C is signalled.
func (w *Watcher) record(closed []string, overflow bool) {
	if len(closed) == 0 && !overflow {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if overflow {
		w.all = true
	}
	for _, id := range closed {
		if len(w.closed) >= maxClosed {
			w.all = true
			break
		}
		w.closed[id] = struct{}{}
	}
}
