package main

// In-process tests of the commands that act through peers: the peers are
// node.Nodes in this process, sharing a run dir with the command, and the
// command runs through run() as main would run it. What these check is the
// CLI's side (output text, JSON shapes, exit codes, one-line errors); the
// behaviour behind it is node's, tested there.

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/paf-mesh/paf-mesh/internal/testutil"
	"github.com/paf-mesh/paf-mesh/mesh"
	"github.com/paf-mesh/paf-mesh/node"
)

// peers is the in-process peers of one test and the environment of the
// commands run beside them.
type peers struct {
	t    *testing.T
	root string
	env  map[string]string
}

func newPeers(t *testing.T) *peers {
	t.Helper()
	// Not t.TempDir(): control socket paths are limited to 107 bytes.
	root, err := os.MkdirTemp("", "pafc")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	return &peers{t: t, root: root, env: map[string]string{
		"HOME": filepath.Join(root, "home"), "PAF_RUN_DIR": filepath.Join(root, "run"),
		"PAF_STATE_DIR": filepath.Join(root, "state-cli"), "PAF_LOG_LEVEL": "error",
	}}
}

// start runs a peer named name in this process, closed when the test ends.
func (p *peers) start(name string, mut ...func(*node.Config)) *node.Node {
	p.t.Helper()
	cfg := node.DefaultConfig()
	cfg.Name, cfg.RunDir, cfg.Version = name, p.env["PAF_RUN_DIR"], version
	cfg.StateDir = filepath.Join(p.root, "state-"+name)
	cfg.Logger = testutil.QuietLogger(p.t, slog.LevelWarn).With("peer", name)
	for _, f := range mut {
		f(&cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	n, err := node.New(ctx, cfg)
	if err != nil {
		p.t.Fatalf("start %s: %v", name, err)
	}
	p.t.Cleanup(n.Close)
	return n
}

// waitNames waits until n sees every name alive.
func waitNames(t *testing.T, n *node.Node, names ...string) {
	t.Helper()
	testutil.WaitFor(t, 15*time.Second, "the names to be alive", func() bool {
		alive := map[string]bool{}
		for _, m := range n.Members() {
			alive[m.Meta.Name] = m.State == mesh.MemberAlive
		}
		for _, name := range names {
			if !alive[name] {
				return false
			}
		}
		return true
	})
}

// run runs one command line with stdin.
func (p *peers) run(stdin string, args ...string) (stdout, stderr string, code int) {
	p.t.Helper()
	var out, errb testutil.SyncBuffer
	getenv := func(k string) string { return p.env[k] }
	code = run(context.Background(), args, stdio{in: strings.NewReader(stdin), out: &out, err: &errb}, getenv)
	return out.String(), errb.String(), code
}

// send, check and listen through a live peer: the JSON shapes of SPEC
// section 6, the text output, stdin as the message, and listen's note on a
// timeout. (Was the CLI half of TestE2ESendCheck and TestE2EListen.)
func TestSendCheckListen(t *testing.T) {
	p := newPeers(t)
	alice := p.start("alice")
	p.start("bob")
	waitNames(t, alice, "alice", "bob")

	out, errOut, code := p.run("", "send", "--as", "alice", "bob", "hi", "--json")
	var sent struct{ ID, Status string }
	if code != 0 || json.Unmarshal([]byte(out), &sent) != nil || sent.Status != "delivered" || sent.ID == "" {
		t.Fatalf("send --json: exit %d %q %q", code, out, errOut)
	}
	out, _, code = p.run("", "check", "--as", "bob", "--json")
	var got jsonMsgs
	if code != 0 || json.Unmarshal([]byte(out), &got) != nil || len(got.Messages) != 1 ||
		got.Messages[0].Body != "hi" || got.Messages[0].From != "alice" || got.Messages[0].ID != sent.ID || got.Messages[0].SentAt == "" {
		t.Fatalf("check --json: exit %d %q", code, out)
	}
	if out, _, _ = p.run("", "check", "--as", "bob", "--json"); strings.TrimSpace(out) != `{"messages":[]}` {
		t.Fatalf("second check: %q", out)
	}

	if out, errOut, code = p.run("from stdin", "send", "--as", "bob", "alice", "-"); code != 0 || !strings.HasPrefix(out, "delivered to alice (id ") {
		t.Fatalf("send from stdin: exit %d %q %q", code, out, errOut)
	}
	if out, _, code = p.run("", "check", "--as", "alice"); code != 0 || !strings.Contains(out, "1 message for alice:") ||
		!strings.Contains(out, "from stdin") || !strings.Contains(out, "── from bob at ") {
		t.Fatalf("check text output: %q", out)
	}
	if out, _, _ = p.run("", "check", "--as", "alice"); out != "no unread messages for alice\n" {
		t.Fatalf("check with nothing: %q", out)
	}

	out, errOut, code = p.run("", "listen", "--as", "bob", "--timeout", "0.3", "--json")
	if code != 0 || strings.TrimSpace(out) != `{"messages":[]}` || !strings.Contains(errOut, "nothing arrived for bob within 300ms") {
		t.Fatalf("listen timeout: %d %q %q", code, out, errOut)
	}
	done := make(chan string, 1)
	go func() {
		out, _, _ := p.run("", "listen", "--as", "bob", "--timeout", "20", "--json")
		done <- out
	}()
	if _, errOut, code = p.run("", "send", "--as", "alice", "bob", "are you there?"); code != 0 {
		t.Fatalf("send: %s", errOut)
	}
	if err := json.Unmarshal([]byte(<-done), &got); err != nil || len(got.Messages) != 1 || got.Messages[0].Body != "are you there?" {
		t.Fatalf("listen: %+v %v", got, err)
	}
	if out, _, _ = p.run("", "check", "--as", "bob", "--json"); strings.TrimSpace(out) != `{"messages":[]}` {
		t.Fatalf("listen did not mark read: %q", out)
	}

	// Over the limit: exit 1, one line saying too large.
	_, errOut, code = p.run(strings.Repeat("x", node.DefaultMaxBody+1), "send", "--as", "alice", "bob", "-")
	if code != 1 || !strings.Contains(errOut, "too large") || strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
		t.Fatalf("over the limit: exit %d %q", code, errOut)
	}
}

// A future message needs a peer to keep it: with none running, send fails in
// one line that says nothing was sent and what to do; with one serve
// running, it is stored by that one. (Was TestE2EFutureMessageNeedsAHolder.)
func TestSendNeedsAHolder(t *testing.T) {
	p := newPeers(t)
	_, errOut, code := p.run("", "send", "--as", "alice", "bob", "hello")
	if code != 1 || strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
		t.Fatalf("send with no peer running: exit %d, want 1 and one line:\n%s", code, errOut)
	}
	for _, want := range []string{"paf-peer send: nothing was sent", "bob is offline", "paf-peer serve"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("error %q does not say %q", errOut, want)
		}
	}
	h := p.start("holder")
	waitNames(t, h, "holder")
	out, errOut, code := p.run("", "send", "--as", "alice", "bob", "hello")
	// Bob was never seen, so his identity is unknown: stored, and said to be unsealed.
	if code != 0 || !strings.Contains(out, "stored for bob (not sealed: no peer of yours has seen bob's identity yet") || !strings.Contains(out, "held by 1 peer until it comes online") {
		t.Fatalf("send with one peer running: exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
}

// serve --name of a name held by a live peer: exit 1, one line naming the
// name, the holder and what to do, nothing on stdout. (Was
// TestE2EServeNameTaken.)
func TestServeNameTaken(t *testing.T) {
	p := newPeers(t)
	holder := p.start("alice")
	for _, ask := range []string{"alice", "ALICE"} {
		out, errOut, code := p.run("", "serve", "--name", ask)
		if code != 1 || out != "" || strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
			t.Fatalf("serve --name %s while alice is held: exit %d, stdout %q\n%s", ask, code, out, errOut)
		}
		for _, want := range []string{"paf-peer serve:", `"alice"`, holder.ID(), "choose another name"} {
			if !strings.Contains(errOut, want) {
				t.Errorf("error %q does not contain %q", errOut, want)
			}
		}
	}
}

// status lists the peers, in the SPEC's JSON and as a table. (Was part of
// TestE2EMeshAcceptance.)
func TestStatusWithPeers(t *testing.T) {
	p := newPeers(t)
	a := p.start("a")
	p.start("b", func(c *node.Config) { c.Description = "the b peer" })
	waitNames(t, a, "a", "b")
	out, errOut, code := p.run("", "status", "--json")
	if code != 0 || errOut != "" {
		t.Fatalf("status --json: exit %d %q", code, errOut)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal([]byte(out), &raw); err != nil {
		t.Fatal(err)
	}
	requireKeys(t, "status", raw, topKeys)
	var st jsonStatus
	if err := json.Unmarshal([]byte(out), &st); err != nil || st.Self == nil || st.Mode != "open" || len(st.Peers) != 2 {
		t.Fatalf("status --json: %v\n%s", err, out)
	}
	var peers []map[string]json.RawMessage
	if err := json.Unmarshal(raw["peers"], &peers); err != nil {
		t.Fatal(err)
	}
	for _, pr := range peers {
		requireKeys(t, "peer", pr, peerKeys)
		var id, fp string
		_ = json.Unmarshal(pr["id"], &id)
		_ = json.Unmarshal(pr["identity"], &fp)
		if len(fp) != 16 || !strings.HasPrefix(id, fp+"-") {
			t.Fatalf("peer %s has identity %q: want the fingerprint its id is bound to", id, fp)
		}
	}
	out, _, code = p.run("", "status")
	if code != 0 || !strings.Contains(out, "mode: open   identity: ") || !strings.Contains(out, "peers: 2 alive, 2 known") || !strings.Contains(out, "the b peer") {
		t.Fatalf("status table: exit %d\n%s", code, out)
	}
}

// serve runs until its context ends (Ctrl-C, SIGTERM), then leaves and
// exits 0; a seed that does not answer is warned about. (Was
// TestE2EServeJoinClosedPort.)
func TestServeUntilInterrupted(t *testing.T) {
	p := newPeers(t)
	watcher := p.start("watcher")
	p.env["PAF_LOG_LEVEL"] = "info"
	ctx, cancel := context.WithCancel(context.Background())
	var errb testutil.SyncBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"serve", "--name", "joiner", "--join", "127.0.0.1:1"},
			stdio{in: strings.NewReader(""), out: &testutil.SyncBuffer{}, err: &errb}, func(k string) string { return p.env[k] })
	}()
	waitNames(t, watcher, "joiner")
	testutil.WaitFor(t, 30*time.Second, "serve to have started", func() bool { return strings.Contains(errb.String(), "msg=serving") })
	cancel()
	select {
	case code := <-done:
		logs := errb.String()
		if code != 0 || !strings.Contains(logs, "open mode") || !strings.Contains(logs, "msg=serving") ||
			!strings.Contains(logs, "leaving the mesh") {
			t.Fatalf("serve: exit %d\n%s", code, logs)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not stop when its context ended")
	}
}

// demo needs no setup, exits 0, writes only the transcript, and leaves
// nothing behind in TMPDIR. (Was TestE2EDemo; the script is node/demo's.)
func TestRunDemo(t *testing.T) {
	p := newPeers(t)
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	out, errOut, code := p.run("", "demo")
	if code != 0 || !strings.Contains(out, "Broadcast delivered to 2 sessions") || strings.TrimSpace(errOut) != "" {
		t.Fatalf("demo: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	if left := testutil.DirNames(t, tmp); len(left) != 0 {
		t.Errorf("demo left %v behind in TMPDIR", left)
	}
}

// identity: the state dir's key (made on first use, 0600, the same every time), and the
// names that peers of this identity hold now, as a running peer sees them; a peer of
// another identity (another state dir here) is not listed.
func TestIdentityCommand(t *testing.T) {
	p := newPeers(t)
	var first node.IdentityInfo
	out, errOut, code := p.run("", "identity", "--json")
	if code != 0 || errOut != "" || json.Unmarshal([]byte(out), &first) != nil {
		t.Fatalf("identity --json with no peer: exit %d %q\n%s", code, errOut, out)
	}
	if len(first.Fingerprint) != 16 || len(first.Names) != 0 || !strings.Contains(first.Note, "no peer") {
		t.Fatalf("identity with no peer: %+v", first)
	}
	if st, err := os.Stat(first.File); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file %s: %v %v", first.File, st, err)
	}
	a := p.start("a", func(c *node.Config) { c.StateDir = p.env["PAF_STATE_DIR"] })
	p.start("b")
	waitNames(t, a, "a", "b")
	var again node.IdentityInfo
	out, _, code = p.run("", "identity", "--json")
	if code != 0 || json.Unmarshal([]byte(out), &again) != nil {
		t.Fatalf("identity --json: exit %d\n%s", code, out)
	}
	if again.Fingerprint != first.Fingerprint || !slices.Equal(again.Names, []string{"a"}) || again.Note != "" {
		t.Fatalf("identity with peers a (this identity) and b (another): %+v, first %+v", again, first)
	}
	if !strings.HasPrefix(a.ID(), first.Fingerprint+"-") {
		t.Fatalf("peer a's id %s is not bound to the state dir's identity %s", a.ID(), first.Fingerprint)
	}
	out, _, code = p.run("", "identity")
	if code != 0 || !strings.Contains(out, "identity: "+first.Fingerprint) || !strings.Contains(out, "names held now: a\n") {
		t.Fatalf("identity: exit %d\n%s", code, out)
	}
}
