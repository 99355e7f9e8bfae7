package discovery

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// watchMask: an entry renamed into place (a peer advertises or updates), an entry file closed
// after writing (its owner's descriptor, which is the only one opened for writing: its
// process exited, crashed included, or closed its advert), an entry removed. Readers open
// entries read-only, so their closes (IN_CLOSE_NOWRITE) are not watched: a discovery round
// never wakes the next one.
const watchMask = unix.IN_MOVED_TO | unix.IN_CLOSE_WRITE | unix.IN_DELETE

// Watch tells of changes to the directory's entries: a value on the Watcher's channel (a
// buffer of one, so changes that come together are told once) whenever a peer advertises,
// updates or withdraws its entry, or exits, crashed or not, and which entries their owners
// closed ([Watcher.Closed]). It lets a peer read the directory when something changed rather
// than on a timer, and check only the peers that may have stopped. The watch ends, and the
// channel is closed, when stop is closed. Linux only (inotify); elsewhere it returns
// [ErrWatchUnsupported].
func (l *Local) Watch(stop <-chan struct{}) (*Watcher, error) {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("discovery: watch %s: %w", l.dir, err)
	}
	if _, err := unix.InotifyAddWatch(fd, l.dir, watchMask); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("discovery: watch %s: %w", l.dir, err)
	}
	// Non-blocking, so the runtime's poller waits for it and Close ends a pending Read.
	f := os.NewFile(uintptr(fd), "inotify:"+l.dir)
	out := make(chan struct{}, 1)
	w := &Watcher{C: out, closed: map[string]struct{}{}}
	var once sync.Once
	closeFile := func() { once.Do(func() { f.Close() }) }
	go func() {
		<-stop
		closeFile()
	}()
	go func() {
		defer close(out)
		defer closeFile()
		buf := make([]byte, 16<<10)
		for {
			n, err := f.Read(buf)
			if err != nil {
				if !errors.Is(err, os.ErrClosed) {
					l.log.Debug("discovery: watch ended", "dir", l.dir, "err", err)
				}
				return
			}
			wake, closed, overflow := entryEvents(buf[:n])
			w.record(closed, overflow)
			if wake {
				select {
				case out <- struct{}{}:
				default: // one is pending: the reader will see this change too
				}
			}
		}
	}()
	return w, nil
}

// entryEvents reads the inotify events in buf: wake says whether any names an entry (not a
// temp file), closed lists the IDs of the entries closed after writing (IN_CLOSE_WRITE: their
// owners' descriptors), and overflow says the kernel dropped events (then any entry may have
// changed). A truncated event ends the reading.
func entryEvents(buf []byte) (wake bool, closed []string, overflow bool) {
	for len(buf) >= unix.SizeofInotifyEvent {
		ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[0]))
		end := unix.SizeofInotifyEvent + int(ev.Len)
		if end > len(buf) {
			break
		}
		name := string(bytes.TrimRight(buf[unix.SizeofInotifyEvent:end], "\x00"))
		buf = buf[end:]
		if ev.Mask&unix.IN_Q_OVERFLOW != 0 {
			wake, overflow = true, true
			continue
		}
		if !strings.HasSuffix(name, entrySuffix) || strings.HasPrefix(name, ".") {
			continue
		}
		wake = true
		if ev.Mask&unix.IN_CLOSE_WRITE != 0 {
			closed = append(closed, strings.TrimSuffix(name, entrySuffix))
		}
	}
	return wake, closed, overflow
}
