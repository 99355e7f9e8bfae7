package mesh

import (
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// memberlist's Shutdown does not wait for a probe in flight; it
		// ends by itself within one probe interval. Not ours to leak.
		goleak.IgnoreTopFunction("github.com/hashicorp/memberlist.(*Memberlist).probeNode"),
		goleak.IgnoreTopFunction("github.com/hashicorp/memberlist.(*Memberlist).probeNodeByAddr"),
	)
}

// aliveCount counts live members: alive, or suspect (not declared dead).
func aliveCount(p *Peer) int {
	n := 0
	for _, m := range p.Members() {
		if m.State == MemberAlive || m.State == MemberSuspect {
			n++
		}
	}
	return n
}

func ownerID(p *Peer, name string) string {
	m, ok := p.Owner(name)
	if !ok {
		return ""
	}
	return m.ID
}

// crash stops p the way SIGKILL would: no leave message, no goodbye.
func (p *Peer) crash() { CrashForTest(p) }
