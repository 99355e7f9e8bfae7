package mesh

import (
	"encoding/json"
	"net"
	"strconv"

	"github.com/hashicorp/memberlist"
)

// delegate adapts Peer to memberlist's callbacks. memberlist calls these with
// its own locks held: they take Peer.mu and never call back into memberlist,
// and they never block on anything but Peer.mu.
type delegate struct{ p *Peer }

var (
	_ memberlist.Delegate      = (*delegate)(nil)
	_ memberlist.EventDelegate = (*delegate)(nil)
)

func (d *delegate) NodeMeta(limit int) []byte {
	d.p.mu.Lock()
	m := d.p.self
	d.p.mu.Unlock()
	return encodeMeta(m, min(limit, metaLimit))
}

// NotifyMsg handles a gossiped application message. A forward that taught us
// something new is queued again for gossip: memberlist does not re-gossip
// user broadcasts, and without this a forward reaches only the few peers the
// originator gossiped to directly.
func (d *delegate) NotifyMsg(b []byte) {
	p := d.p
	_, f, err := decodeBroadcast(b)
	if err != nil {
		p.mu.Lock()
		p.stats.BadBroadcasts++
		p.mu.Unlock()
		p.log.Warn("dropping malformed gossip message", "err", err)
		return
	}
	if len(p.applyRemoteForwards([]Forward{f})) > 0 {
		p.broadcastForwards([]Forward{f})
	}
}

func (d *delegate) GetBroadcasts(overhead, limit int) [][]byte {
	return d.p.queue.GetBroadcasts(overhead, limit)
}

// LocalState sends our whole forwarding table (tombstones included) and the
// names we reserve for failed peers on push/pull: anti-entropy for any
// broadcast a peer missed, and how a new or restarted peer learns both at
// join.
func (d *delegate) LocalState(join bool) []byte {
	p := d.p
	p.mu.Lock()
	st := pushState{Forwards: p.forwards.all(), Reserved: p.reservationsLocked(p.now())}
	p.mu.Unlock()
	var v any = st
	if len(st.Reserved) == 0 {
		// Usually nothing is reserved: send the bare table, which peers
		// from before reservations decode too.
		v = st.Forwards
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil
	}
	return b
}

func (d *delegate) MergeRemoteState(buf []byte, join bool) {
	p := d.p
	if len(buf) == 0 {
		return
	}
	st, bad, err := decodePushState(buf)
	if err != nil || bad > 0 {
		p.mu.Lock()
		p.stats.BadBroadcasts++
		p.mu.Unlock()
		p.log.Warn("dropping malformed push/pull state from a peer", "err", err, "bad_entries", bad)
	}
	p.applyRemoteForwards(st.Forwards)
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	for _, r := range st.Reserved {
		p.reserveLocked(r, now)
	}
	p.recomputeLocked(now)
}

func (d *delegate) NotifyJoin(n *memberlist.Node) { d.update(n, EventPeerJoined) }

func (d *delegate) NotifyUpdate(n *memberlist.Node) { d.update(n, EventPeerUpdated) }

func (d *delegate) NotifyLeave(n *memberlist.Node) {
	p := d.p
	p.mu.Lock()
	defer p.mu.Unlock()
	m := p.members[n.Name]
	if m == nil {
		return
	}
	if m.State == MemberLeft {
		return // it said it was leaving; already handled
	}
	if p.gone.Contains(n.Name) && m.State == MemberDead && !m.Meta.Leaving {
		return // failed already (Config.Gone): its grace period runs from then
	}
	p.news() // memberlist gossips the death on
	now := p.now()
	m.Since = now
	ev := EventPeerFailed
	m.State = MemberDead
	if m.Meta.Leaving {
		m.State, ev = MemberLeft, EventPeerLeft
		p.departed.Add(n.Name, struct{}{})
	}
	p.emitLocked(Event{Type: ev, PeerID: n.Name})
	p.recomputeLocked(now)
}

func (d *delegate) update(n *memberlist.Node, ev EventType) {
	p := d.p
	meta, err := decodeMeta(n.Meta)
	p.mu.Lock()
	defer p.mu.Unlock()
	if err != nil {
		p.stats.BadMeta++
		p.log.Warn("ignoring peer metadata", "peer", n.Name, "err", err)
	}
	now := p.now()
	m := p.members[n.Name]
	if (m != nil && m.State == MemberLeft) || (m == nil && p.departed.Contains(n.Name)) {
		// A peer that said goodbye never comes back: a process leaves once, and a restarted
		// one has a new id. Anything more about it is a repeat of the goodbye or a replay of
		// its old gossip (memberlist, which forgets a departed node after
		// GossipToTheDeadTime, takes a replayed "alive" as news).
		return
	}
	if p.gone.Contains(n.Name) && (err != nil || !meta.Leaving) {
		// Proved stopped (Config.Gone): what memberlist says of it now is its old gossip, until
		// its own probes find it dead too. Only its goodbye, sent before it stopped, counts.
		return
	}
	if m == nil {
		m = &Member{ID: n.Name, Since: now}
		p.members[n.Name] = m
		if _, ok := p.firstSeen[n.Name]; !ok {
			p.firstSeen[n.Name] = now
		}
		ev = EventPeerJoined
	} else if m.State != MemberAlive {
		// Back from suspect, or rejoined after being declared dead.
		m.Since = now
		ev = EventPeerJoined
	}
	m.State = MemberAlive
	m.Addr = net.JoinHostPort(n.Addr.String(), strconv.Itoa(int(n.Port)))
	if err == nil {
		m.Meta = meta
	}
	m.Self = n.Name == p.id
	if m.Meta.Leaving && !m.Self {
		// Gone as far as we are concerned: release its name now rather
		// than when memberlist's leave message arrives.
		m.State, m.Since, ev = MemberLeft, now, EventPeerLeft
		p.departed.Add(n.Name, struct{}{})
	}
	p.news() // memberlist gossips what it learnt on
	p.emitLocked(Event{Type: ev, PeerID: n.Name})
	p.recomputeLocked(now)
}
