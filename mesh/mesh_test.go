package mesh_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/paf-mesh/paf-mesh/internal/testutil"
	. "github.com/paf-mesh/paf-mesh/mesh"
	"github.com/paf-mesh/paf-mesh/mesh/meshtest"
)

func TestConverge50(t *testing.T) {
	if testing.Short() {
		t.Skip("50 peers: skipped in -short")
	}
	start := time.Now()
	// Slow probes and a long suspicion (memberlist's LAN probe interval, 1 s,
	// and the LAN preset's timeout and suspicion): 50 peers under -race on a
	// loaded 2-core machine starve each other of CPU, and tight probe
	// timeouts then declare live peers dead. The point here is that 50 peers
	// converge, not how fast (see the benchmarks for that).
	ps := cluster(t, 50, func(i int, c *Config) {
		lan := DefaultLANConfig().Memberlist
		c.Memberlist.ProbeInterval = time.Second
		c.Memberlist.ProbeTimeout = lan.ProbeTimeout
		c.Memberlist.SuspicionMult = lan.SuspicionMult
		c.Memberlist.GossipInterval = lan.GossipInterval
		c.Memberlist.TCPTimeout = 5 * time.Second
	})
	defer func() {
		ok, mn, st := countSeeing(ps, 50)
		t.Logf("%d peers see all 50; the least informed sees %d; states %v", ok, mn, st)
	}()
	t.Logf("50 peers started and joined in %s", time.Since(start).Round(time.Millisecond))
	start = time.Now()
	testutil.WaitFor(t, 90*time.Second, "all 50 peers to see 50 alive", func() bool {
		return allSee(ps, func(p *Peer) bool { return aliveCount(p) == 50 })
	})
	t.Logf("converged %s later", time.Since(start).Round(time.Millisecond))
}

func TestClaimSeenByAll(t *testing.T) {
	ps := cluster(t, 10, nil)
	testutil.WaitFor(t, 10*time.Second, "convergence", func() bool {
		return allSee(ps, func(p *Peer) bool { return aliveCount(p) == 10 })
	})
	if err := ps[3].Claim(bg, "Alice"); err != nil {
		t.Fatalf("claim: %v", err)
	}
	if got := ps[3].Name(); got != "alice" {
		t.Fatalf("Name() = %q, want the normalised %q", got, "alice")
	}
	testutil.WaitFor(t, 5*time.Second, "every peer to see alice owned by peer 3", func() bool {
		return allSee(ps, func(p *Peer) bool { return ownerID(p, "alice") == ps[3].ID() })
	})
	m, _ := ps[7].Owner("alice")
	if m.Meta.Host == "" {
		t.Errorf("owner metadata has no host: %+v", m.Meta)
	}

	// A second claim of the same name by another peer is refused, naming the holder.
	err := ps[5].Claim(bg, "alice")
	if !errors.Is(err, ErrNameTaken) {
		t.Fatalf("second claim: got %v, want ErrNameTaken", err)
	}
	if !strings.Contains(err.Error(), ps[3].ID()) {
		t.Errorf("error %q does not name the holder %s", err, ps[3].ID())
	}
	// Claiming what one already holds is a no-op.
	if err := ps[3].Claim(bg, "alice"); err != nil {
		t.Errorf("re-claim own name: %v", err)
	}
}

func TestConcurrentClaimsConverge(t *testing.T) {
	for round := 0; round < 3; round++ {
		t.Run(fmt.Sprint("round", round), func(t *testing.T) {
			ps := cluster(t, 8, nil)
			testutil.WaitFor(t, 10*time.Second, "convergence", func() bool {
				return allSee(ps, func(p *Peer) bool { return aliveCount(p) == 8 })
			})
			evs := make([]chan Event, len(ps))
			for i, p := range ps {
				evs[i] = make(chan Event, 256)
				p.Subscribe(evs[i])
			}
			// Four peers claim one name at the same instant.
			var wg sync.WaitGroup
			start := make(chan struct{})
			claimed := make([]bool, 4)
			for i, p := range ps[:4] {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					// It may succeed locally, or fail if gossip was quicker;
					// either way the mesh must settle on one owner.
					claimed[i] = p.Claim(bg, "contested") == nil
				}()
			}
			close(start)
			wg.Wait()

			var owner string
			testutil.WaitFor(t, 10*time.Second, "one owner of contested on every peer, held by that peer alone", func() bool {
				owner = ownerID(ps[0], "contested")
				if owner == "" {
					return false
				}
				holders := 0
				for _, p := range ps {
					if ownerID(p, "contested") != owner {
						return false
					}
					if p.Name() == "contested" {
						holders++
					}
				}
				return holders == 1
			})
			// Every claimant whose claim had succeeded but that is not the
			// owner was told it lost the name.
			told := 0
			for i, p := range ps[:4] {
				if p.ID() == owner || !claimed[i] {
					continue
				}
				testutil.WaitFor(t, 5*time.Second, fmt.Sprintf("peer %d to be told it lost the name", i), func() bool {
					for {
						select {
						case e := <-evs[i]:
							if e.Type == EventNameLost && e.Name == "contested" {
								return true
							}
						default:
							return false
						}
					}
				})
				told++
			}
			t.Logf("owner %s; %d losers were told", owner, told)
		})
	}
}

func TestInvalidNames(t *testing.T) {
	p := newPeer(t, meshtest.Config(t))
	for name, in := range map[string]string{
		"empty":         "",
		"too long":      strings.Repeat("a", 65),
		"space":         "bad name",
		"slash":         "a/b",
		"leading dot":   ".hidden",
		"leading dash":  "-x",
		"unicode":       "zoë",
		"control chars": "a\x00b",
	} {
		t.Run(name, func(t *testing.T) {
			err := p.Claim(bg, in)
			if !errors.Is(err, ErrInvalidName) {
				t.Fatalf("Claim(%q) = %v, want ErrInvalidName", in, err)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error is not one line: %q", err)
			}
		})
	}
	for in, want := range map[string]string{
		"Alice":                 "alice",
		"  bob  ":               "bob",
		"a":                     "a",
		"9lives":                "9lives",
		"x.y_z-1":               "x.y_z-1",
		strings.Repeat("b", 64): strings.Repeat("b", 64),
	} {
		got, err := NormalizeName(in)
		if err != nil || got != want {
			t.Errorf("NormalizeName(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

func TestRenameForwardsEverywhereAndExpires(t *testing.T) {
	const ttl = 3 * time.Second
	ps := cluster(t, 6, func(i int, c *Config) { c.ForwardTTL = ttl })
	testutil.WaitFor(t, 10*time.Second, "convergence", func() bool {
		return allSee(ps, func(p *Peer) bool { return aliveCount(p) == 6 })
	})
	if err := ps[2].Rename(bg, "robert"); !errors.Is(err, ErrNoName) {
		t.Fatalf("rename without a name: %v, want ErrNoName", err)
	}
	if err := ps[2].Claim(bg, "bob"); err != nil {
		t.Fatal(err)
	}
	if err := ps[2].Rename(bg, "robert"); err != nil {
		t.Fatal(err)
	}
	// Each peer must route bob to robert at some point before the forward
	// expires; requiring all six at one instant would leave a window of the
	// TTL minus the gossip time, which a loaded machine under -race can miss.
	routed := make([]bool, len(ps))
	testutil.WaitFor(t, ttl, "every peer to route bob to robert", func() bool {
		all := true
		for i, p := range ps {
			r, err := p.Resolve("bob")
			routed[i] = routed[i] || err == nil && r.Online && r.Name == "robert" && r.Owner.ID == ps[2].ID() &&
				len(r.Via) == 1 && r.Via[0] == "bob" && len(p.Forwards()) == 1
			all = all && routed[i]
		}
		return all
	})
	if _, ok := ps[0].Owner("bob"); ok {
		t.Errorf("bob still has an owner after the rename")
	}
	testutil.WaitFor(t, 3*ttl, "the forward to expire on every peer", func() bool {
		return allSee(ps, func(p *Peer) bool {
			r, _ := p.Resolve("bob")
			return len(p.Forwards()) == 0 && r.Name == "bob" && !r.Online
		})
	})
}

func TestClaimingAForwardedNameCancelsTheForward(t *testing.T) {
	ps := cluster(t, 4, nil)
	testutil.WaitFor(t, 10*time.Second, "convergence", func() bool {
		return allSee(ps, func(p *Peer) bool { return aliveCount(p) == 4 })
	})
	testutil.Must(t, ps[1].Claim(bg, "bob"))
	testutil.Must(t, ps[1].Rename(bg, "robert"))
	testutil.WaitFor(t, 5*time.Second, "forward everywhere", func() bool {
		return allSee(ps, func(p *Peer) bool { return len(p.Forwards()) == 1 })
	})
	testutil.Must(t, ps[3].Claim(bg, "bob"))
	testutil.WaitFor(t, 5*time.Second, "bob to route to its new owner everywhere, forward gone", func() bool {
		return allSee(ps, func(p *Peer) bool {
			r, _ := p.Resolve("bob")
			return r.Online && r.Owner.ID == ps[3].ID() && len(r.Via) == 0 && len(p.Forwards()) == 0
		})
	})
}

func TestForwardChain(t *testing.T) {
	ps := cluster(t, 3, nil)
	testutil.WaitFor(t, 10*time.Second, "convergence", func() bool {
		return allSee(ps, func(p *Peer) bool { return aliveCount(p) == 3 })
	})
	testutil.Must(t, ps[0].Claim(bg, "a1"))
	testutil.Must(t, ps[0].Rename(bg, "a2"))
	testutil.Must(t, ps[0].Rename(bg, "a3"))
	testutil.WaitFor(t, 5*time.Second, "a1 -> a2 -> a3 on every peer", func() bool {
		return allSee(ps, func(p *Peer) bool {
			r, _ := p.Resolve("a1")
			return r.Online && r.Name == "a3" && strings.Join(r.Via, ",") == "a1,a2"
		})
	})
	// Renaming back to a1 cancels a1's forward, which would otherwise loop.
	testutil.Must(t, ps[0].Rename(bg, "a1"))
	testutil.WaitFor(t, 5*time.Second, "a3 -> a1 direct, a1 owned", func() bool {
		return allSee(ps, func(p *Peer) bool {
			r1, _ := p.Resolve("a1")
			r3, _ := p.Resolve("a3")
			return r1.Online && len(r1.Via) == 0 && r3.Name == "a1" && r3.Online
		})
	})
}

func TestNameReleasedAfterOwnerFails(t *testing.T) {
	ps := cluster(t, 5, nil)
	testutil.WaitFor(t, 10*time.Second, "convergence", func() bool {
		return allSee(ps, func(p *Peer) bool { return aliveCount(p) == 5 })
	})
	testutil.Must(t, ps[4].Claim(bg, "ghost"))
	testutil.WaitFor(t, 5*time.Second, "claim seen", func() bool {
		return allSee(ps, func(p *Peer) bool { return ownerID(p, "ghost") == ps[4].ID() })
	})
	dead := ps[4].ID()
	Crash(ps[4])
	rest := ps[:4]
	testutil.WaitFor(t, 15*time.Second, "the crashed peer to be dead and its name free on every peer", func() bool {
		return allSee(rest, func(p *Peer) bool {
			m, ok := p.Member(dead)
			return ok && m.State == MemberDead && ownerID(p, "ghost") == ""
		})
	})
	testutil.Must(t, ps[1].Claim(bg, "ghost"))
	testutil.WaitFor(t, 5*time.Second, "new claim seen", func() bool {
		return allSee(rest, func(p *Peer) bool { return ownerID(p, "ghost") == ps[1].ID() })
	})
}

func TestNameHeldDuringGrace(t *testing.T) {
	ps := cluster(t, 3, func(i int, c *Config) { c.NameGrace = time.Hour })
	testutil.WaitFor(t, 10*time.Second, "convergence", func() bool {
		return allSee(ps, func(p *Peer) bool { return aliveCount(p) == 3 })
	})
	testutil.Must(t, ps[2].Claim(bg, "ghost"))
	testutil.WaitFor(t, 5*time.Second, "claim seen", func() bool { return ownerID(ps[0], "ghost") == ps[2].ID() })
	Crash(ps[2])
	testutil.WaitFor(t, 15*time.Second, "peer dead", func() bool {
		m, _ := ps[0].Member(ps[2].ID())
		return m.State == MemberDead
	})
	err := ps[0].Claim(bg, "ghost")
	if !errors.Is(err, ErrNameTaken) || !strings.Contains(err.Error(), "released in") {
		t.Fatalf("claim during grace: %v, want ErrNameTaken saying when it is released", err)
	}
}

// A peer restarted under the name of a holder that just crashed waits for
// the mesh to release the name, then holds it; a holder that answers makes
// it fail at once; a wait cut short says the holder is not answering.
func TestClaimWhenReleased(t *testing.T) {
	ps := cluster(t, 4, func(i int, c *Config) {
		if i == 2 {
			// In ps[2]'s view a crashed holder keeps its name for an hour.
			c.NameGrace = time.Hour
		}
	})
	testutil.WaitFor(t, 10*time.Second, "convergence", func() bool {
		return allSee(ps, func(p *Peer) bool { return aliveCount(p) == 4 })
	})
	testutil.Must(t, ps[1].Claim(bg, "phoenix"))
	testutil.Must(t, ps[3].Claim(bg, "keeper"))
	testutil.WaitFor(t, 5*time.Second, "claims seen", func() bool {
		return allSee(ps, func(p *Peer) bool { return ownerID(p, "phoenix") == ps[1].ID() && ownerID(p, "keeper") == ps[3].ID() })
	})

	// A live holder that answers: refused at once, not waited for.
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(bg, time.Hour)
		defer cancel()
		done <- ps[0].ClaimWhenReleased(ctx, "phoenix")
	}()
	var err error
	testutil.WaitFor(t, 10*time.Second, "a claim of a name whose holder answers to return", func() bool {
		select {
		case err = <-done:
			return true
		default:
			return false
		}
	})
	var nte *NameTakenError
	if !errors.As(err, &nte) || nte.Silent || nte.State != MemberAlive || !strings.Contains(err.Error(), "choose another name") {
		t.Fatalf("claim of a live holder's name: %v, want NameTakenError, alive, not silent", err)
	}

	// The holder crashes: the claim waits for the release and succeeds.
	Crash(ps[1])
	ctx, cancel := context.WithTimeout(bg, 30*time.Second)
	defer cancel()
	if err := ps[0].ClaimWhenReleased(ctx, "phoenix"); err != nil {
		t.Fatalf("claim after the holder crashed: %v, want it to wait for the release and succeed", err)
	}
	testutil.WaitFor(t, 5*time.Second, "the new holder seen by the others", func() bool {
		return allSee([]*Peer{ps[0], ps[3]}, func(p *Peer) bool { return ownerID(p, "phoenix") == ps[0].ID() })
	})

	// A crashed holder whose name ps[2] reserves for an hour: the wait ends
	// with ctx, and the error says why and when to try again.
	Crash(ps[3])
	short, cancelShort := context.WithTimeout(bg, 2*time.Second)
	defer cancelShort()
	err = ps[2].ClaimWhenReleased(short, "keeper")
	if !errors.As(err, &nte) || nte.State == MemberAlive && !nte.Silent {
		t.Fatalf("claim cut short while the crashed holder keeps the name: %v, want NameTakenError, not answering or failed", err)
	}
	if msg := err.Error(); !strings.Contains(msg, "not answering") && !strings.Contains(msg, "released in") {
		t.Errorf("error %q says neither that the holder is not answering nor when the name is released", msg)
	}
	if ps[2].Name() != "" {
		t.Errorf("ps[2] holds %q after a refused claim", ps[2].Name())
	}
}

// A peer that joins while a failed holder's name is in its grace period
// learns the reservation from the others (memberlist does not tell a joiner
// about dead members): its claim is refused as theirs would be, and a
// message for the name is stored, not sent. A peer that took the name
// before it joined keeps it.
func TestJoinerLearnsReservedNames(t *testing.T) {
	long := func(i int, c *Config) { c.NameGrace = 5 * time.Minute }
	ps := cluster(t, 3, long)
	testutil.WaitFor(t, 10*time.Second, "convergence", func() bool {
		return allSee(ps, func(p *Peer) bool { return aliveCount(p) == 3 })
	})
	testutil.Must(t, ps[2].Claim(bg, "ghost"))
	testutil.WaitFor(t, 5*time.Second, "claim seen", func() bool {
		return allSee(ps, func(p *Peer) bool { return ownerID(p, "ghost") == ps[2].ID() })
	})
	dead := ps[2].ID()
	Crash(ps[2])
	testutil.WaitFor(t, 15*time.Second, "the holder declared dead", func() bool {
		return allSee(ps[:2], func(p *Peer) bool { m, _ := p.Member(dead); return m.State == MemberDead })
	})

	// With a reservation to tell, push/pull state is the object; without
	// one, the bare forwarding table that older peers read as well.
	if st := PushPullState(ps[0]); len(st) == 0 || st[0] != '{' {
		t.Fatalf("push/pull state with a reservation: %s", st)
	}
	c := meshtest.Config(t)
	long(0, c)
	joiner := newPeer(t, c)
	if st := PushPullState(joiner); string(st) != "[]" {
		t.Fatalf("push/pull state of a new peer: %s, want the bare (empty) table", st)
	}
	if _, err := joiner.Join(ps[0].Addr()); err != nil {
		t.Fatal(err)
	}
	if m, ok := joiner.Member(dead); !ok || m.State != MemberDead || m.Meta.Name != "ghost" {
		t.Fatalf("the joiner knows the failed holder as %+v (known %v); want dead, holding ghost", m, ok)
	}
	var nte *NameTakenError
	if err := joiner.Claim(bg, "ghost"); !errors.As(err, &nte) || nte.Holder != dead || nte.ReleasedIn <= 0 {
		t.Fatalf("the joiner's claim of ghost: %v, want refused until the failed holder's grace ends", err)
	}
	if r, err := joiner.Resolve("ghost"); err != nil || r.Online {
		t.Fatalf("the joiner routes ghost to %+v (%v); want nowhere online (store it)", r, err)
	}

	// A peer that claimed ghost alone, before joining, keeps it: the
	// reservation it learns lapses, then the others agree.
	c = meshtest.Config(t)
	long(0, c)
	early := newPeer(t, c)
	testutil.Must(t, early.Claim(bg, "ghost"))
	if _, err := early.Join(ps[1].Addr()); err != nil {
		t.Fatal(err)
	}
	if m, ok := early.Member(dead); !ok || m.State != MemberDead {
		t.Fatalf("the early claimant knows the failed holder as %+v (known %v); want dead", m, ok)
	}
	if early.Name() != "ghost" || ownerID(early, "ghost") != early.ID() {
		t.Fatalf("the early claimant holds %q, owner in its view %s; want it to keep ghost", early.Name(), ownerID(early, "ghost"))
	}
}

func TestLeaveReleasesAtOnce(t *testing.T) {
	ps := cluster(t, 3, func(i int, c *Config) { c.NameGrace = time.Hour })
	testutil.WaitFor(t, 10*time.Second, "convergence", func() bool {
		return allSee(ps, func(p *Peer) bool { return aliveCount(p) == 3 })
	})
	testutil.Must(t, ps[2].Claim(bg, "leaver"))
	testutil.WaitFor(t, 5*time.Second, "claim seen", func() bool {
		return allSee(ps[:2], func(p *Peer) bool { return ownerID(p, "leaver") == ps[2].ID() })
	})
	id := ps[2].ID()
	testutil.Must(t, ps[2].Close())
	testutil.Must(t, ps[2].Close()) // idempotent
	testutil.WaitFor(t, 5*time.Second, "left and released (despite an hour of grace)", func() bool {
		return allSee(ps[:2], func(p *Peer) bool {
			m, ok := p.Member(id)
			return ok && m.State == MemberLeft && ownerID(p, "leaver") == ""
		})
	})
}

func TestForwardsSurviveRestart(t *testing.T) {
	dirs := []string{t.TempDir(), t.TempDir(), t.TempDir()}
	ps := cluster(t, 3, func(i int, c *Config) { c.StateDir = dirs[i] })
	testutil.WaitFor(t, 10*time.Second, "convergence", func() bool {
		return allSee(ps, func(p *Peer) bool { return aliveCount(p) == 3 })
	})
	testutil.Must(t, ps[0].Claim(bg, "old"))
	testutil.Must(t, ps[0].Rename(bg, "new"))
	testutil.WaitFor(t, 5*time.Second, "forward everywhere", func() bool {
		return allSee(ps, func(p *Peer) bool { return len(p.Forwards()) == 1 })
	})

	// A restarted peer reads its own copy back from disk, even alone.
	testutil.Must(t, ps[1].Close())
	c := meshtest.Config(t)
	c.StateDir = dirs[1]
	alone := newPeer(t, c)
	if fs := alone.Forwards(); len(fs) != 1 || fs[0].From != "old" || fs[0].To != "new" {
		t.Fatalf("restarted peer forwards = %+v, want old -> new", fs)
	}
	testutil.Must(t, alone.Close())

	// A peer restarted with no state learns the table when it joins.
	fresh := newPeer(t, meshtest.Config(t))
	if _, err := fresh.Join(ps[2].Addr()); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 5*time.Second, "a fresh peer to learn the forward at join", func() bool {
		r, _ := fresh.Resolve("old")
		return r.Name == "new" && r.Online
	})
}

func TestEventsOnJoinFailLeave(t *testing.T) {
	a := newPeer(t, meshtest.Config(t))
	ch := make(chan Event, 256)
	cancel := a.Subscribe(ch)
	defer cancel()
	b := newPeer(t, meshtest.Config(t))
	if _, err := b.Join(a.Addr()); err != nil {
		t.Fatal(err)
	}
	testutil.Must(t, b.Claim(bg, "bee"))
	want := map[EventType]bool{EventPeerJoined: false, EventNameClaimed: false}
	waitForEvents(t, ch, want, b.ID())
	testutil.Must(t, b.Close())
	want = map[EventType]bool{EventPeerLeft: false, EventNameReleased: false}
	waitForEvents(t, ch, want, b.ID())
}

func waitForEvents(t *testing.T, ch <-chan Event, want map[EventType]bool, id string) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		done := true
		for _, seen := range want {
			done = done && seen
		}
		if done {
			return
		}
		select {
		case e := <-ch:
			if e.PeerID == id {
				if _, ok := want[e.Type]; ok {
					want[e.Type] = true
				}
			}
		case <-deadline:
			t.Fatalf("events still missing: %v", want)
		}
	}
}

func TestUnreachableJoinFailsClearly(t *testing.T) {
	p := newPeer(t, meshtest.Config(t))
	n, err := p.Join("127.0.0.1:1")
	if err == nil || n != 0 {
		t.Fatalf("join of a closed port: n=%d err=%v, want an error", n, err)
	}
	if !strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Errorf("error %q does not name the address", err)
	}
	if p.Stats().JoinFailures == 0 {
		t.Errorf("join failure not counted")
	}
}

func TestDiscoverJoinsAndHeals(t *testing.T) {
	var mu sync.Mutex
	var addrs []string
	discover := func() []string { mu.Lock(); defer mu.Unlock(); return append([]string(nil), addrs...) }
	ps := make([]*Peer, 4)
	for i := range ps {
		c := meshtest.Config(t)
		c.Discover = discover
		c.DiscoverInterval = 100 * time.Millisecond
		ps[i] = newPeer(t, c)
	}
	// Publish addresses only after all started: each started alone, as two
	// peers starting at one instant do; polling must bring them together.
	mu.Lock()
	for _, p := range ps {
		addrs = append(addrs, p.Addr())
	}
	addrs = append(addrs, "127.0.0.1:1") // a dead address is skipped, not fatal
	mu.Unlock()
	testutil.WaitFor(t, 10*time.Second, "discovery to join all four", func() bool {
		return allSee(ps, func(p *Peer) bool { return aliveCount(p) == 4 })
	})
}

func countSeeing(ps []*Peer, n int) (ok int, min int, states map[MemberState]int) {
	min = 1 << 30
	states = map[MemberState]int{}
	for _, p := range ps {
		for _, m := range p.Members() {
			states[m.State]++
		}
		c := aliveCount(p)
		if c == n {
			ok++
		}
		if c < min {
			min = c
		}
	}
	return ok, min, states
}

// Metadata updates from several goroutines at once (presence from the MCP
// server, held counts from the relay, a claim) are serialised: memberlist's
// UpdateNode is not safe to run concurrently (found by -race), and every
// update still reaches the other peers.
func TestConcurrentMetadataUpdates(t *testing.T) {
	ps := cluster(t, 2, nil)
	a, b := ps[0], ps[1]
	var wg sync.WaitGroup
	for g := range 3 {
		wg.Go(func() {
			for i := range 20 {
				if err := a.SetMeta(context.Background(), func(m *Meta) { m.SetTag("k", strconv.Itoa(g*100+i)) }); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Go(func() {
		if err := a.Claim(context.Background(), "busy"); err != nil {
			t.Error(err)
		}
	})
	wg.Wait()
	testutil.Must(t, a.SetMeta(context.Background(), func(m *Meta) { m.SetTag("k", "last") }))
	testutil.WaitFor(t, 10*time.Second, "b to see a's last metadata and its claim", func() bool {
		m, ok := b.Member(a.ID())
		return ok && m.Meta.Tag("k") == "last" && m.Meta.Name == "busy"
	})
}

// Every metadata update runs under announceMu, Close's leaving one included:
// memberlist's UpdateNode must not run twice at once (-race found Close's
// beside a relay's held-count announce, in a relay test where every holder
// left at once). Updates racing Close end with ErrClosed or succeed; none
// hangs.
func TestCloseWhileAnnouncing(t *testing.T) {
	for run := range 5 {
		ps := cluster(t, 2, nil)
		a := ps[0]
		CheckUpdatesLocked(a, func() { t.Error("UpdateNode ran without announceMu held") })
		var wg sync.WaitGroup
		for g := range 3 {
			wg.Go(func() {
				for i := 0; ; i++ {
					err := a.SetMeta(context.Background(), func(m *Meta) { m.SetTag("k", strconv.Itoa(run*1000+g*100+i)) })
					if errors.Is(err, ErrClosed) {
						return
					}
					if err != nil {
						t.Error(err)
						return
					}
				}
			})
		}
		testutil.Must(t, a.Close())
		wg.Wait()
	}
}

// Tags set by one peer reach the others as they were set; a bad tag or
// metadata that cannot fit is refused and changes nothing; an empty value
// removes a tag.
func TestSetMetaTags(t *testing.T) {
	ps := cluster(t, 2, nil)
	a, b := ps[0], ps[1]
	testutil.Must(t, a.SetMeta(bg, func(m *Meta) {
		m.SetTag("r", "127.0.0.1:9")
		m.SetTag("d", strings.Repeat("é", 400)) // 800 bytes: must be shortened
		m.MayShorten("d")
	}))
	testutil.WaitFor(t, 10*time.Second, "b to see a's tags", func() bool {
		m, ok := b.Member(a.ID())
		return ok && m.Meta.Tag("r") == "127.0.0.1:9" && strings.HasSuffix(m.Meta.Tag("d"), "é…")
	})
	if got := a.Self().Meta.Tag("d"); got != strings.Repeat("é", 400) {
		t.Errorf("a's own view of its tag was shortened: %d bytes; only the encoding is", len(got))
	}

	for name, tc := range map[string]struct {
		update func(*Meta)
		want   error
	}{
		"bad key":              {func(m *Meta) { m.SetTag("a b", "x") }, ErrInvalidTag},
		"invalid UTF-8":        {func(m *Meta) { m.SetTag("k", "\xff") }, ErrInvalidTag},
		"too large to shorten": {func(m *Meta) { m.SetTag("big", strings.Repeat("x", 600)) }, ErrMetaTooLarge},
	} {
		t.Run(name, func(t *testing.T) {
			before := a.Self().Meta
			if err := a.SetMeta(bg, tc.update); !errors.Is(err, tc.want) {
				t.Fatalf("SetMeta: %v, want %v", err, tc.want)
			}
			if after := a.Self().Meta; len(after.Tags) != len(before.Tags) || after.Tag("r") != before.Tag("r") {
				t.Fatalf("a refused update changed the tags: %v", after.Tags)
			}
		})
	}

	testutil.Must(t, a.SetMeta(bg, func(m *Meta) { m.SetTag("r", "") }))
	testutil.WaitFor(t, 10*time.Second, "b to see a's relay tag removed", func() bool {
		m, ok := b.Member(a.ID())
		_, has := m.Meta.Tags["r"]
		return ok && !has && m.Meta.Tag("d") != ""
	})
}

// A Config with only some fields set gets the local preset's values for the
// rest, and a peer started from it works: claims, and releases a failed
// peer's name after the default grace.
func TestNewFillsDefaults(t *testing.T) {
	ml := meshtest.Config(t).Memberlist
	mlName := ml.Name
	sparse := &Config{Memberlist: ml, Logger: meshtest.Config(t).Logger}
	p := newPeer(t, sparse)
	if sparse.NameGrace != 0 || sparse.ID != "" || ml.Name != mlName || ml.Delegate != nil {
		t.Fatalf("New modified the caller's Config: %+v, memberlist name %q", sparse, ml.Name)
	}
	testutil.Must(t, p.Claim(bg, "sparse"))
	if p.ID() == "" || p.Self().Meta.Host == "" || ownerID(p, "sparse") != p.ID() {
		t.Fatalf("peer from a sparse config: id %q, host %q, owner %q", p.ID(), p.Self().Meta.Host, ownerID(p, "sparse"))
	}
}

// TestLocalPacketSize: the local preset's gossip packets are larger than an Ethernet MTU (see
// localUDPBufferSize), the LAN preset's are memberlist's, and no packet can hold more
// broadcasts than memberlist's compound message counts in its one-byte count: the smallest
// broadcast, a suspect message about and from one-letter peer ids, is 33 bytes with its length.
func TestLocalPacketSize(t *testing.T) {
	if got := DefaultLocalConfig().Memberlist.UDPBufferSize; got != LocalUDPBufferSize {
		t.Errorf("local preset: UDPBufferSize %d, want %d", got, LocalUDPBufferSize)
	}
	if got, want := DefaultLANConfig().Memberlist.UDPBufferSize, memberlist.DefaultLANConfig().UDPBufferSize; got != want {
		t.Errorf("LAN preset: UDPBufferSize %d, want memberlist's %d (an Ethernet MTU)", got, want)
	}
	const smallestBroadcast = 33
	if n := LocalUDPBufferSize / smallestBroadcast; n > 255 {
		t.Errorf("a %d-byte packet could hold %d broadcasts; memberlist's compound message counts at most 255", LocalUDPBufferSize, n)
	}
}
