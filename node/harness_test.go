package node

// The in-process harness: many peers in one process on 127.0.0.1 with port
// 0, one run dir per test and a state dir per peer, logs to t.Log. Waits
// poll with testutil.WaitFor; deadlines are for a loaded 2-core machine
// under -race, never claims about speed.

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/paf-mesh/paf-mesh/internal/testutil"
	"github.com/paf-mesh/paf-mesh/mesh"
)

func TestMain(m *testing.M) {
	if dir := os.Getenv(attackerEnv); dir != "" {
		runAttacker(dir) // attack_local_test.go: another user's process
	}
	goleak.VerifyTestMain(m, testutil.MemberlistProbes()...)
}

const (
	// meshDeadline bounds peers seeing each other (gossip on loopback).
	meshDeadline = 15 * time.Second
	// startTimeout bounds one New: joining, and a claim that may wait.
	startTimeout = 45 * time.Second
)

// testMesh is the peers of one test, sharing a run dir.
type testMesh struct {
	t      *testing.T
	root   string
	runDir string
}

func newTestMesh(t *testing.T) *testMesh {
	t.Helper()
	// Not t.TempDir(): its long path would push the control sockets in the
	// run dir past the 107-byte limit on Unix socket paths.
	root, err := os.MkdirTemp("", "pafn")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	return &testMesh{t: t, root: root, runDir: filepath.Join(root, "run")}
}

// config is testConfig: the state dir of peer who, the shared run dir, and
// a logger writing to t.Log.
func (m *testMesh) config(who string) Config {
	cfg := DefaultConfig()
	cfg.StateDir = filepath.Join(m.root, "state-"+who)
	cfg.RunDir = m.runDir
	cfg.Version = "test"
	cfg.Logger = testutil.QuietLogger(m.t, slog.LevelInfo).With("peer", who)
	return cfg
}

// start starts peer who named name ("" for none), with mut applied to its
// config; it is closed when the test ends.
func (m *testMesh) start(who, name string, mut ...func(*Config)) *Node {
	m.t.Helper()
	n, err := m.tryStart(who, name, mut...)
	if err != nil {
		m.t.Fatalf("start %s as %q: %v", who, name, err)
	}
	return n
}

func (m *testMesh) tryStart(who, name string, mut ...func(*Config)) (*Node, error) {
	cfg := m.config(who)
	cfg.Name = name
	for _, f := range mut {
		f(&cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	n, err := New(ctx, cfg)
	if err == nil {
		m.t.Cleanup(n.Close)
	}
	return n, err
}

// actAs is a shell command acting as name, closed when the test ends.
func (m *testMesh) actAs(name string) *Actor {
	m.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	a, err := ActAs(ctx, m.config("cli-"+name), name)
	if err != nil {
		m.t.Fatalf("act as %s: %v", name, err)
	}
	m.t.Cleanup(a.Close)
	return a
}

// waitNames waits until every peer in ns sees every name alive.
func waitNames(t *testing.T, ns []*Node, names ...string) {
	t.Helper()
	testutil.WaitFor(t, meshDeadline, "every peer to see the names alive", func() bool {
		for _, n := range ns {
			alive := map[string]bool{}
			for _, mb := range n.Members() {
				if mb.State == mesh.MemberAlive {
					alive[mb.Meta.Name] = true
				}
			}
			for _, name := range names {
				if !alive[name] {
					return false
				}
			}
		}
		return true
	})
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
