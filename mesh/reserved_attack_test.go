package mesh_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/paf-mesh/paf-mesh/internal/keys"
	"github.com/paf-mesh/paf-mesh/internal/testutil"
	"github.com/paf-mesh/paf-mesh/mesh"
	"github.com/paf-mesh/paf-mesh/mesh/meshtest"
)

// confirm is a ConfirmClaim that proves exactly the peer ids set in o, as the relay's
// handshake proves a live peer of an identity and nothing else.
func (o *idOracle) confirm(_ context.Context, m mesh.Member) bool { return o.ask(m.ID) }

// Security II: a name reserved for a failed peer (its grace period) is taken only by the same
// identity (SPEC section 7). Before, a claimant of another identity announcing an earlier
// claim time took it from the reservation at once, and the failed session's restart could
// not have it back until the grace had passed.
func TestReservedNameTakenOnlyBySameIdentity(t *testing.T) {
	ctx := t.Context()
	var proven idOracle
	conf := func(id *keys.Identity) *mesh.Config {
		c := meshtest.Config(t)
		c.NameGrace = time.Hour // the reservation outlasts the test
		c.Identity = id
		c.ConfirmClaim = proven.confirm
		return c
	}
	aliceKey, malloryKey := keys.NewIdentity(), keys.NewIdentity()
	observer := newPeer(t, conf(keys.NewIdentity()))
	alice := newPeer(t, conf(aliceKey))
	mallory := newPeer(t, conf(malloryKey))
	for _, p := range []*mesh.Peer{alice, mallory} {
		if _, err := p.Join(observer.Addr()); err != nil {
			t.Fatal(err)
		}
	}
	if err := alice.Claim(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 10*time.Second, "everyone to see alice's claim", func() bool {
		return ownerID(observer, "alice") == alice.ID() && ownerID(mallory, "alice") == alice.ID()
	})
	gone := alice.ID()
	meshtest.Crash(alice)
	testutil.WaitFor(t, 20*time.Second, "the observer to see alice fail and keep her name", func() bool {
		m, ok := observer.Member(gone)
		return ok && m.State == mesh.MemberDead && ownerID(observer, "alice") == gone
	})

	// Alice's restarted session (her identity, a new peer id) joins and learns the reservation.
	restarted := newPeer(t, conf(aliceKey))
	if _, err := restarted.Join(observer.Addr()); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 10*time.Second, "the restarted session to learn the reservation", func() bool {
		return ownerID(restarted, "alice") == gone
	})

	// Mallory (proven live, of another identity) announces a claim of "alice" made long before.
	proven.set(mallory.ID())
	if err := mesh.ForceClaim(ctx, mallory, "alice", time.UnixMilli(1)); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 10*time.Second, "the observer to learn mallory's claim", func() bool {
		m, ok := observer.Member(mallory.ID())
		return ok && m.Meta.Name == "alice"
	})
	if o := ownerID(observer, "alice"); o != gone {
		t.Fatalf("another identity took a reserved name: owner %s, want the failed holder %s", o, gone)
	}
	refused := observer.Stats().RefusedClaims
	if refused == 0 {
		t.Fatal("the refused claim was not counted")
	}

	// A peer id of alice's identity that cannot prove itself live (replayed gossip) takes
	// nothing either, even with an early claim time.
	ghost := newPeer(t, conf(aliceKey))
	if _, err := ghost.Join(observer.Addr()); err != nil {
		t.Fatal(err)
	}
	if err := mesh.ForceClaim(ctx, ghost, "alice", time.UnixMilli(2)); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 10*time.Second, "the observer to refuse the unproven claim", func() bool {
		m, ok := observer.Member(ghost.ID())
		return ok && m.Meta.Name == "alice" && observer.Stats().RefusedClaims > refused
	})
	if o := ownerID(observer, "alice"); o != gone {
		t.Fatalf("an unproven claimant of the same identity took the name: owner %s", o)
	}

	// The restarted session takes it back at once, and proves itself live.
	proven.set(restarted.ID())
	if err := restarted.Claim(ctx, "alice"); err != nil {
		t.Fatalf("the same identity could not take its reserved name back: %v", err)
	}
	testutil.WaitFor(t, 15*time.Second, "the observer to give the name to the proven restarted session", func() bool {
		return ownerID(observer, "alice") == restarted.ID()
	})
	if restarted.Name() != "alice" {
		t.Fatalf("restarted session holds %q", restarted.Name())
	}
}

// A claimant of another identity is refused a reserved name with the time it is released in;
// its own view agrees with everyone's.
func TestReservedNameRefusesOtherIdentity(t *testing.T) {
	ctx := t.Context()
	c := meshtest.Config(t)
	c.NameGrace = time.Hour
	holder := newPeer(t, c)
	c2 := meshtest.Config(t)
	c2.NameGrace = time.Hour
	other := newPeer(t, c2)
	if _, err := other.Join(holder.Addr()); err != nil {
		t.Fatal(err)
	}
	if err := holder.Claim(ctx, "x"); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 10*time.Second, "the other to see the claim", func() bool { return ownerID(other, "x") == holder.ID() })
	meshtest.Crash(holder)
	testutil.WaitFor(t, 20*time.Second, "the other to see the holder fail", func() bool {
		m, ok := other.Member(holder.ID())
		return ok && m.State == mesh.MemberDead
	})
	err := other.Claim(ctx, "x")
	var nte *mesh.NameTakenError
	if !errors.As(err, &nte) || nte.ReleasedIn <= 0 {
		t.Fatalf("claim of a reserved name by another identity: %v, want a NameTakenError saying when it is released", err)
	}
}

// A reservation never takes a name from its live holder. Before, a reservation forged into
// push/pull state (any peer id, a claim time of 1 ms) took a live name in every view that
// merged it: messages for it were stored instead of delivered for as long as it was resent.
func TestForgedReservationDoesNotTakeLiveName(t *testing.T) {
	ctx := t.Context()
	holder := newPeer(t, meshtest.Config(t))
	observer := newPeer(t, meshtest.Config(t))
	if _, err := observer.Join(holder.Addr()); err != nil {
		t.Fatal(err)
	}
	if err := holder.Claim(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 10*time.Second, "the observer to see the claim", func() bool { return ownerID(observer, "alice") == holder.ID() })
	forged, err := json.Marshal(map[string]any{
		"f": []any{},
		"r": []map[string]any{{"n": "alice", "id": keys.NewIdentity().NewPeerID(), "c": 1, "ms": 60_000}},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []*mesh.Peer{observer, holder} {
		mesh.MergeState(p, forged)
	}
	for _, p := range []*mesh.Peer{observer, holder} {
		if o := ownerID(p, "alice"); o != holder.ID() {
			t.Fatalf("a forged reservation took a live name: owner %s, want %s", o, holder.ID())
		}
	}
	if holder.Name() != "alice" {
		t.Fatalf("the holder lost its name to a forged reservation: %q", holder.Name())
	}
}
