package node

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/paf-mesh/paf-mesh/relay"
)

// A Stop hook wakes a session once per new message: the same unread messages do not wake
// it again, a new one does, sessions are apart, and no session id becomes part of a path.
func TestFreshForStop(t *testing.T) {
	dir := t.TempDir()
	msgs := func(ids ...string) []relay.JSONMessage {
		ms := make([]relay.JSONMessage, len(ids))
		for i, id := range ids {
			ms[i].ID = id
		}
		return ms
	}
	check := func(session string, ms []relay.JSONMessage, want int) {
		t.Helper()
		fresh, err := FreshForStop(dir, session, ms)
		if err != nil || len(fresh) != want {
			t.Fatalf("FreshForStop(%q, %d messages) = %v, %v; want %d fresh", session, len(ms), fresh, err, want)
		}
	}
	check("s1", msgs("A", "B"), 2)
	check("s1", msgs("A", "B"), 0) // the model left them unread: no loop
	check("s1", msgs("A", "B", "C"), 1)
	check("s2", msgs("A"), 1) // another session has its own memory
	check("", msgs("A"), 1)   // no session id: nothing to remember by
	evil := "../../../../tmp/x"
	check(evil, msgs("A"), 1)
	entries, _ := os.ReadDir(filepath.Join(dir, "hooks"))
	for _, e := range entries {
		if strings.Contains(e.Name(), "..") || strings.Contains(e.Name(), "tmp") {
			t.Fatalf("a session id became part of a path: %s", e.Name())
		}
	}
	if len(entries) != 3 {
		t.Fatalf("%d memory files, want 3 (s1, s2, the odd one)", len(entries))
	}
}

// A SessionStart hook can run before its session's peer exists: SessionPeer waits for it.
func TestSessionPeerWaitsForThePeer(t *testing.T) {
	m := newTestMesh(t)
	found := make(chan [2]string, 1)
	go func() {
		name, ctl := SessionPeer(context.Background(), m.runDir, "", os.Getppid(), startTimeout)
		found <- [2]string{name, ctl}
	}()
	n := m.start("a", "ann") // after the hook began to look
	got := <-found
	if got[0] != "ann" || got[1] != n.ControlPath() {
		t.Fatalf("SessionPeer = %q, %q; want ann at %s", got[0], got[1], n.ControlPath())
	}
	if name, ctl := SessionPeer(context.Background(), m.runDir, "nobody", os.Getppid(), 0); ctl != "" {
		t.Fatalf("SessionPeer for a name nobody holds = %q, %q", name, ctl)
	}
}
