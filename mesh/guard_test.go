package mesh

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"testing"
	"testing/synctest"
	"time"
)

// pipeConn is one end of a net.Pipe that says it comes from a given address.
type pipeConn struct {
	net.Conn
	remote net.Addr
}

func (c pipeConn) RemoteAddr() net.Addr { return c.remote }

// testStream is a stream admitted by a guard and the far end that feeds it.
type testStream struct {
	c    *guardedConn
	peer net.Conn // the sender's end
}

func admitFrom(t *testing.T, g *guard, ip string) testStream {
	t.Helper()
	ours, theirs := net.Pipe()
	t.Cleanup(func() { ours.Close(); theirs.Close() })
	addr := &net.TCPAddr{IP: net.ParseIP(ip), Port: 40000}
	return testStream{c: g.admit(pipeConn{Conn: ours, remote: addr}, time.Now()), peer: theirs}
}

// send writes n bytes from the far end and reads them through the guard, returning how many
// arrived and the read error.
func (s testStream) send(n int) (int, error) {
	go func() {
		s.peer.Write(bytes.Repeat([]byte{'x'}, n))
	}()
	buf := make([]byte, n)
	got, err := io.ReadFull(s.c, buf)
	return got, err
}

// dropped reports whether the guard closed s: a read from it fails at once.
func (s testStream) dropped() bool {
	if !s.c.slot.Removed() {
		return false
	}
	_, err := s.c.Conn.Read(make([]byte, 1))
	return errors.Is(err, io.ErrClosedPipe)
}

func testGuard(lim guardLimits) *guard {
	if lim.Timeout == 0 {
		lim.Timeout = time.Minute
	}
	return newGuard(lim, slog.New(slog.DiscardHandler))
}

func TestGuardConnectionLimits(t *testing.T) {
	t.Run("per source: at the limit none dropped, past it the oldest of that source", func(t *testing.T) {
		g := testGuard(guardLimits{PerSource: 3, Total: 100, MaxRead: 1 << 20, SourceBytes: 1 << 20, TotalBytes: 1 << 20})
		a := []testStream{admitFrom(t, g, "10.0.0.1"), admitFrom(t, g, "10.0.0.1"), admitFrom(t, g, "10.0.0.1")}
		b := admitFrom(t, g, "10.0.0.2")
		for i, s := range append(a, b) {
			if s.dropped() {
				t.Fatalf("stream %d dropped at the limit", i)
			}
		}
		a4 := admitFrom(t, g, "10.0.0.1")
		if !a[0].dropped() {
			t.Fatal("the oldest stream of the source was not dropped past the limit")
		}
		for i, s := range []testStream{a[1], a[2], a4, b} {
			if s.dropped() {
				t.Fatalf("stream %d dropped, want only the oldest of the source", i)
			}
		}
		if n, _, st := g.snapshot(); n != 4 || st.DroppedSource != 1 || st.DroppedTotal != 0 {
			t.Fatalf("open %d, stats %+v; want 4 open and one dropped per source", n, st)
		}
		// A dropped stream's reads fail; its Close is harmless and releases nothing twice.
		if _, err := a[0].c.Read(make([]byte, 1)); !errors.Is(err, errStreamDropped) {
			t.Fatalf("read of a dropped stream: %v", err)
		}
		a[0].c.Close()
		a[0].c.Close()
		if n, _, _ := g.snapshot(); n != 4 {
			t.Fatalf("open %d after closing a dropped stream, want 4", n)
		}
	})
	t.Run("total: at the limit none dropped, past it the oldest of all", func(t *testing.T) {
		g := testGuard(guardLimits{PerSource: 10, Total: 4, MaxRead: 1 << 20, SourceBytes: 1 << 20, TotalBytes: 1 << 20})
		ss := []testStream{admitFrom(t, g, "10.0.0.1"), admitFrom(t, g, "10.0.0.2"), admitFrom(t, g, "10.0.0.1"), admitFrom(t, g, "10.0.0.3")}
		for i, s := range ss {
			if s.dropped() {
				t.Fatalf("stream %d dropped at the limit", i)
			}
		}
		e := admitFrom(t, g, "10.0.0.4")
		if !ss[0].dropped() || e.dropped() {
			t.Fatal("past the total limit the oldest stream must go and the new one stay")
		}
		for _, s := range ss[1:] {
			if s.dropped() {
				t.Fatal("more than the oldest stream dropped")
			}
		}
		if n, _, st := g.snapshot(); n != 4 || st.DroppedTotal != 1 {
			t.Fatalf("open %d, stats %+v; want 4 open and one dropped in total", n, st)
		}
	})
	t.Run("close releases", func(t *testing.T) {
		g := testGuard(guardLimits{PerSource: 2, Total: 2, MaxRead: 100, SourceBytes: 100, TotalBytes: 100})
		a, b := admitFrom(t, g, "10.0.0.1"), admitFrom(t, g, "10.0.0.1")
		if _, err := a.send(10); err != nil {
			t.Fatal(err)
		}
		a.c.Close()
		c := admitFrom(t, g, "10.0.0.1")
		if b.dropped() || c.dropped() {
			t.Fatal("a stream was dropped although a closed one made room")
		}
		if n, bytes, st := g.snapshot(); n != 2 || bytes != 0 || st != (guardStats{}) {
			t.Fatalf("open %d, bytes %d, stats %+v; want 2, 0, none", n, bytes, st)
		}
	})
}

func TestGuardByteLimits(t *testing.T) {
	t.Run("per stream: MaxRead bytes pass, one more does not", func(t *testing.T) {
		g := testGuard(guardLimits{PerSource: 5, Total: 5, MaxRead: 1000, SourceBytes: 1 << 20, TotalBytes: 1 << 20})
		s := admitFrom(t, g, "10.0.0.1")
		if n, err := s.send(1000); n != 1000 || err != nil {
			t.Fatalf("read %d of MaxRead bytes: %v", n, err)
		}
		go s.peer.Write([]byte("y"))
		if n, err := s.c.Read(make([]byte, 1)); n != 0 || !errors.Is(err, errStreamDropped) {
			t.Fatalf("byte MaxRead+1: read %d, %v; want errStreamDropped", n, err)
		}
		if _, _, st := g.snapshot(); st.OverRead != 1 {
			t.Fatalf("stats %+v, want one over-read", st)
		}
	})
	t.Run("per source: at the budget both stay, past it the oldest other goes", func(t *testing.T) {
		g := testGuard(guardLimits{PerSource: 5, Total: 5, MaxRead: 600, SourceBytes: 1000, TotalBytes: 1 << 20})
		a1, a2, b := admitFrom(t, g, "10.0.0.1"), admitFrom(t, g, "10.0.0.1"), admitFrom(t, g, "10.0.0.2")
		if _, err := a1.send(600); err != nil {
			t.Fatal(err)
		}
		if _, err := b.send(600); err != nil { // another source: its own budget
			t.Fatal(err)
		}
		if _, err := a2.send(400); err != nil || a1.dropped() {
			t.Fatalf("reading up to the source budget: %v, first dropped %v", err, a1.dropped())
		}
		if _, err := a2.send(1); err != nil {
			t.Fatalf("the newer stream was refused instead of the older: %v", err)
		}
		if !a1.dropped() || b.dropped() {
			t.Fatal("past the source budget the oldest stream of that source must go, and only it")
		}
		if _, bytes, st := g.snapshot(); bytes != 1001 || st.DroppedBytes != 1 {
			t.Fatalf("bytes %d, stats %+v; want 1001 held (b 600, a2 401) and one dropped", bytes, st)
		}
	})
	t.Run("per source: a lone stream past the budget is cut off", func(t *testing.T) {
		g := testGuard(guardLimits{PerSource: 5, Total: 5, MaxRead: 1 << 20, SourceBytes: 500, TotalBytes: 1 << 20})
		s := admitFrom(t, g, "10.0.0.1")
		if n, err := s.send(500); n != 500 || err != nil {
			t.Fatalf("read %d of the source budget: %v", n, err)
		}
		go s.peer.Write([]byte("y"))
		if _, err := s.c.Read(make([]byte, 1)); !errors.Is(err, errStreamDropped) {
			t.Fatalf("past the budget: %v, want errStreamDropped", err)
		}
	})
	t.Run("total: at the budget all stay, past it the oldest goes", func(t *testing.T) {
		g := testGuard(guardLimits{PerSource: 5, Total: 5, MaxRead: 1 << 20, SourceBytes: 1 << 20, TotalBytes: 900})
		a, b, c := admitFrom(t, g, "10.0.0.1"), admitFrom(t, g, "10.0.0.2"), admitFrom(t, g, "10.0.0.3")
		for _, s := range []testStream{a, b, c} {
			if _, err := s.send(300); err != nil {
				t.Fatal(err)
			}
		}
		if a.dropped() || b.dropped() || c.dropped() {
			t.Fatal("a stream dropped at the total budget")
		}
		if _, err := c.send(1); err != nil {
			t.Fatal(err)
		}
		if !a.dropped() || b.dropped() || c.dropped() {
			t.Fatal("past the total budget the oldest stream must go, and only it")
		}
	})
}

// TestGuardDeadline runs in a synctest bubble: the stream is a net.Pipe,
// whose deadlines are timers on the bubble's clock, so the guard's own
// 10 s default is used and an idle read is seen to end exactly at it.
func TestGuardDeadline(t *testing.T) { synctest.Test(t, testGuardDeadline) }

func testGuardDeadline(t *testing.T) {
	timeout := defaultGuardLimits.Timeout
	g := testGuard(guardLimits{PerSource: 5, Total: 5, MaxRead: 100, SourceBytes: 100, TotalBytes: 100, Timeout: timeout})
	admitted := time.Now()
	s := admitFrom(t, g, "10.0.0.1")
	// memberlist sets its own, later deadline; the guard's stays.
	if err := s.c.SetDeadline(time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	for name, d := range map[string]time.Time{"none": {}, "later": time.Now().Add(time.Hour)} {
		if got := s.c.clamp(d); !got.Equal(s.c.deadline) {
			t.Errorf("%s: clamped to %v, want the guard's %v", name, got, s.c.deadline)
		}
	}
	if sooner := time.Now().Add(time.Millisecond); !s.c.clamp(sooner).Equal(sooner) {
		t.Error("a sooner deadline was not kept")
	}
	done := make(chan error, 1)
	go func() {
		_, err := s.c.Read(make([]byte, 1))
		done <- err
	}()
	time.Sleep(timeout - time.Millisecond) // the bubble's clock
	synctest.Wait()
	select {
	case err := <-done:
		t.Fatalf("idle read ended %s after admission, before the guard's %s: %v", time.Since(admitted), timeout, err)
	default:
	}
	time.Sleep(time.Millisecond)
	synctest.Wait()
	select {
	case err := <-done:
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("idle read: %v, want a deadline error", err)
		}
	default:
		t.Fatalf("an idle stream outlived the guard's deadline of %s", timeout)
	}
}

// The header check: an encrypted message announced to end exactly at MaxRead is read, one
// byte longer is refused before memberlist sees the header; other message types are left to
// memberlist (and the byte caps).
func TestGuardHeaderCheck(t *testing.T) {
	const maxRead = 1000
	tests := map[string]struct {
		header []byte
		refuse bool
	}{
		"encrypted, ends at MaxRead":    {header: []byte{encryptMsg, 0, 0, 0x03, 0xe3}, refuse: false}, // 5 + 995
		"encrypted, one byte past":      {header: []byte{encryptMsg, 0, 0, 0x03, 0xe4}, refuse: true},  // 5 + 996
		"encrypted, memberlist's 20 MB": {header: []byte{encryptMsg, 0x01, 0x3f, 0xff, 0xff}, refuse: true},
		"not encrypted":                 {header: []byte{6, 0xff, 0xff, 0xff, 0xff}, refuse: false},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			g := testGuard(guardLimits{PerSource: 5, Total: 5, MaxRead: maxRead, SourceBytes: 1 << 20, TotalBytes: 1 << 20})
			s := admitFrom(t, g, "10.0.0.1")
			go s.peer.Write(tc.header[:2]) // split, as TCP may deliver it
			got := make([]byte, 0, 5)
			var err error
			for len(got) < 5 && err == nil {
				if len(got) == 2 {
					go s.peer.Write(tc.header[2:])
				}
				var n int
				buf := make([]byte, 5-len(got))
				n, err = s.c.Read(buf)
				got = append(got, buf[:n]...)
			}
			if tc.refuse {
				if !errors.Is(err, errStreamDropped) || !s.dropped() {
					t.Fatalf("header %x: read %x, %v; want errStreamDropped and the stream dropped", tc.header, got, err)
				}
				return
			}
			if err != nil || !bytes.Equal(got, tc.header) || s.dropped() {
				t.Fatalf("header %x: read %x, %v; want it passed on", tc.header, got, err)
			}
		})
	}
}
