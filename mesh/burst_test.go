package mesh_test

import (
	"testing"
	"time"

	"github.com/paf-mesh/paf-mesh/internal/testutil"
	. "github.com/paf-mesh/paf-mesh/mesh"
)

// noTimers leaves a peer only its gossip bursts to spread news: memberlist's own gossip and
// probe tickers fire once an hour and push/pull never runs after the join. What reaches the
// other peers then went in a burst's pings (or their acks).
//
// Each broadcast is sent a bounded number of times, to random peers (memberlist's
// RetransmitMult × log10(n+1): 4 sends here by default), so a peer can be missed by all of
// them; in the product the idle ticker and push/pull repair that later, but here nothing
// would, and about one run in 40 under -race waited for news that could not come. A larger
// budget keeps the test about what it checks, that bursts carry the news hop by hop.
func noTimers(_ int, c *Config) {
	c.Memberlist.GossipInterval = time.Hour
	c.Memberlist.ProbeInterval = time.Hour
	c.Memberlist.PushPullInterval = 0
	c.Memberlist.RetransmitMult = 12
	c.BurstGossip = 20 * time.Millisecond
}

// TestBurstsCarryNews: a claim, a rename's forward and a goodbye reach every peer with
// memberlist's tickers out of the way, so the bursts alone carry them, hop by hop (each peer
// that learns news bursts too). Without bursts nothing here would arrive within the hour.
func TestBurstsCarryNews(t *testing.T) {
	ps := cluster(t, 6, noTimers)
	testutil.WaitFor(t, 10*time.Second, "convergence", func() bool {
		return allSee(ps, func(p *Peer) bool { return aliveCount(p) == 6 })
	})
	testutil.Must(t, ps[4].Claim(bg, "bursty"))
	testutil.WaitFor(t, 10*time.Second, "every peer to see the claim", func() bool {
		return allSee(ps, func(p *Peer) bool { return ownerID(p, "bursty") == ps[4].ID() })
	})
	testutil.Must(t, ps[4].Rename(bg, "calmer"))
	testutil.WaitFor(t, 10*time.Second, "every peer to see the rename and its forward", func() bool {
		return allSee(ps, func(p *Peer) bool {
			return ownerID(p, "calmer") == ps[4].ID() && ownerID(p, "bursty") == "" && len(p.Forwards()) == 1
		})
	})
	// The goodbye is two messages, our Leaving metadata and then memberlist's leave; a peer
	// that gets the leave first shows the peer failed rather than left, and frees its name
	// after the grace period rather than at once (as with memberlist's own ticker: the
	// metadata only has a round's head start).
	id := ps[4].ID()
	testutil.Must(t, ps[4].Close())
	testutil.WaitFor(t, 10*time.Second, "every other peer to see the goodbye and the name free", func() bool {
		return allSee(append(ps[:4:4], ps[5]), func(p *Peer) bool {
			m, ok := p.Member(id)
			return ok && (m.State == MemberLeft || m.State == MemberDead) && ownerID(p, "calmer") == ""
		})
	})
}

// TestNoBurstsWhenMemberlistIsFaster: a BurstGossip no shorter than memberlist's own
// interval turns bursts off, and memberlist's ticker spreads a claim as before.
func TestNoBurstsWhenMemberlistIsFaster(t *testing.T) {
	ps := cluster(t, 4, func(_ int, c *Config) {
		c.Memberlist.GossipInterval = 30 * time.Millisecond
		c.BurstGossip = 30 * time.Millisecond
	})
	for _, p := range ps {
		if BurstsOn(p) {
			t.Fatalf("bursts on with BurstGossip == GossipInterval")
		}
	}
	testutil.WaitFor(t, 10*time.Second, "convergence", func() bool {
		return allSee(ps, func(p *Peer) bool { return aliveCount(p) == 4 })
	})
	testutil.Must(t, ps[1].Claim(bg, "ticker"))
	testutil.WaitFor(t, 10*time.Second, "every peer to see the claim", func() bool {
		return allSee(ps, func(p *Peer) bool { return ownerID(p, "ticker") == ps[1].ID() })
	})
}
