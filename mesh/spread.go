package mesh

// A second path for a claim: one push/pull with a random live peer.

import "math/rand/v2"

// spreadClaim pushes this peer's whole state, the claim just announced included, to one live
// peer chosen at random (a push/pull, as a join does), in the background. The peer that
// receives it takes the new metadata at once and gossips it on, as it does any news of a
// node. Gossip alone sometimes lost a claim made at start, when this peer knew only one or
// two others: 20 sessions starting together then saw all the names after 10-18 s (the next
// periodic push/pull) instead of 2 s, in 1 run of 10 (issue 18; not root-caused in
// memberlist). Claims are rare (a session's start, a rename), so the cost is one small TCP
// exchange each.
func (p *Peer) spreadClaim() {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.stop:
		return
	default:
	}
	var addrs []string
	for id, m := range p.members {
		if id != p.id && m.State == MemberAlive && m.Addr != "" {
			addrs = append(addrs, m.Addr)
		}
	}
	if len(addrs) == 0 {
		return
	}
	addr := addrs[rand.N(len(addrs))]
	p.wg.Add(1) // under mu while stop is open: Close waits for it (see Close)
	go func() {
		defer p.wg.Done()
		if _, err := p.ml.Join([]string{addr}); err != nil {
			p.log.Debug("push our claim to a peer", "addr", addr, "err", err)
		}
	}()
}
