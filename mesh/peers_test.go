package mesh_test

import (
	"context"
	"sync"
	"testing"

	"github.com/paf-mesh/paf-mesh/mesh"
	"github.com/paf-mesh/paf-mesh/mesh/meshtest"
)

func newPeer(t testing.TB, c *mesh.Config) *mesh.Peer {
	t.Helper()
	p, err := mesh.New(c)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// cluster starts n peers from meshtest.Config, each modified by mod, that
// join the first one.
func cluster(t testing.TB, n int, mod func(i int, c *mesh.Config)) []*mesh.Peer {
	t.Helper()
	ps := make([]*mesh.Peer, n)
	t.Cleanup(func() {
		// Close in parallel: each graceful leave waits for a gossip round.
		var wg sync.WaitGroup
		for _, p := range ps {
			if p != nil {
				wg.Add(1)
				go func() { defer wg.Done(); p.Close() }()
			}
		}
		wg.Wait()
	})
	for i := range ps {
		c := meshtest.Config(t)
		if mod != nil {
			mod(i, c)
		}
		p, err := mesh.New(c)
		if err != nil {
			t.Fatalf("New: %v", err)
		}
		ps[i] = p
		if i > 0 {
			// Retry: on a loaded machine under -race one push/pull can
			// time out; a real peer's discovery loop retries the same way.
			var err error
			for try := 0; try < 5; try++ {
				if _, err = ps[i].Join(ps[try%i].Addr()); err == nil {
					break
				}
			}
			if err != nil {
				t.Fatalf("join peer %d: %v", i, err)
			}
		}
	}
	return ps
}

// aliveCount counts live members: alive, or suspect (not declared dead).
func aliveCount(p *mesh.Peer) int {
	n := 0
	for _, m := range p.Members() {
		if m.State == mesh.MemberAlive || m.State == mesh.MemberSuspect {
			n++
		}
	}
	return n
}

func allSee(ps []*mesh.Peer, f func(p *mesh.Peer) bool) bool {
	for _, p := range ps {
		if !f(p) {
			return false
		}
	}
	return true
}

func ownerID(p *mesh.Peer, name string) string {
	m, ok := p.Owner(name)
	if !ok {
		return ""
	}
	return m.ID
}

var bg = context.Background()
