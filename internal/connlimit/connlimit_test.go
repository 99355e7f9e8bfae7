package connlimit

import (
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
)

var (
	srcA = netip.MustParseAddr("10.0.0.1")
	srcB = netip.MustParseAddr("10.0.0.2")
	srcC = netip.MustParseAddr("10.0.0.3")
)

// tslot is a slot and whether its drop function ran (and how often).
type tslot struct {
	*Slot
	drops *atomic.Int32
}

func admit(l *Limiter, src netip.Addr) tslot {
	var n atomic.Int32
	return tslot{Slot: l.Admit(src, func() { n.Add(1) }), drops: &n}
}

// checkOpen fails unless exactly the slots marked open are open, and each other was dropped
// once.
func checkOpen(t *testing.T, slots []tslot, open ...bool) {
	t.Helper()
	for i, s := range slots {
		if s.Removed() == open[i] {
			t.Errorf("slot %d: removed %v, want open %v", i, s.Removed(), open[i])
		}
		if want := int32(map[bool]int32{true: 0, false: 1}[open[i]]); s.drops.Load() != want {
			t.Errorf("slot %d: dropped %d times, want %d", i, s.drops.Load(), want)
		}
	}
}

func TestPerSource(t *testing.T) {
	l := New(Limits{PerSource: 3, Total: 100}, nil)
	a := []tslot{admit(l, srcA), admit(l, srcA), admit(l, srcA), admit(l, srcB)}
	checkOpen(t, a, true, true, true, true) // at the limit: nobody dropped
	a = append(a, admit(l, srcA))           // one past: the oldest of srcA goes, srcB stays
	checkOpen(t, a, false, true, true, true, true)
	a = append(a, admit(l, srcA)) // and the next oldest of srcA
	checkOpen(t, a, false, false, true, true, true, true)
	if n, _, st := l.Snapshot(); n != 4 || st != (Stats{DroppedSource: 2}) {
		t.Fatalf("open %d, stats %+v; want 4 and two dropped per source", n, st)
	}
	if got := l.SourceSlots(srcA); got != 3 {
		t.Fatalf("srcA holds %d slots, want 3", got)
	}
}

func TestTotal(t *testing.T) {
	l := New(Limits{PerSource: 10, Total: 4}, nil)
	s := []tslot{admit(l, srcA), admit(l, srcB), admit(l, srcA), admit(l, srcC)}
	checkOpen(t, s, true, true, true, true)
	s = append(s, admit(l, srcC)) // one past: the oldest of all, whatever its source
	checkOpen(t, s, false, true, true, true, true)
	s = append(s, admit(l, srcA))
	checkOpen(t, s, false, false, true, true, true, true)
	if n, _, st := l.Snapshot(); n != 4 || st != (Stats{DroppedTotal: 2}) {
		t.Fatalf("open %d, stats %+v; want 4 and two dropped in total", n, st)
	}
}

// A flood from one source evicts only its own slots while under the total: the other
// source's slot, though older, stays.
func TestFloodDoesNotEvictOthers(t *testing.T) {
	l := New(Limits{PerSource: 8, Total: 16}, nil)
	good := admit(l, srcB)
	for range 1000 {
		admit(l, srcA)
	}
	if good.Removed() || good.drops.Load() != 0 {
		t.Fatal("a flood from another source dropped the legitimate slot")
	}
	if n, _, st := l.Snapshot(); n != 9 || st.DroppedSource != 992 || st.DroppedTotal != 0 {
		t.Fatalf("open %d, stats %+v; want 9 open, 992 dropped per source", n, st)
	}
	// And a newcomer always gets in, even under a flood from many sources.
	for i := range 1000 {
		admit(l, netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)}))
	}
	newest := admit(l, srcC)
	if newest.Removed() {
		t.Fatal("the newest slot was not admitted")
	}
}

func TestReleaseAndDropOnce(t *testing.T) {
	l := New(Limits{PerSource: 1, Total: 1}, nil)
	a := admit(l, srcA)
	a.Release()
	a.Release() // idempotent
	b := admit(l, srcA)
	if a.drops.Load() != 0 || b.Removed() {
		t.Fatal("a released slot was dropped, or its room not given back")
	}
	c := admit(l, srcB) // over the total: b is dropped, once
	b.Release()         // after the drop: harmless
	if b.drops.Load() != 1 || c.Removed() {
		t.Fatalf("b dropped %d times, c removed %v", b.drops.Load(), c.Removed())
	}
	if n, _, st := l.Snapshot(); n != 1 || st != (Stats{DroppedTotal: 1}) {
		t.Fatalf("open %d, stats %+v", n, st)
	}
}

func TestLimitsBelowOne(t *testing.T) {
	l := New(Limits{}, nil)
	a, b := admit(l, srcA), admit(l, srcB)
	checkOpen(t, []tslot{a, b}, false, true)
}

func TestBytes(t *testing.T) {
	t.Run("MaxBytes: at it, then one past", func(t *testing.T) {
		l := New(Limits{PerSource: 5, Total: 5, MaxBytes: 100}, nil)
		s := admit(l, srcA)
		if n := s.Reserve(60); n != 60 {
			t.Fatalf("reserved %d of 60", n)
		}
		if n := s.Reserve(60); n != 40 { // capped to what is left
			t.Fatalf("reserved %d, want the 40 left", n)
		}
		if n := s.Reserve(1); n != 0 || !s.Removed() {
			t.Fatalf("past MaxBytes: reserved %d, removed %v", n, s.Removed())
		}
		if _, bytes, st := l.Snapshot(); bytes != 0 || st != (Stats{OverRead: 1}) {
			t.Fatalf("bytes %d, stats %+v", bytes, st)
		}
	})
	t.Run("SourceBytes: the oldest other of the source goes, then the slot itself", func(t *testing.T) {
		l := New(Limits{PerSource: 5, Total: 5, SourceBytes: 100}, nil)
		a1, a2, b := admit(l, srcA), admit(l, srcA), admit(l, srcB)
		if a1.Reserve(60) != 60 || b.Reserve(100) != 100 || a2.Reserve(40) != 40 {
			t.Fatal("reservations up to the budget failed")
		}
		checkOpen(t, []tslot{a1, a2, b}, true, true, true)
		if a2.Reserve(1) != 1 {
			t.Fatal("the newer slot was refused instead of the older dropped")
		}
		checkOpen(t, []tslot{a1, a2, b}, false, true, true)
		if n := a2.Reserve(60); n != 0 || !a2.Removed() {
			t.Fatalf("alone past the source budget: reserved %d, removed %v", n, a2.Removed())
		}
		if _, bytes, st := l.Snapshot(); bytes != 100 || st != (Stats{DroppedBytes: 1, OverRead: 1}) {
			t.Fatalf("bytes %d, stats %+v; want b's 100, one dropped, one over-read", bytes, st)
		}
	})
	t.Run("TotalBytes: the oldest other goes", func(t *testing.T) {
		l := New(Limits{PerSource: 5, Total: 5, TotalBytes: 90}, nil)
		a, b, c := admit(l, srcA), admit(l, srcB), admit(l, srcC)
		for _, s := range []tslot{a, b, c} {
			if s.Reserve(30) != 30 {
				t.Fatal("reservation within the budget failed")
			}
		}
		checkOpen(t, []tslot{a, b, c}, true, true, true)
		if a.Reserve(1) != 1 { // a is the oldest, so b goes
			t.Fatal("reservation refused")
		}
		checkOpen(t, []tslot{a, b, c}, true, false, true)
	})
	t.Run("Unreserve gives back", func(t *testing.T) {
		l := New(Limits{PerSource: 5, Total: 5, MaxBytes: 10, SourceBytes: 10, TotalBytes: 10}, nil)
		s := admit(l, srcA)
		if s.Reserve(10) != 10 {
			t.Fatal("reserve")
		}
		s.Unreserve(4)
		s.Unreserve(0)
		if _, bytes, _ := l.Snapshot(); bytes != 6 {
			t.Fatalf("bytes %d, want 6", bytes)
		}
		if s.Reserve(4) != 4 {
			t.Fatal("the given-back bytes are not available again")
		}
		s.Release()
		s.Unreserve(4) // after removal: nothing to give back
		if _, bytes, _ := l.Snapshot(); bytes != 0 {
			t.Fatalf("bytes %d after release, want 0", bytes)
		}
	})
	t.Run("no byte limits", func(t *testing.T) {
		l := New(Limits{PerSource: 1, Total: 1}, nil)
		if n := admit(l, srcA).Reserve(1 << 40); n != 1<<40 {
			t.Fatalf("reserved %d", n)
		}
	})
}

func TestRefuseAndNotify(t *testing.T) {
	var mu sync.Mutex
	var seen []Stats
	l := New(Limits{PerSource: 1, Total: 10}, func(src netip.Addr, st Stats) {
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, st)
		if src != srcA {
			t.Errorf("notified for %v, want %v", src, srcA)
		}
	})
	a := admit(l, srcA)
	a.Refuse()
	a.Refuse() // once only
	admit(l, srcA)
	admit(l, srcA) // drops the previous one
	mu.Lock()
	defer mu.Unlock()
	want := []Stats{{OverRead: 1}, {OverRead: 1, DroppedSource: 1}}
	if len(seen) != len(want) || seen[0] != want[0] || seen[1] != want[1] {
		t.Fatalf("notified %+v, want %+v", seen, want)
	}
	if a.drops.Load() != 0 {
		t.Fatal("Refuse called the drop function")
	}
}

func TestSource(t *testing.T) {
	tests := map[string]struct {
		addr net.Addr
		want netip.Addr
	}{
		"tcp v4":        {&net.TCPAddr{IP: net.IPv4(127, 0, 0, 2), Port: 5}, netip.MustParseAddr("127.0.0.2")},
		"tcp v4-mapped": {&net.TCPAddr{IP: net.ParseIP("::ffff:10.0.0.1"), Port: 5}, srcA},
		"tcp v6":        {&net.TCPAddr{IP: net.ParseIP("fe80::1"), Port: 5}, netip.MustParseAddr("fe80::1")},
		"udp":           {&net.UDPAddr{IP: net.IPv4(10, 0, 0, 1), Port: 9}, srcA},
		"pipe":          {pipeAddr{}, netip.Addr{}},
		"nil":           {nil, netip.Addr{}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := Source(tc.addr); got != tc.want {
				t.Fatalf("Source(%v) = %v, want %v", tc.addr, got, tc.want)
			}
		})
	}
}

type pipeAddr struct{}

func (pipeAddr) Network() string { return "pipe" }
func (pipeAddr) String() string  { return "pipe" }

// Concurrent admits, reserves and releases keep the books straight (run with -race).
func TestConcurrent(t *testing.T) {
	l := New(Limits{PerSource: 4, Total: 8, MaxBytes: 50, SourceBytes: 100, TotalBytes: 200}, nil)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			src := netip.AddrFrom4([4]byte{10, 0, 0, byte(g % 3)})
			for range 500 {
				s := l.Admit(src, nil)
				if n := s.Reserve(20); n > 0 {
					s.Unreserve(n / 2)
				}
				s.Release()
			}
		})
	}
	wg.Wait()
	if n, bytes, _ := l.Snapshot(); n != 0 || bytes != 0 {
		t.Fatalf("after every release: %d open, %d bytes", n, bytes)
	}
}
