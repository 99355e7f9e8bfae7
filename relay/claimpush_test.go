package relay

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/paf-mesh/paf-mesh/internal/testutil"
	"github.com/paf-mesh/paf-mesh/mesh"
	"github.com/paf-mesh/paf-mesh/mesh/meshtest"
)

// silentNode is startNode on a mesh that never gossips, probes or syncs on its own (every
// interval an hour): a peer learns another's state only when one of them joins the other
// (memberlist's push/pull).
func silentNode(t *testing.T) *node {
	t.Helper()
	mc := meshtest.Config(t)
	mc.Memberlist.GossipInterval = time.Hour
	mc.Memberlist.ProbeInterval = time.Hour
	mc.Memberlist.PushPullInterval = time.Hour
	p, err := mesh.New(mc)
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.Dir, cfg.Key, cfg.StateRoot, cfg.Logger = p, relayKey, t.TempDir(), testutil.QuietLogger(t, meshtest.LogLevel())
	cfg.HolderDir = cfg.StateRoot + "/slot"
	cfg.DeliverTimeout = 5 * time.Second
	r, err := New(cfg)
	if err != nil {
		p.Close()
		t.Fatal(err)
	}
	n := &node{peer: p, relay: r, root: cfg.StateRoot}
	t.Cleanup(n.close)
	if err := p.SetMeta(context.Background(), func(m *mesh.Meta) { SetMetaAddr(m, r.Addr()) }); err != nil {
		t.Fatal(err)
	}
	return n
}

// A peer that claims a name tells the holders of messages for it at once, by a state exchange
// with each, rather than leaving it to gossip: here there is no gossip at all, and the stored
// message is handed over all the same.
func TestClaimPushedToHolders(t *testing.T) {
	ns := make([]*node, 5) // a sender, three holders, the recipient
	for i := range ns {
		ns[i] = silentNode(t)
	}
	t.Cleanup(func() { // before each node's own (idempotent) close: leaves overlap
		var wg sync.WaitGroup
		for _, n := range ns {
			wg.Go(n.close)
		}
		wg.Wait()
	})
	sender, recipient := ns[0], ns[4]
	if err := sender.peer.Claim(context.Background(), "src"); err != nil {
		t.Fatal(err)
	}
	// Without gossip, every pair must meet once.
	for i := range ns {
		for j := range i {
			if _, err := ns[i].peer.Join(ns[j].peer.Addr()); err != nil {
				t.Fatal(err)
			}
		}
	}
	testutil.WaitFor(t, 10*time.Second, "every peer to know every other with its relay, and the sender's name", func() bool {
		for _, n := range ns {
			if len(holdersFor("", n.peer.Members(), len(ns))) != len(ns) {
				return false
			}
			if r, _ := n.peer.Resolve("src"); !r.Online {
				return false
			}
		}
		return true
	})
	name := ""
	for k := 0; name == ""; k++ {
		c := fmt.Sprintf("later-%d", k)
		if !slices.ContainsFunc(holdersFor(c, sender.peer.Members(), DefaultReplicas), func(m mesh.Member) bool { return m.ID == recipient.peer.ID() }) {
			name = c
		}
	}
	res, err := sender.relay.Send(ctx, Outgoing{From: "src", To: name, Body: "kept for later"})
	if err != nil || res.Status != StatusStored {
		t.Fatalf("send to %s before it is claimed: %+v, %v; want stored", name, res, err)
	}
	if err := recipient.peer.Claim(context.Background(), name); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 10*time.Second, "the stored message in the recipient's inbox", func() bool {
		unread, _, err := recipient.relay.InboxState(name)
		return err == nil && unread == 1
	})
	for _, n := range ns[1:4] {
		if r, _ := n.peer.Resolve(name); !r.Online && slices.ContainsFunc(holdersFor(name, sender.peer.Members(), DefaultReplicas), func(m mesh.Member) bool { return m.ID == n.peer.ID() }) {
			t.Errorf("holder %s does not know that %s is online", n.peer.ID(), name)
		}
	}
}
