package node

import (
	"context"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/paf-mesh/paf-mesh/internal/testutil"
	"github.com/paf-mesh/paf-mesh/relay"
)

// watcher runs Watch in the background until the test ends.
func watcher(t *testing.T, cfg WatchConfig) *testutil.SyncBuffer {
	t.Helper()
	out := &testutil.SyncBuffer{}
	cfg.Out, cfg.Retry, cfg.Logger = out, 50*time.Millisecond, testutil.QuietLogger(t, slog.LevelInfo)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := Watch(ctx, cfg); err != nil {
			t.Error(err)
		}
	}()
	t.Cleanup(func() { cancel(); wg.Wait() })
	return out
}

func lines(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == '\n' })
}

func send(t *testing.T, n *Node, from, to, body string) {
	t.Helper()
	if _, err := n.relay.Send(ctxT(t, 20*time.Second), relay.Outgoing{From: from, To: to, Body: body}); err != nil {
		t.Fatalf("send %s -> %s: %v", from, to, err)
	}
}

// watch prints a line per new message, once each, marks nothing read, and
// goes on after its peer restarts (a new process under the same name),
// without announcing again what it announced before.
func TestWatchOncePerMessageAcrossRestart(t *testing.T) {
	m := newTestMesh(t)
	alice := m.start("alice", "alice")
	bob := m.start("bob", "bob")
	waitNames(t, []*Node{alice, bob}, "alice", "bob")
	out := watcher(t, WatchConfig{RunDir: m.runDir, Name: "bob", Poll: time.Second})

	send(t, alice, "alice", "bob", "first \x1b[31mred")
	testutil.WaitFor(t, meshDeadline, "a line for the first message", func() bool { return len(lines(out.String())) == 1 })
	send(t, alice, "alice", "bob", "second")
	testutil.WaitFor(t, meshDeadline, "a line for the second message", func() bool { return len(lines(out.String())) >= 2 })
	got := lines(out.String())
	if len(got) != 2 || !strings.Contains(got[0], "from alice to bob") || !strings.Contains(got[0], "first") ||
		strings.Contains(got[0], "\x1b") || !strings.Contains(got[1], `"second"`) || !strings.Contains(got[1], "paf_check") {
		t.Fatalf("watch printed %q", got)
	}
	if n := bob.relay.Unread("bob"); n != 2 {
		t.Fatalf("bob has %d unread after watch, want 2: watch must not mark read", n)
	}

	// bob's peer restarts (same state dir: its unread messages are still there).
	bob.Close()
	bob2 := m.start("bob", "bob")
	waitNames(t, []*Node{alice, bob2}, "alice", "bob")
	send(t, alice, "alice", "bob", "third")
	testutil.WaitFor(t, meshDeadline, "a line for the message sent after the restart", func() bool { return len(lines(out.String())) >= 3 })
	got = lines(out.String())
	if len(got) != 3 || !strings.Contains(got[2], "third") {
		t.Fatalf("after the restart watch printed %q, want one more line, for the third message", got)
	}
}

// The watcher of a session finds its peer: by name; the peer its client
// started; else the only named peer here; never another session's peer
// while its own has no name yet.
func TestWatchTarget(t *testing.T) {
	m := newTestMesh(t)
	parent := parentOf(os.Getpid()) // the peers here run in this process: their parent is this
	if parent <= 1 {
		t.Skip("no parent process to stand for the agent client")
	}
	unnamed := m.start("anon", "")
	_ = unnamed
	if name, ctl := WatchTarget(m.runDir, "", parent); ctl != "" {
		t.Fatalf("session peer without a name: watching %q, want nothing yet", name)
	}
	if name, ctl := WatchTarget(m.runDir, "", 1); ctl != "" {
		t.Fatalf("no named peer at all: watching %q", name)
	}
	m.start("carol", "carol")
	testutil.WaitFor(t, meshDeadline, "carol's entry", func() bool { return LocalHolder(m.runDir, "carol") != "" })
	if name, _ := WatchTarget(m.runDir, "", parent); name != "carol" {
		t.Fatalf("session's named peer: %q, want carol", name)
	}
	if name, _ := WatchTarget(m.runDir, "", 1); name != "carol" {
		t.Fatalf("a terminal (no peer of its client): %q, want the only named peer, carol", name)
	}
	if name, ctl := WatchTarget(m.runDir, "dave", 1); name != "dave" || ctl != "" {
		t.Fatalf("--as dave with no such peer: %q %q", name, ctl)
	}
	m.start("erin", "erin")
	testutil.WaitFor(t, meshDeadline, "erin's entry", func() bool { return LocalHolder(m.runDir, "erin") != "" })
	if name, ctl := WatchTarget(m.runDir, "", 1); ctl != "" {
		t.Fatalf("two named peers and none of this client: watching %q, want neither", name)
	}
}

func TestWatchLine(t *testing.T) {
	tests := map[string]struct {
		m    relay.JSONMessage
		want []string
	}{
		"message":      {relay.JSONMessage{From: "alice", Kind: "message", Body: "hi\nthere"}, []string{`paf: message from alice to bob: "hi\nthere" (read it with paf_check)`}},
		"conversation": {relay.JSONMessage{From: "alice", Kind: "message", ConversationID: "c-1", Body: "q"}, []string{"conversation message", "paf_respond"}},
		"reply":        {relay.JSONMessage{From: "alice", Kind: "reply", Body: "a"}, []string{"reply from alice", "paf_wait_response"}},
		"broadcast":    {relay.JSONMessage{From: "alice", Kind: "message", Broadcast: true, Body: "all"}, []string{"broadcast from alice"}},
		"escaped":      {relay.JSONMessage{From: "alice", Body: "\x1b]0;owned\x07x"}, []string{`\x1b]0;owned\x07x`}},
		"long":         {relay.JSONMessage{From: "alice", Body: strings.Repeat("y", 500)}, []string{strings.Repeat("y", previewRunes-1) + "…\""}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got := WatchLine("bob", tc.m)
			if strings.ContainsAny(got, "\n\x1b\x07") {
				t.Fatalf("line %q holds a control character", got)
			}
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Fatalf("line %q, want it to contain %q", got, w)
				}
			}
		})
	}
}
