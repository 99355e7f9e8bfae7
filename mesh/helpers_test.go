package mesh

import (
	"context"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/paf-mesh/paf-mesh/internal/testutil"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// memberlist's Shutdown does not wait for a probe in flight; it
		// ends by itself within one probe interval. Not ours to leak.
		goleak.IgnoreTopFunction("github.com/hashicorp/memberlist.(*Memberlist).probeNode"),
		goleak.IgnoreTopFunction("github.com/hashicorp/memberlist.(*Memberlist).probeNodeByAddr"),
	)
}

// testConfig is DefaultLocalConfig with timers shortened for tests and the
// logger writing to t.Log, quiet once the test is over so that a straggling
// memberlist goroutine cannot log into a finished test.
func testConfig(t testing.TB) *Config {
	c := DefaultLocalConfig()
	c.Logger = testutil.QuietLogger(t, testLogLevel)
	c.NameGrace = 500 * time.Millisecond
	c.Retain = 5 * time.Second
	ml := c.Memberlist
	// Fast enough to keep failure tests short, slow enough that a loaded
	// 2-core machine running -race does not see false suspicions.
	ml.ProbeInterval = 500 * time.Millisecond
	ml.ProbeTimeout = 400 * time.Millisecond
	// With these short probes, the preset's SuspicionMult of 2 would give
	// a peer starved by -race on a loaded machine only 1 s to refute.
	ml.SuspicionMult = 3
	ml.GossipInterval = 50 * time.Millisecond
	ml.PushPullInterval = 2 * time.Second
	ml.TCPTimeout = 2 * time.Second
	return c
}

func newPeer(t testing.TB, c *Config) *Peer {
	t.Helper()
	p, err := New(c)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// cluster starts n peers that join the first one.
func cluster(t testing.TB, n int, mod func(i int, c *Config)) []*Peer {
	t.Helper()
	ps := make([]*Peer, n)
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
		c := testConfig(t)
		if mod != nil {
			mod(i, c)
		}
		p, err := New(c)
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
func aliveCount(p *Peer) int {
	n := 0
	for _, m := range p.Members() {
		if m.State == MemberAlive || m.State == MemberSuspect {
			n++
		}
	}
	return n
}

func allSee(ps []*Peer, f func(p *Peer) bool) bool {
	for _, p := range ps {
		if !f(p) {
			return false
		}
	}
	return true
}

func ownerID(p *Peer, name string) string {
	m, ok := p.Owner(name)
	if !ok {
		return ""
	}
	return m.ID
}

// crash stops p the way SIGKILL would: no leave message, no goodbye.
func (p *Peer) crash() {
	p.closeOnce.Do(func() {
		close(p.stop)
		p.wg.Wait()
		p.closeErr = p.ml.Shutdown()
	})
}

var bg = context.Background()

// testLogLevel is Warn; PAF_TEST_DEBUG=1 shows everything.
var testLogLevel = func() slog.Level {
	if os.Getenv("PAF_TEST_DEBUG") != "" {
		return slog.LevelDebug
	}
	return slog.LevelWarn
}()
