package mesh_test

import (
	"fmt"
	"maps"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/paf-mesh/paf-mesh/internal/testutil"
	"github.com/paf-mesh/paf-mesh/mesh"
	"github.com/paf-mesh/paf-mesh/mesh/meshtest"
)

// idOracle is a Config.Gone whose answers the test sets, as the run dir gives them to a real
// peer (a peer that died on this machine); with confirm, a ConfirmClaim likewise.
type idOracle struct {
	mu    sync.Mutex
	gone  map[string]bool
	asked map[string]int
}

func (o *idOracle) set(id string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.gone == nil {
		o.gone = map[string]bool{}
	}
	o.gone[id] = true
}

func (o *idOracle) ask(id string) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.asked == nil {
		o.asked = map[string]int{}
	}
	o.asked[id]++
	return o.gone[id]
}

func (o *idOracle) times(id string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.asked[id]
}

func stateOf(p *mesh.Peer, id string) mesh.MemberState {
	m, ok := p.Member(id)
	if !ok {
		return -1
	}
	return m.State
}

// A peer proved stopped (Config.Gone, told by a DiscoverWake) is failed at once in the view of
// the peer that asks, and stays failed although memberlist, which has not noticed anything
// (the peer is in fact still running here), keeps reporting it alive and even brings news of
// it; a peer the oracle does not name stays alive.
func TestGoneFailsAtOnceAndForGood(t *testing.T) {
	var oracle idOracle
	wake := make(chan struct{}, 1)
	ps := cluster(t, 3, func(i int, c *mesh.Config) {
		if i == 0 {
			c.Gone = oracle.ask
			c.DiscoverWake = wake
			c.DiscoverInterval = time.Hour // the wake alone
			c.Discover = func() []string { return nil }
		}
	})
	watcher, live, stopped := ps[0], ps[1], ps[2]
	if err := stopped.Claim(bg, "carol"); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 10*time.Second, "all three to see each other and carol's claim", func() bool {
		return allSee(ps, func(p *mesh.Peer) bool { return aliveCount(p) == 3 && ownerID(p, "carol") == stopped.ID() })
	})
	events := make(chan mesh.Event, 64)
	defer watcher.Subscribe(events)()

	oracle.set(stopped.ID())
	wake <- struct{}{}
	testutil.WaitFor(t, 5*time.Second, "the watcher to fail the stopped peer", func() bool {
		return stateOf(watcher, stopped.ID()) == mesh.MemberDead
	})
	waitForEvents(t, events, map[mesh.EventType]bool{mesh.EventPeerFailed: false}, stopped.ID())
	if s := stateOf(watcher, live.ID()); s != mesh.MemberAlive {
		t.Fatalf("the live peer, which the oracle does not name, is %v in the watcher's view", s)
	}
	if s := stateOf(live, stopped.ID()); s != mesh.MemberAlive {
		t.Fatalf("a peer without the oracle sees the stopped peer %v; want alive (memberlist's view)", s)
	}

	// News of the "stopped" peer from memberlist (a metadata update, merged by a push/pull,
	// which delivers it before Join returns) does not bring it back in the watcher's view; the
	// same news reaches the peer without the oracle.
	if err := stopped.SetMeta(bg, func(m *mesh.Meta) { m.SetTag("x", "1") }); err != nil {
		t.Fatal(err)
	}
	for _, p := range []*mesh.Peer{live, watcher} {
		if _, err := p.Join(stopped.Addr()); err != nil {
			t.Fatal(err)
		}
	}
	if m, _ := live.Member(stopped.ID()); m.Meta.Tag("x") != "1" || m.State != mesh.MemberAlive {
		t.Fatalf("the peer without the oracle sees %v with tag x=%q after the push/pull; want alive, 1", m.State, m.Meta.Tag("x"))
	}
	m, _ := watcher.Member(stopped.ID())
	if m.State != mesh.MemberDead || m.Meta.Tag("x") != "" {
		t.Fatalf("after memberlist's news, the watcher sees the stopped peer %v with tag x=%q; want dead, unchanged", m.State, m.Meta.Tag("x"))
	}
}

// With Config.WakeGone a wake asks Gone about the ids it names alone: a wake that names none
// (a peer started) asks nothing, nor does the discovery round it arms; one that names a peer
// asks about that one, and one that says all asks about every member.
func TestWakeGoneAsksAboutNamedPeersOnly(t *testing.T) {
	var oracle idOracle
	var rounds atomic.Int32
	wake := make(chan struct{})
	type answer struct {
		ids []string
		all bool
	}
	answers := make(chan answer, 1)
	ps := cluster(t, 3, func(i int, c *mesh.Config) {
		if i == 0 {
			c.Gone = oracle.ask
			c.Discover = func() []string { return nil }
			// Asked at the end of each round, after its checks of Gone.
			c.Names = func() map[string]string { rounds.Add(1); return nil }
			c.DiscoverWake = wake
			c.DiscoverInterval = time.Hour // the wakes alone
			c.WakeGone = func() ([]string, bool) {
				select {
				case a := <-answers:
					return a.ids, a.all
				default:
					t.Error("a wake asked WakeGone twice")
					return nil, false
				}
			}
		}
	})
	watcher, live, stopped := ps[0], ps[1], ps[2]
	testutil.WaitFor(t, 10*time.Second, "all three to see each other", func() bool {
		return allSee(ps, func(p *mesh.Peer) bool { return aliveCount(p) == 3 })
	})
	oracle.set(stopped.ID())
	tell := func(a answer) {
		t.Helper()
		select {
		case answers <- a:
		case <-time.After(5 * time.Second):
			t.Fatal("the last wake did not ask WakeGone within 5 s")
		}
		select {
		case wake <- struct{}{}:
		case <-time.After(5 * time.Second):
			t.Fatal("the discovery loop did not take a wake within 5 s")
		}
	}

	r0 := rounds.Load()
	tell(answer{}) // a start: nobody to ask about
	testutil.WaitFor(t, 5*time.Second, "the discovery round the wake arms", func() bool {
		return rounds.Load() > r0
	})
	tell(answer{ids: []string{live.ID(), "nobody"}})
	testutil.WaitFor(t, 5*time.Second, "the watcher to ask about the named live peer", func() bool {
		return oracle.times(live.ID()) == 1
	})
	if n := oracle.times(stopped.ID()); n != 0 {
		t.Fatalf("Gone was asked %d times about a peer no wake named (by a wake or its round)", n)
	}
	if n := oracle.times("nobody"); n != 0 {
		t.Fatalf("Gone was asked %d times about an id that is no member", n)
	}
	if s := stateOf(watcher, stopped.ID()); s != mesh.MemberAlive {
		t.Fatalf("the stopped peer, which no wake named, is %v in the watcher's view; want alive until named", s)
	}

	tell(answer{ids: []string{stopped.ID()}})
	testutil.WaitFor(t, 5*time.Second, "the watcher to fail the named stopped peer", func() bool {
		return stateOf(watcher, stopped.ID()) == mesh.MemberDead
	})
	if n := oracle.times(live.ID()); n != 1 {
		t.Fatalf("Gone was asked %d times about the live peer; want 1 (only the wake that named it)", n)
	}

	tell(answer{all: true}) // the watch could not tell: every live member of this host
	testutil.WaitFor(t, 5*time.Second, "a wake that says all to ask about the live peer", func() bool {
		return oracle.times(live.ID()) == 2
	})
	if s := stateOf(watcher, live.ID()); s != mesh.MemberAlive {
		t.Fatalf("the live peer is %v in the watcher's view; want alive", s)
	}
}

// A peer that starts after another died learns of the death in the Discover call that joins
// it to the mesh, before it claims anything: the others' memberlist still reports the dead
// peer alive, and without the oracle the newcomer would too.
func TestGoneSeenByNewcomerAtDiscover(t *testing.T) {
	var oracle idOracle
	ps := cluster(t, 2, nil)
	if err := ps[1].Claim(bg, "dora"); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 10*time.Second, "both to see dora's claim", func() bool {
		return allSee(ps, func(p *mesh.Peer) bool { return ownerID(p, "dora") == ps[1].ID() })
	})
	oracle.set(ps[1].ID())
	c := meshtest.Config(t)
	c.Gone = oracle.ask
	c.Discover = func() []string { return []string{ps[0].Addr()} }
	c.DiscoverInterval = time.Hour
	newcomer := newPeer(t, c)
	newcomer.Discover()
	if s := stateOf(newcomer, ps[1].ID()); s != mesh.MemberDead {
		t.Fatalf("right after Discover the newcomer sees the dead peer %v; want dead", s)
	}
	if s := stateOf(newcomer, ps[0].ID()); s != mesh.MemberAlive {
		t.Fatalf("right after Discover the newcomer sees the live peer %v; want alive", s)
	}
	// Its name is reserved (for NameGrace), not held by a live peer.
	if m, ok := newcomer.Owner("dora"); !ok || m.State != mesh.MemberDead {
		t.Fatalf("dora's owner in the newcomer's view: %+v, %v; want the dead peer, reserved", m, ok)
	}
}

// A claim that gossip did not bring (here: the claimant does not gossip at all, and nothing
// pulls periodically) is pulled from the claimant once its run-dir entry (Config.Names) has
// named another name than the view shows for a second (not at once: gossip usually brings
// it by then), by the peer's own discovery loop; the entry is a hint only: what is pulled is
// the claimant's own state, not the entry's word.
func TestNamesHintPullsAMissedClaim(t *testing.T) {
	var hint sync.Mutex
	names := map[string]string{}
	quiet := func(c *mesh.Config) {
		c.Memberlist.GossipNodes = 0           // no gossip
		c.Memberlist.PushPullInterval = 0      // no periodic push/pull
		c.Memberlist.ProbeInterval = time.Hour // no probes to carry broadcasts either
	}
	ps := cluster(t, 3, func(i int, c *mesh.Config) {
		quiet(c)
		if i == 1 {
			c.Discover = func() []string { return nil }
			c.DiscoverInterval = time.Hour
			c.Names = func() map[string]string {
				hint.Lock()
				defer hint.Unlock()
				return maps.Clone(names)
			}
		}
		if i == 2 {
			c.Discover = func() []string { return nil }
			c.DiscoverInterval = time.Hour
		}
	})
	claimant, hinted, plain := ps[0], ps[1], ps[2]
	// Without gossip, only push/pulls spread membership: make every pair exchange state.
	if _, err := hinted.Join(plain.Addr()); err != nil {
		t.Fatal(err)
	}
	// The joined peer merges the joiner's state on its own goroutine, maybe after Join returns.
	testutil.WaitFor(t, 10*time.Second, "the three peers to know each other after the joins", func() bool {
		return allSee(ps, func(p *mesh.Peer) bool { return aliveCount(p) == 3 })
	})
	// A claim is pushed to one random peer (spreadClaim): claim until that peer is the plain
	// one, so that the hinted peer can learn the claim from the hint's pull alone.
	bob := ""
	for i := 0; bob == ""; i++ {
		if i == 20 {
			t.Fatal("20 claims all reached the hinted peer; want one that reaches only the plain one")
		}
		name := fmt.Sprintf("bob%d", i)
		if err := claimant.Claim(bg, name); err != nil {
			t.Fatal(err)
		}
		testutil.WaitFor(t, 10*time.Second, "the claim's push to reach one of the two peers", func() bool {
			return ownerID(hinted, name) != "" || ownerID(plain, name) != ""
		})
		if ownerID(hinted, name) == "" {
			bob = name
		}
	}
	hinted.Discover()
	if got := ownerID(hinted, bob); got != "" {
		t.Fatalf("without a hint, %s's owner is %q in the hinted peer's view; the setup lets claims travel", bob, got)
	}

	hint.Lock()
	names[claimant.ID()] = "zed" // a wrong hint: pulled, but not believed
	hint.Unlock()
	hinted.Discover()
	// Not at once: gossip has a second to bring the claim (no pull yet), then the peer's own
	// discovery loop pulls, though its rounds are an hour apart.
	if n := hinted.Stats().StalePulls; n != 0 {
		t.Fatalf("%d pulls at the first sight of the hint; want none before it is a second old", n)
	}
	testutil.WaitFor(t, 10*time.Second, "the hinted peer to pull the claim", func() bool {
		return ownerID(hinted, bob) == claimant.ID()
	})
	if n := hinted.Stats().StalePulls; n != 1 {
		t.Fatalf("%d pulls; want 1", n)
	}
	if got := ownerID(hinted, "zed"); got != "" {
		t.Fatalf("the hint's name zed is owned by %q in the hinted peer's view; a hint is never trusted", got)
	}
}

// Only members of this peer's host are asked: a peer of another host (a LAN mesh) has no
// run-dir entry here, and is never failed by it, even by an oracle that would say so.
func TestGoneAsksOnlyThisHost(t *testing.T) {
	var oracle idOracle
	ps := cluster(t, 3, func(i int, c *mesh.Config) {
		c.Meta.Host = "here"
		if i == 2 {
			c.Meta.Host = "elsewhere"
		}
		if i == 0 {
			c.Gone = oracle.ask
			c.Discover = func() []string { return nil }
			c.DiscoverInterval = time.Hour
		}
	})
	testutil.WaitFor(t, 10*time.Second, "all three to see each other", func() bool {
		return allSee(ps, func(p *mesh.Peer) bool { return aliveCount(p) == 3 })
	})
	oracle.set(ps[2].ID()) // would fail it, if asked
	ps[0].Discover()
	if oracle.times(ps[1].ID()) == 0 {
		t.Fatal("the oracle was not asked about the peer of this host")
	}
	if n := oracle.times(ps[2].ID()); n != 0 {
		t.Fatalf("the oracle was asked %d times about the peer of another host", n)
	}
	if s := stateOf(ps[0], ps[2].ID()); s != mesh.MemberAlive {
		t.Fatalf("the peer of another host is %v; want alive", s)
	}
}

// The housekeeping loop wakes when something is due, not every half second while a failed or
// departed peer is remembered: a failed peer's name is due when its grace ends, and both are
// forgotten when their retention ends (30 s on one machine), which is past the idle interval.
func TestHousekeepingWakesWhenDue(t *testing.T) {
	var oracle idOracle
	wake := make(chan struct{}, 1)
	ps := cluster(t, 3, func(i int, c *mesh.Config) {
		c.NameGrace = 3 * time.Second
		c.Retain = 30 * time.Second
		if i == 0 {
			c.Gone = oracle.ask
			c.DiscoverWake = wake
			c.DiscoverInterval = time.Hour
			c.Discover = func() []string { return nil }
		}
	})
	watcher, crashed, leaver := ps[0], ps[1], ps[2]
	testutil.Must(t, crashed.Claim(bg, "carol"))
	testutil.WaitFor(t, 10*time.Second, "all three to see each other and carol's claim", func() bool {
		return allSee(ps, func(p *mesh.Peer) bool { return aliveCount(p) == 3 && ownerID(p, "carol") == crashed.ID() })
	})
	// (Within a tick of a change the state may wait to be persisted: then the next is soon.)
	testutil.WaitFor(t, 5*time.Second, "the next tick to be the idle interval away with every peer alive", func() bool {
		return mesh.NextTick(watcher) == mesh.TickIdle
	})

	testutil.Must(t, leaver.Close())
	testutil.WaitFor(t, 10*time.Second, "the watcher to see the leaver leave", func() bool {
		return stateOf(watcher, leaver.ID()) == mesh.MemberLeft
	})
	// Nothing is due before the idle interval: the departed peer is forgotten in 30 s.
	testutil.WaitFor(t, 5*time.Second, "the next tick to be the idle interval away with a departed peer remembered", func() bool {
		return mesh.NextTick(watcher) == mesh.TickIdle
	})

	oracle.set(crashed.ID())
	wake <- struct{}{}
	testutil.WaitFor(t, 5*time.Second, "the watcher to fail the crashed peer", func() bool {
		return stateOf(watcher, crashed.ID()) == mesh.MemberDead
	})
	m, _ := watcher.Member(crashed.ID())
	end := m.Since.Add(3 * time.Second) // carol's grace ends
	hi := time.Until(end) + 50*time.Millisecond
	d := mesh.NextTick(watcher)
	if lo := time.Until(end); d < lo || d > hi {
		t.Fatalf("with carol reserved for her failed peer the next tick is in %v; want when her grace ends, in %v to %v", d, lo, hi)
	}
	testutil.WaitFor(t, 10*time.Second, "carol's grace to end in the watcher's view", func() bool {
		return ownerID(watcher, "carol") == ""
	})
}
