package connlimit

import (
	"net"
	"net/netip"
	"sync"
)

// Limits configures a Limiter.
type Limits struct {
	// PerSource and Total bound the open slots of one source address and of all. When a new
	// slot would pass either, the oldest slot (of that source, or of all) is dropped. Values
	// below 1 are taken as 1: the newest connection is always admitted.
	PerSource, Total int
	// MaxBytes bounds the bytes one slot may reserve (Reserve); 0 means no bound.
	MaxBytes int64
	// SourceBytes and TotalBytes bound the bytes reserved and not released by the slots of
	// one source and of all. A Reserve that would pass them drops the oldest other slots
	// first (of that source, then of all); if it still cannot fit, it fails and its own slot
	// is removed. 0 means no bound.
	SourceBytes, TotalBytes int64
}

// Stats count what a Limiter dropped or refused.
type Stats struct {
	DroppedSource, DroppedTotal int // oldest slots dropped for a new one (per source, in all)
	DroppedBytes                int // slots dropped to make room for another's Reserve
	OverRead                    int // slots removed at MaxBytes, with no budget left, or by Refuse
}

// Limiter tracks open slots. It is safe for concurrent use.
type Limiter struct {
	lim    Limits
	notify func(src netip.Addr, st Stats)

	mu      sync.Mutex
	slots   []*Slot // open, oldest first; guarded by mu
	sources map[netip.Addr]*sourceUse
	bytes   int64
	stats   Stats
}

type sourceUse struct {
	slots int
	bytes int64
}

// Slot is one admitted connection's share of the limits.
type Slot struct {
	l    *Limiter
	src  netip.Addr
	drop func()

	// Guarded by l.mu.
	bytes   int64
	removed bool
}

// New returns a Limiter for lim. notify, if not nil, is called (without the Limiter's lock
// held, possibly concurrently) after every call that dropped or refused a slot, with the
// source whose call it was and the counters then; it must not block for long.
func New(lim Limits, notify func(src netip.Addr, st Stats)) *Limiter {
	lim.PerSource, lim.Total = max(lim.PerSource, 1), max(lim.Total, 1)
	return &Limiter{lim: lim, notify: notify, sources: make(map[netip.Addr]*sourceUse)}
}

// Source is the address a connection from a counts under: its IP address (the port changes
// with every connection), IPv4-mapped IPv6 addresses as the IPv4 address they map. An
// address that is not IP (a pipe in tests, a Unix socket) is the zero Addr, one source.
func Source(a net.Addr) netip.Addr {
	switch a := a.(type) {
	case *net.TCPAddr:
		return a.AddrPort().Addr().Unmap()
	case nil:
		return netip.Addr{}
	}
	if ap, err := netip.ParseAddrPort(a.String()); err == nil {
		return ap.Addr().Unmap()
	}
	return netip.Addr{}
}

// Admit takes a slot for a new connection from src, dropping the oldest slots the limits
// require: their drop functions are called before Admit returns (drop must close the
// connection, so that whatever serves it ends). The new slot is always admitted. drop is
// called at most once, and only if the Limiter evicts the slot: never after Release.
func (l *Limiter) Admit(src netip.Addr, drop func()) *Slot {
	s := &Slot{l: l, src: src, drop: drop}
	var dropped []*Slot
	l.mu.Lock()
	su := l.sources[src]
	if su == nil {
		su = &sourceUse{}
		l.sources[src] = su
	}
	for su.slots >= l.lim.PerSource {
		old := l.oldestLocked(src, nil)
		l.removeLocked(old)
		l.stats.DroppedSource++
		dropped = append(dropped, old)
	}
	for len(l.slots) >= l.lim.Total {
		old := l.slots[0]
		l.removeLocked(old)
		l.stats.DroppedTotal++
		dropped = append(dropped, old)
	}
	su.slots++
	l.slots = append(l.slots, s)
	st := l.stats
	l.mu.Unlock()
	l.dropAll(dropped, src, st, len(dropped) > 0)
	return s
}

// dropAll calls the drop functions of slots already removed, then notify if told to.
func (l *Limiter) dropAll(dropped []*Slot, src netip.Addr, st Stats, notify bool) {
	for _, s := range dropped {
		if s.drop != nil {
			s.drop()
		}
	}
	if notify && l.notify != nil {
		l.notify(src, st)
	}
}

// oldestLocked returns the oldest open slot of src other than except. There is one whenever
// the source's count is above zero (or above one, with except one of them).
func (l *Limiter) oldestLocked(src netip.Addr, except *Slot) *Slot {
	for _, s := range l.slots {
		if s.src == src && s != except {
			return s
		}
	}
	return nil
}

// removeLocked forgets s and releases what it held. l.mu is held.
func (l *Limiter) removeLocked(s *Slot) {
	if s == nil || s.removed {
		return
	}
	s.removed = true
	for i, o := range l.slots {
		if o == s {
			l.slots = append(l.slots[:i], l.slots[i+1:]...)
			break
		}
	}
	su := l.sources[s.src]
	su.slots--
	su.bytes -= s.bytes
	if su.slots == 0 {
		delete(l.sources, s.src)
	}
	l.bytes -= s.bytes
}

// over reports whether n more bytes would pass limit (0: none) from used.
func over(used, n, limit int64) bool { return limit > 0 && used+n > limit }

// Release gives the slot's share back (the connection authenticated or ended). It may be
// called more than once, and after the slot was dropped.
func (s *Slot) Release() {
	s.l.mu.Lock()
	s.l.removeLocked(s)
	s.l.mu.Unlock()
}

// Removed reports whether the slot was released, dropped or refused.
func (s *Slot) Removed() bool {
	s.l.mu.Lock()
	defer s.l.mu.Unlock()
	return s.removed
}

// Refuse removes the slot as over-read (the connection announced more than it may send):
// counted, and notified, but its drop function is not called: the caller closes it.
func (s *Slot) Refuse() {
	l := s.l
	l.mu.Lock()
	if s.removed {
		l.mu.Unlock()
		return
	}
	l.removeLocked(s)
	l.stats.OverRead++
	st := l.stats
	l.mu.Unlock()
	l.dropAll(nil, s.src, st, true)
}

// Reserve accounts for up to want more bytes read on the slot and returns how many may be
// read: 0 means the connection must stop (the slot was removed, reached MaxBytes, or no room
// could be made; the slot is then removed, and the caller closes the connection). Making room
// drops the oldest other slots, whose drop functions are called.
func (s *Slot) Reserve(want int64) int64 {
	l := s.l
	var dropped []*Slot
	l.mu.Lock()
	n := want
	if l.lim.MaxBytes > 0 {
		n = min(n, l.lim.MaxBytes-s.bytes)
	}
	if s.removed || n <= 0 {
		if !s.removed {
			l.removeLocked(s)
			l.stats.OverRead++
		}
		l.mu.Unlock()
		return 0
	}
	su := l.sources[s.src]
	for over(su.bytes, n, l.lim.SourceBytes) {
		old := l.oldestLocked(s.src, s)
		if old == nil {
			break
		}
		l.removeLocked(old)
		l.stats.DroppedBytes++
		dropped = append(dropped, old)
	}
	for over(l.bytes, n, l.lim.TotalBytes) && len(l.slots) > 1 {
		old := l.slots[0]
		if old == s {
			old = l.slots[1]
		}
		l.removeLocked(old)
		l.stats.DroppedBytes++
		dropped = append(dropped, old)
	}
	if over(su.bytes, n, l.lim.SourceBytes) || over(l.bytes, n, l.lim.TotalBytes) {
		l.removeLocked(s)
		l.stats.OverRead++
		n = 0
	} else {
		s.bytes += n
		su.bytes += n
		l.bytes += n
	}
	st := l.stats
	l.mu.Unlock()
	l.dropAll(dropped, s.src, st, len(dropped) > 0 || n == 0)
	return n
}

// Unreserve gives back the part of a reservation a read did not use.
func (s *Slot) Unreserve(unused int64) {
	if unused <= 0 {
		return
	}
	l := s.l
	l.mu.Lock()
	defer l.mu.Unlock()
	if s.removed {
		return
	}
	s.bytes -= unused
	l.sources[s.src].bytes -= unused
	l.bytes -= unused
}

// Snapshot returns the number of open slots, the bytes they hold, and the counters.
func (l *Limiter) Snapshot() (slots int, bytes int64, st Stats) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.slots), l.bytes, l.stats
}

// SourceSlots returns the number of open slots of src.
func (l *Limiter) SourceSlots(src netip.Addr) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	if su := l.sources[src]; su != nil {
		return su.slots
	}
	return 0
}
