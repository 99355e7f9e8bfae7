package mesh

import "github.com/paf-mesh/paf-mesh/internal/keys"

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
