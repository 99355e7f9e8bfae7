package discovery

import (
	"encoding/binary"
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
	ch, err := l.Watch(stop)
	if err != nil {
		t.Fatal(err)
	}
	drain(ch) // NewLocal's probe file
	a := advertise(t, other, testEntry("b", 7001))
	waitWake(t, ch, "advertise")
	drain(ch)
	e := testEntry("b", 7002)
	if err := a.Update(e); err != nil {
		t.Fatal(err)
	}
	waitWake(t, ch, "update")
	drain(ch)
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	waitWake(t, ch, "close")
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
	for name, tc := range map[string]struct {
		buf  []byte
		want bool
	}{
		"entry":              {ev(unix.IN_MOVED_TO, "abc.json"), true},
		"temp file":          {ev(unix.IN_CLOSE_WRITE, ".abc.123.tmp"), false},
		"probe then entry":   {append(ev(unix.IN_DELETE, ".probe.1.tmp"), ev(unix.IN_CLOSE_WRITE, "abc.json")...), true},
		"socket":             {ev(unix.IN_DELETE, "abc.sock"), false},
		"overflow":           {ev(unix.IN_Q_OVERFLOW, ""), true},
		"truncated":          {ev(unix.IN_MOVED_TO, "abc.json")[:unix.SizeofInotifyEvent+2], false},
		"shorter than event": {make([]byte, 3), false},
	} {
		t.Run(name, func(t *testing.T) {
			if got := entryEvent(tc.buf); got != tc.want {
				t.Errorf("entryEvent = %v, want %v", got, tc.want)
			}
		})
	}
}
