package relay

import (
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/paf-mesh/paf-mesh/internal/testutil"
	"github.com/paf-mesh/paf-mesh/mesh"
	"github.com/paf-mesh/paf-mesh/relay/store"
	"github.com/paf-mesh/paf-mesh/relay/wire"
)

// A peer that has begun to leave keeps no more messages for others, not even
// one it has already: its confirmation would let another holder drop the copy
// that stays (issue 17 item 7).
func TestLeavingPeerConfirmsNoCopy(t *testing.T) {
	ns := startHolders(t, []string{"a", ""})
	h := ns[1]
	m := &Message{ID: "01TESTEAVNGX00000000000000", From: "a", To: "bob", Kind: KindMessage, Body: "hi", SentAt: time.Now().UTC().Truncate(time.Millisecond)}
	wire.SignMessage(m, ns[0].peer.Identity()) // holders keep only what its author signed
	if err := ns[0].relay.storeAt(ctx, h.peer.Self(), m, true); err != nil {
		t.Fatalf("store at a staying peer: %v", err)
	}
	// What a peer's shutdown does first (node.Close leaves the mesh before
	// it closes the relay): the peer is marked leaving.
	testutil.Must(t, h.peer.Close())
	err := ns[0].relay.storeAt(ctx, h.peer.Self(), m, true)
	if wire.CodeOf(err) != wire.CodeNotHolding {
		t.Fatalf("store of a copy it has, at a leaving peer: %v (code %v), want a not-holding refusal", err, wire.CodeOf(err))
	}
	// Its own copy it hands to the peer that stays.
	testutil.WaitFor(t, 10*time.Second, "the leaving peer to hand its copy to the one that stays", func() bool {
		return ns[0].relay.HeldCount("bob") == 1
	})
}

// Every holder leaving at once (a total restart): however their moves to one
// another interleave, at least one copy stays on disk, for whoever adopts the
// slot. Before the fix the holders copied to each other and all dropped
// theirs, in a few runs out of ten.
func TestHoldersLeavingTogetherKeepACopy(t *testing.T) {
	for run := range 10 {
		slots := []string{filepath.Join(t.TempDir(), "s0"), filepath.Join(t.TempDir(), "s1"), filepath.Join(t.TempDir(), "s2")}
		ns := make([]*node, len(slots))
		for i := range slots {
			ns[i] = startNode(t, "", holder(slots[i]))
			if i > 0 {
				if _, err := ns[i].peer.Join(ns[0].peer.Addr()); err != nil {
					t.Fatal(err)
				}
			}
		}
		testutil.Must(t, ns[0].peer.Claim(ctx, "a"))
		waitRelays(t, ns)
		res, err := ns[0].relay.Send(ctx, Outgoing{From: "a", To: "later", Body: fmt.Sprint("run ", run)})
		if err != nil || res.Holders != 3 {
			t.Fatalf("run %d: send: %+v %v", run, res, err)
		}
		var wg sync.WaitGroup
		for _, n := range ns {
			wg.Add(1)
			go func() {
				defer wg.Done()
				// node.Close's order: leave the mesh, then close the relay.
				n.peer.Close()
				n.relay.Close()
			}()
		}
		wg.Wait()
		copies := 0
		for _, dir := range slots {
			h, err := store.OpenHeld(dir, time.Now)
			if err != nil {
				t.Fatal(err)
			}
			copies += h.Count("later")
			testutil.Must(t, h.Close())
		}
		if copies == 0 {
			t.Fatalf("run %d: every holder left and no copy of the message is on disk", run)
		}
	}
}

// waitRelays waits until every peer of ns sees every other with its relay.
func waitRelays(t *testing.T, ns []*node) {
	t.Helper()
	testutil.WaitFor(t, 30*time.Second, "every peer to see every other's relay", func() bool {
		for _, n := range ns {
			if len(holdersFor("x", n.peer.Members(), len(ns))) != len(ns) {
				return false
			}
		}
		return true
	})
}

func TestHandoverRank(t *testing.T) {
	member := func(id string) mesh.Member {
		var m mesh.Meta
		SetMetaAddr(&m, "127.0.0.1:1")
		return mesh.Member{ID: id, State: mesh.MemberAlive, Meta: m}
	}
	members := []mesh.Member{member("a"), member("b"), member("c"), member("d"), member("rcpt")}
	rcpt := mesh.Route{Name: "bob", Online: true, Owner: members[4]}
	ranked := holdersFor("bob", members[:4], 3) // the holders without the recipient's peer
	tests := map[string]struct {
		self string
		want int
	}{
		"recipient's own peer": {"rcpt", 0},
		"first holder":         {ranked[0].ID, 0},
		"second holder":        {ranked[1].ID, 1},
		"third holder":         {ranked[2].ID, 2},
		"stale copy":           {"zz", 3},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := handoverRank("bob", rcpt, members, tc.self, 3); got != tc.want {
				t.Fatalf("rank of %s = %d, want %d", tc.self, got, tc.want)
			}
		})
	}
}
