package relay

import (
	"slices"

	"github.com/paf-mesh/paf-mesh/mesh"
)

// Telling the holders of a name at once that this peer took it.
//
// Holders learn of a claim from the mesh, and the mesh spreads it by gossip: a
// claim reaches three random peers per gossip round (100 ms), so the holder
// ranked first for a name saw it one to three rounds after the claim, more on
// a loaded machine. Profiled (BenchmarkHandover/msgs-1, 10 peers), every
// handover finished within 3-5 ms of that holder seeing the claim: the
// gossip was the whole delay (p50 about 120 ms, p99 200-640 ms). So the
// claiming peer exchanges its membership state with the holders of the name
// at once (memberlist's push/pull, over the same authenticated and, in secure
// mode, encrypted stream as its periodic anti-entropy): each merges the claim
// as if gossip had brought it, its holdLoop wakes on the name event, and the
// first-ranked one hands over. Nothing else changes: a holder still hands
// over only to the owner its own view shows, and gossip still reaches every
// other peer.

// stateSyncer is what a Directory may also do (mesh.Peer does): exchange the
// whole membership state with peers at the given gossip addresses, returning
// how many answered.
type stateSyncer interface {
	Join(addrs ...string) (int, error)
}

// claimPushLoop pushes this peer's state to the holders of every name it
// takes (a claim, or a rename, which claims the new name), until the relay
// stops. The push waits for the mesh's own update of this peer (memberlist
// tells it of the new metadata once UpdateNode has set it, which comes right
// after the claim event): pushed before, the state would still carry the
// metadata without the name.
func (r *Relay) claimPushLoop(sy stateSyncer, sub subscription) {
	defer r.wg.Done()
	defer sub.cancel()
	events := sub.events
	self := r.dir.ID()
	var pending []string // names claimed, not pushed yet
	for {
		var e mesh.Event
		select {
		case <-r.stop:
			return
		case e = <-events:
		}
		switch {
		case e.PeerID != self:
		case e.Type == mesh.EventNameClaimed:
			pending = append(pending, e.Name)
		case e.Type == mesh.EventPeerUpdated && len(pending) > 0:
			for _, name := range pending {
				r.pushClaim(sy, name)
			}
			pending = pending[:0]
		}
	}
}

// subscription is a subscription to the Directory's events, taken before the goroutine that
// reads it starts, so that no event after New returns is missed.
type subscription struct {
	events <-chan mesh.Event
	cancel func()
}

func (r *Relay) subscribe() subscription {
	ch := make(chan mesh.Event, 64)
	return subscription{events: ch, cancel: r.dir.Subscribe(ch)}
}

// pushClaim exchanges state with each peer that may hold messages for name
// (the holders handover ranks, which leave this peer out), in parallel, so
// that a holder slow to answer delays no other.
func (r *Relay) pushClaim(sy stateSyncer, name string) {
	self := r.dir.ID()
	others := slices.DeleteFunc(r.dir.Members(), func(m mesh.Member) bool { return m.ID == self })
	for _, h := range holdersFor(name, others, r.cfg.Replicas) {
		if h.Addr == "" || h.State != mesh.MemberAlive {
			// A suspect holder may be gone: its dial would hold Close up to memberlist's
			// TCPTimeout (10 s in the LAN preset), and gossip reaches it if it is not.
			continue
		}
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			if _, err := sy.Join(h.Addr); err != nil {
				// Gossip still brings the claim, a round or a few later.
				r.log.Debug("push claim to a holder", "name", name, "holder", h.ID, "err", err)
			}
		}()
	}
}
