package mesh

import (
	"context"
	"net"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/paf-mesh/paf-mesh/internal/keys"
)

// Crash stops p the way SIGKILL would, for the tests of package mesh_test.
func Crash(p *Peer) { p.crash() }

// PushPullState is what p sends on memberlist's push/pull.
func PushPullState(p *Peer) []byte { return (&delegate{p: p}).LocalState(false) }

// GuardStats is the guard's counters, for mesh_test.
type GuardStats = guardStats

// The guard's read cap and the largest forwarding state, for mesh_test.
const (
	MaxStreamMessage = maxStreamMessage
	MaxForwardState  = maxForwardState
)

// GuardSnapshot is the guard of p's memberlist transport: its open streams,
// bytes held and counters; ok is false if the transport is not guarded.
func GuardSnapshot(p *Peer) (conns int, bytes int64, st GuardStats, ok bool) {
	gt, ok := p.cfg.Memberlist.Transport.(*guardedTransport)
	if !ok {
		return 0, 0, GuardStats{}, false
	}
	conns, bytes, st = gt.guard.snapshot()
	return conns, bytes, st, true
}

// AddForwards puts fs into p's forwarding table as if learnt.
func AddForwards(p *Peer, fs []Forward) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, f := range fs {
		p.forwards[f.From] = f
	}
}

// PushPullJoinState is what p sends on a join's push/pull.
func PushPullJoinState(p *Peer) []byte { return (&delegate{p: p}).LocalState(true) }

// DeliverForward hands p a forward as if another peer had gossiped it.
func DeliverForward(p *Peer, f Forward) {
	b, err := encodeBroadcast(msgForward, f)
	if err != nil {
		panic(err)
	}
	(&delegate{p: p}).NotifyMsg(b)
}

// SignForward signs f as written by id.
func SignForward(f *Forward, id *keys.Identity) { f.sign(id) }

// ForceClaim makes p announce name with claim time at, as an insider's modified peer would:
// without checking that the name is free, with any time it likes, and never giving it up.
func ForceClaim(ctx context.Context, p *Peer, name string, at time.Time) error {
	p.mu.Lock()
	p.insider = true
	p.self.Name, p.self.ClaimedAt = name, at.UnixMilli()
	p.recomputeLocked(p.now())
	p.mu.Unlock()
	return p.announce(ctx)
}

// ReplayAlive hands p memberlist's news that node id is alive with metadata meta at addr, as
// a replayed "alive" gossip message would once memberlist has forgotten the node.
func ReplayAlive(p *Peer, id string, meta Meta, addr *net.TCPAddr) {
	(&delegate{p: p}).NotifyJoin(&memberlist.Node{Name: id, Addr: addr.IP, Port: uint16(addr.Port), Meta: encodeMeta(meta, memberlist.MetaMaxSize)})
}

// MergeState hands p a push/pull state as if another peer had sent it.
func MergeState(p *Peer, b []byte) { (&delegate{p: p}).MergeRemoteState(b, false) }

// BurstsOn says whether p gossips in bursts (burst.go), for mesh_test.
func BurstsOn(p *Peer) bool { return p.burst != nil }

// NextTick is how long p's housekeeping loop would wait now before its next tick.
func NextTick(p *Peer) time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.nextTickLocked(p.now())
}

// Housekeeping intervals, for mesh_test.
const (
	TickBusy = tickBusy
	TickIdle = tickIdle
)

// LocalUDPBufferSize is the local preset's gossip packet size.
const LocalUDPBufferSize = localUDPBufferSize

// CheckUpdatesLocked makes p report to fail every UpdateNode that runs while announceMu is
// free (its caller does not hold it). Call before p is used by other goroutines.
func CheckUpdatesLocked(p *Peer, fail func()) {
	p.beforeUpdate = func() {
		if p.announceMu.TryLock() {
			p.announceMu.Unlock()
			fail()
		}
	}
}
