package mesh_test

import (
	"context"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/paf-mesh/paf-mesh/internal/testutil"
	"github.com/paf-mesh/paf-mesh/mesh"
	"github.com/paf-mesh/paf-mesh/mesh/meshtest"
)

// Security II: a live holder does not give its name up to a claim time it cannot have
// observed. Before, an insider announcing a claim time of 1 ms took any live name, and its
// holder logged "lost our name" and went nameless.
func TestHolderKeepsNameAgainstImpossibleClaimTime(t *testing.T) {
	ctx := t.Context()
	alice := newPeer(t, meshtest.Config(t))
	// Alice claimed her name ten minutes ago (as a long-running session did).
	if err := mesh.ForceClaim(ctx, alice, "alice", time.Now().Add(-10*time.Minute)); err != nil {
		t.Fatal(err)
	}
	observer := newPeer(t, meshtest.Config(t))
	if _, err := observer.Join(alice.Addr()); err != nil {
		t.Fatal(err)
	}
	// Mallory joins now and says it claimed "alice" at 1 ms after the epoch.
	mallory := newPeer(t, meshtest.Config(t))
	if _, err := mallory.Join(alice.Addr()); err != nil {
		t.Fatal(err)
	}
	if err := mesh.ForceClaim(ctx, mallory, "alice", time.UnixMilli(1)); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 10*time.Second, "alice and the observer to refuse the claim", func() bool {
		return alice.Stats().RefusedClaims > 0 && observer.Stats().RefusedClaims > 0
	})
	if alice.Name() != "alice" || ownerID(alice, "alice") != alice.ID() {
		t.Fatalf("alice gave up her name: name %q, owner %s", alice.Name(), ownerID(alice, "alice"))
	}
	if ownerID(observer, "alice") != alice.ID() {
		t.Fatalf("the observer gives alice's name to %s", ownerID(observer, "alice"))
	}
}

// A live holder yields to an earlier claim only once the claimant has proven it is a live peer
// of its identity (mesh.Config.ConfirmClaim; the relay does it with a handshake). Replayed
// gossip of a departed peer cannot answer, so it takes nothing; a real concurrent claim still
// wins, and the loser is told.
func TestHolderYieldsOnlyToAProvenClaimant(t *testing.T) {
	for _, proven := range []bool{false, true} {
		name := map[bool]string{false: "unproven", true: "proven"}[proven]
		t.Run(name, func(t *testing.T) {
			ctx := t.Context()
			var asked atomic.Int32
			rival := newPeer(t, meshtest.Config(t))
			cfg := meshtest.Config(t)
			cfg.ConfirmClaim = func(_ context.Context, m mesh.Member) bool {
				asked.Add(1)
				return proven && m.ID == rival.ID()
			}
			holder := newPeer(t, cfg)
			if _, err := rival.Join(holder.Addr()); err != nil {
				t.Fatal(err)
			}
			testutil.WaitFor(t, 10*time.Second, "the two to see each other", func() bool { return len(holder.Members()) == 2 })
			if err := holder.Claim(ctx, "x"); err != nil {
				t.Fatal(err)
			}
			lost := make(chan mesh.Event, 64)
			cancel := holder.Subscribe(lost)
			defer cancel()
			// The rival announces a claim made one second before the holder's: observable (the
			// holder knew it then), and first in the ranking.
			if err := mesh.ForceClaim(ctx, rival, "x", time.Now().Add(-time.Second)); err != nil {
				t.Fatal(err)
			}
			testutil.WaitFor(t, 10*time.Second, "the holder to ask for proof", func() bool { return asked.Load() > 0 })
			if proven {
				testutil.WaitFor(t, 10*time.Second, "the holder to yield", func() bool { return ownerID(holder, "x") == rival.ID() && holder.Name() == "" })
				return
			}
			testutil.WaitFor(t, 10*time.Second, "the refusal to be counted", func() bool { return holder.Stats().RefusedClaims > 0 })
			if holder.Name() != "x" || ownerID(holder, "x") != holder.ID() {
				t.Fatalf("the holder gave its name to a claimant that proved nothing: name %q owner %s", holder.Name(), ownerID(holder, "x"))
			}
			for len(lost) > 0 {
				if e := <-lost; e.Type == mesh.EventNameLost {
					t.Fatalf("the holder was told it lost its name: %+v", e)
				}
			}
		})
	}
}

// A peer that said goodbye never comes back: memberlist forgets a departed node after
// GossipToTheDeadTime and takes a replayed "alive" of it as news, and the mesh ignores that
// news, before and after it has dropped the member (Retain). Before, replayed gossip of a
// departed peer brought it back alive, holding its name.
func TestDepartedPeerDoesNotComeBack(t *testing.T) {
	ctx := t.Context()
	cfg := meshtest.Config(t)
	cfg.Retain = 100 * time.Millisecond
	bob := newPeer(t, cfg)
	alice := newPeer(t, meshtest.Config(t))
	if _, err := alice.Join(bob.Addr()); err != nil {
		t.Fatal(err)
	}
	if err := alice.Claim(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 10*time.Second, "bob to see alice's claim", func() bool { return ownerID(bob, "alice") == alice.ID() })
	gone := alice.Self()
	if err := alice.Close(); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 10*time.Second, "bob to see alice leave and forget her", func() bool {
		_, known := bob.Member(gone.ID)
		return !known && ownerID(bob, "alice") == ""
	})
	addr, err := net.ResolveTCPAddr("tcp", gone.Addr)
	if err != nil {
		t.Fatal(err)
	}
	meta := gone.Meta
	meta.Leaving = false // her gossip from before the goodbye
	mesh.ReplayAlive(bob, gone.ID, meta, addr)
	if m, known := bob.Member(gone.ID); known && m.State == mesh.MemberAlive {
		t.Fatalf("the departed peer came back: %+v", m)
	}
	if o := ownerID(bob, "alice"); o != "" {
		t.Fatalf("the departed peer's name is held by %s", o)
	}
}
