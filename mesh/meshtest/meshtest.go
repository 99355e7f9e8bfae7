// Package meshtest gives tests one mesh configuration: fast timers, loopback
// on port 0 and logs in the test's output. Every test that starts a mesh.Peer
// (mesh's own, and the layers above it) should start from Config rather than
// tune memberlist by hand, so that a timer that proves flaky under -race on a
// loaded machine is fixed once.
package meshtest

import (
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/paf-mesh/paf-mesh/internal/testutil"
	"github.com/paf-mesh/paf-mesh/mesh"
)

// Timers of Config. Fast enough to keep failure tests short, slow enough
// that a loaded 2-core machine running -race does not see false suspicions.
const (
	ProbeInterval = 500 * time.Millisecond
	ProbeTimeout  = 400 * time.Millisecond
	// SuspicionMult is 3, not the local preset's 2: with these short probes
	// 2 would give a peer starved by -race only 1 s to refute.
	SuspicionMult = 3
	// GossipInterval is memberlist's idle pace; BurstGossip the pace of a peer with news, as
	// in the presets (mesh/burst.go), so that every test runs the bursts.
	GossipInterval   = 500 * time.Millisecond
	BurstGossip      = 50 * time.Millisecond
	PushPullInterval = 2 * time.Second
	TCPTimeout       = 2 * time.Second
	// NameGrace frees a crashed peer's name quickly, so that tests of
	// release and re-claim take half a second rather than the preset's 3.
	NameGrace = 500 * time.Millisecond
	Retain    = 5 * time.Second
)

// Config is mesh.DefaultLocalConfig with the timers above, bound to
// 127.0.0.1 port 0, logging to t.Log at Warn (everything when PAF_TEST_DEBUG
// is set). The logger goes quiet once the test's cleanup has run, so that a
// memberlist goroutine finishing after Close cannot log into a finished test.
// Each call returns a new Config, free to modify.
func Config(t testing.TB) *mesh.Config {
	c := mesh.DefaultLocalConfig()
	c.Logger = testutil.QuietLogger(t, LogLevel())
	c.NameGrace = NameGrace
	c.Retain = Retain
	ml := c.Memberlist
	ml.BindAddr = "127.0.0.1"
	ml.BindPort = 0
	ml.AdvertisePort = 0
	ml.ProbeInterval = ProbeInterval
	ml.ProbeTimeout = ProbeTimeout
	ml.SuspicionMult = SuspicionMult
	ml.GossipInterval = GossipInterval
	c.BurstGossip = BurstGossip
	ml.PushPullInterval = PushPullInterval
	ml.TCPTimeout = TCPTimeout
	return c
}

// Crash stops p the way SIGKILL would stop its process (mesh.CrashForTest):
// gossip stops without a leave, so the others see a failure (suspect, then
// dead), not a departure. For tests of the layers above mesh that need
// peers to fail as well as leave; Close after Crash does nothing.
func Crash(p *mesh.Peer) { mesh.CrashForTest(p) }

// LogLevel is Warn; with PAF_TEST_DEBUG set in the environment, Debug.
func LogLevel() slog.Level {
	if os.Getenv("PAF_TEST_DEBUG") != "" {
		return slog.LevelDebug
	}
	return slog.LevelWarn
}
