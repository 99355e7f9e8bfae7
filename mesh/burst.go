package mesh

// Gossip that is fast while something changes and slow while nothing does.
//
// memberlist gossips on one fixed ticker (its GossipInterval, read once at Create), and each
// tick wakes the process even when there is nothing to send. At 100 ms that was 40 % of an idle
// `paf-peer mcp`'s CPU (20 idle sessions, A/B in the same minutes, issue 18: 0.49-0.53 % of a
// core each against 0.28-0.32 % at 1 s). So the presets set memberlist's ticker to
// idleGossipInterval (the local preset: localGossipInterval), and a peer with news gossips every Config.BurstGossip for burstGossipFor
// after the last news: each round pings GossipNodes random live peers with memberlist's public
// Ping, and memberlist piggybacks its pending broadcasts on a ping exactly as on a gossip
// packet (and the peer answers with an ack that carries its own). News is what queues a
// broadcast: our own metadata update (a claim, a rename, presence), a forward queued, a peer
// that joined, changed or failed (memberlist re-gossips what it learnt), our own failed probe
// (it gossips the suspicion). A peer that learns news this way has news itself, so a change
// spreads at the burst pace, hop by hop, as it did at memberlist's. What is queued without
// telling any delegate (a suspicion about a third peer learnt from another) goes at the idle
// pace, and on every probe packet.

import (
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

const (
	// DefaultBurstGossip is Config.BurstGossip's default: memberlist's own local pace, which
	// the presets used for every tick before.
	DefaultBurstGossip = 100 * time.Millisecond
	// idleGossipInterval is memberlist's ticker in the LAN preset (the local one uses
	// localGossipInterval): what reaches a peer without news (see above) waits at most this,
	// or the next probe.
	idleGossipInterval = time.Second
	// burstGossipFor is how long a burst lasts after the last news: ten rounds of
	// GossipNodes pings, more than the retransmissions memberlist gives one broadcast at a
	// hundred peers (RetransmitMult 4 x ceil(log10(101)) = 12, three per round).
	burstGossipFor = time.Second
	// burstFirstRound is how long a burst waits for the news to be queued: the signal comes
	// just before memberlist queues the broadcast (UpdateNode), and changes that come
	// together leave in one packet.
	burstFirstRound = 2 * time.Millisecond
	// maxBurstPings bounds the pings in flight: one waits up to ProbeTimeout for its ack.
	maxBurstPings = 16
)

// news tells the burst loop that something was queued for gossip. It never blocks: memberlist
// calls our delegates with its locks held.
func (p *Peer) news() {
	if p.burst == nil {
		return
	}
	select {
	case p.burst <- struct{}{}:
	default:
	}
}

// burstLoop gossips every cfg.BurstGossip while news keeps coming, and stops burstGossipFor
// after the last. Only started when BurstGossip is shorter than memberlist's GossipInterval.
// It runs until burstStop closes, which Close does after our goodbye has left (the goodbye is
// news too), and waits for its pings.
func (p *Peer) burstLoop() {
	defer p.burstWG.Done()
	t := time.NewTimer(time.Hour)
	t.Stop()
	var until time.Time
	bursting := false
	var inFlight atomic.Int32
	var pings sync.WaitGroup
	defer pings.Wait()
	for {
		select {
		case <-p.burstStop:
			t.Stop()
			return
		case <-p.burst:
			until = time.Now().Add(burstGossipFor)
			if !bursting {
				bursting = true
				t.Reset(burstFirstRound)
			}
		case <-t.C:
			if time.Now().After(until) {
				bursting = false
				continue
			}
			p.gossipRound(&inFlight, &pings)
			t.Reset(p.cfg.BurstGossip)
		}
	}
}

// gossipRound pings GossipNodes random live peers other than us, in the background, each
// ping carrying what memberlist has queued. The peers come from our own view (memberlist's
// Members hands out nodes it goes on writing).
func (p *Peer) gossipRound(inFlight *atomic.Int32, pings *sync.WaitGroup) {
	type target struct {
		id   string
		addr *net.UDPAddr
	}
	p.mu.Lock()
	ts := make([]target, 0, len(p.members))
	for id, m := range p.members {
		if id == p.id || (m.State != MemberAlive && m.State != MemberSuspect) {
			continue
		}
		if ap, err := netip.ParseAddrPort(m.Addr); err == nil {
			ts = append(ts, target{id, net.UDPAddrFromAddrPort(ap)})
		}
	}
	p.mu.Unlock()
	rand.Shuffle(len(ts), func(i, j int) { ts[i], ts[j] = ts[j], ts[i] })
	for _, t := range ts[:min(len(ts), p.cfg.Memberlist.GossipNodes)] {
		if inFlight.Load() >= maxBurstPings {
			return
		}
		inFlight.Add(1)
		pings.Go(func() {
			defer inFlight.Add(-1)
			// No answer is no news here: probes judge liveness, not this.
			_, _ = p.ml.Ping(t.id, t.addr)
		})
	}
}
