package discovery

import (
	"encoding/binary"
	"fmt"
	"slices"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// waitWake waits (up to 10 s) for the watch to tell of a change.
func waitWake(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case _, ok := <-ch:
		if !ok {
			t.Fatalf("%s: the watch ended", what)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: the watch told nothing within 10 s", what)
	}
}

// drain empties the watch's pending signal, if any.
func drain(ch <-chan struct{}) {
	select {
	case <-ch:
	default:
	}
}

func TestWatchTellsOfEntries(t *testing.T) {
	l := newTestLocal(t)
	other, err := NewLocal(l.Dir(), testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	w, err := l.Watch(stop)
	if err != nil {
		t.Fatal(err)
	}
	ch := w.C
	drain(ch) // NewLocal's probe file
	a := advertise(t, other, testEntry("b", 7001))
	waitWake(t, ch, "advertise")
	// A start closes no entry: the readers have no peer to check.
	if ids, all := w.Closed(); len(ids) != 0 || all {
		t.Fatalf("after an advertise Closed = %q, %v; want none", ids, all)
	}
	drain(ch)
	e := testEntry("b", 7002)
	if err := a.Update(e); err != nil {
		t.Fatal(err)
	}
	waitWake(t, ch, "update")
	drain(ch)
	w.Closed() // the update's old file may be named: a check of a live peer, which says alive
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	waitWake(t, ch, "close")
	waitClosed(t, w, "b")
	close(stop)
	deadline := time.After(10 * time.Second)
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				return // ended with stop
			}
		case <-deadline:
			t.Fatal("the watch did not end within 10 s of stop")
		}
	}
}

// TestWatchMask: readers' own opens and closes (read-only) must never wake a discovery round,
// or each round would wake the next.
func TestWatchMask(t *testing.T) {
	for _, bit := range []uint32{unix.IN_OPEN, unix.IN_CLOSE_NOWRITE, unix.IN_ACCESS, unix.IN_ATTRIB} {
		if watchMask&bit != 0 {
			t.Errorf("watchMask has %#x, which a reader's open or read of an entry causes", bit)
		}
	}
}

func TestEntryEvent(t *testing.T) {
	ev := func(mask uint32, name string) []byte {
		b := make([]byte, unix.SizeofInotifyEvent)
		binary.NativeEndian.PutUint32(b[4:], mask)
		padded := append([]byte(name), make([]byte, 16-len(name)%16)...)
		binary.NativeEndian.PutUint32(b[12:], uint32(len(padded)))
		return append(b, padded...)
	}
	cat := func(bs ...[]byte) []byte { return slices.Concat(bs...) }
	for name, tc := range map[string]struct {
		buf            []byte
		wake, overflow bool
		closed         []string
	}{
		"entry moved in":     {buf: ev(unix.IN_MOVED_TO, "abc.json"), wake: true},
		"entry deleted":      {buf: ev(unix.IN_DELETE, "abc.json"), wake: true},
		"entry closed":       {buf: ev(unix.IN_CLOSE_WRITE, "abc.json"), wake: true, closed: []string{"abc"}},
		"temp file":          {buf: ev(unix.IN_CLOSE_WRITE, ".abc.123.tmp")},
		"probe then entry":   {buf: cat(ev(unix.IN_DELETE, ".probe.1.tmp"), ev(unix.IN_CLOSE_WRITE, "abc.json")), wake: true, closed: []string{"abc"}},
		"two closed":         {buf: cat(ev(unix.IN_CLOSE_WRITE, "a.json"), ev(unix.IN_MOVED_TO, "b.json"), ev(unix.IN_CLOSE_WRITE, "c.json")), wake: true, closed: []string{"a", "c"}},
		"socket":             {buf: ev(unix.IN_DELETE, "abc.sock")},
		"overflow":           {buf: ev(unix.IN_Q_OVERFLOW, ""), wake: true, overflow: true},
		"truncated":          {buf: ev(unix.IN_MOVED_TO, "abc.json")[:unix.SizeofInotifyEvent+2]},
		"entry then cut":     {buf: cat(ev(unix.IN_CLOSE_WRITE, "a.json"), ev(unix.IN_CLOSE_WRITE, "b.json")[:unix.SizeofInotifyEvent+2]), wake: true, closed: []string{"a"}},
		"shorter than event": {buf: make([]byte, 3)},
	} {
		t.Run(name, func(t *testing.T) {
			wake, closed, overflow := entryEvents(tc.buf)
			if wake != tc.wake || overflow != tc.overflow || !slices.Equal(closed, tc.closed) {
				t.Errorf("entryEvents = %v, %q, %v; want %v, %q, %v", wake, closed, overflow, tc.wake, tc.closed, tc.overflow)
			}
		})
	}
}

// TestWatcherClosed: Closed hands each ID once, and says all after an overflow or past
// maxClosed IDs (then it names none it could not keep, and the next call starts afresh).
func TestWatcherClosed(t *testing.T) {
	w := &Watcher{closed: map[string]struct{}{}}
	w.record([]string{"a", "b", "a"}, false)
	ids, all := w.Closed()
	slices.Sort(ids)
	if !slices.Equal(ids, []string{"a", "b"}) || all {
		t.Fatalf("Closed = %q, %v; want [a b], false", ids, all)
	}
	if ids, all := w.Closed(); len(ids) != 0 || all {
		t.Fatalf("second Closed = %q, %v; want nothing", ids, all)
	}
	w.record(nil, true)
	if _, all := w.Closed(); !all {
		t.Fatal("after an overflow Closed did not say all")
	}
	if _, all := w.Closed(); all {
		t.Fatal("all stayed set after it was told")
	}
	many := make([]string, maxClosed)
	for i := range many {
		many[i] = fmt.Sprint("p", i)
	}
	w.record(many, false)
	if ids, all := w.Closed(); len(ids) != maxClosed || all {
		t.Fatalf("at maxClosed IDs Closed = %d IDs, %v; want %d, false", len(ids), all, maxClosed)
	}
	w.record(append(many, "one-more"), false)
	if ids, all := w.Closed(); len(ids) != maxClosed || !all {
		t.Fatalf("past maxClosed IDs Closed = %d IDs, %v; want %d, true", len(ids), all, maxClosed)
	}
}
