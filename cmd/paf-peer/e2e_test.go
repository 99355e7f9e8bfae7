package main

// End-to-end tests of the mesh foundation through the real binary: several
// `paf-peer serve` processes meeting in one run dir, `paf-peer status`, and
// what every kind of bad input does to them.

import (
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/paf-mesh/paf-mesh/internal/testutil"
	"github.com/paf-mesh/paf-mesh/node"
)

// Deadlines, generous for a loaded 2-core machine under -race. They bound how
// long a test waits, they do not measure anything: the targets (all
// alive within 2 s of the last start, a failure seen within 15 s) are logged
// beside the observed times instead.
const (
	meshDeadline  = 10 * time.Second // peers find each other
	failDeadline  = 20 * time.Second // a killed peer is declared dead and its name freed
	leaveDeadline = 10 * time.Second // a graceful leave is seen
	startDeadline = 15 * time.Second // serve either serves or exits
)

// allSee reports whether every view in vs (at least want of them) lists each
// of names as alive.
func allSee(vs map[string]*jsonStatus, want int, names ...string) bool {
	if len(vs) < want {
		return false
	}
	for _, v := range vs {
		for _, n := range names {
			if v.peerNamed(n, "alive") == nil {
				return false
			}
		}
	}
	return true
}

// The acceptance scenario: three peers sharing one run dir find each
// other with no other configuration; a SIGKILLed one is seen failed and its
// name freed; a SIGTERMed one leaves gracefully and its name is free at once.
func TestE2EMeshAcceptance(t *testing.T) {
	m := newTestMesh(t)
	names := []string{"a", "b", "c"}
	procs := make(map[string]*proc)
	for _, n := range names {
		procs[n] = m.serve(n, "--name", n)
	}
	took := testutil.WaitFor(t, meshDeadline, "status --json to list a, b and c alive", func() bool {
		st := m.status()
		return allSee(map[string]*jsonStatus{"": st}, 1, names...)
	})
	t.Logf("status listed a, b and c alive %s after the last start (issue target: 2s)", took.Round(time.Millisecond))
	testutil.WaitFor(t, meshDeadline, "every peer to see a, b and c alive", func() bool {
		return allSee(m.views(), 3, names...)
	})

	st := m.status()
	if st.Self == nil || st.Mode != "open" || len(st.Forwards) != 0 || st.Message != "" {
		t.Fatalf("status: self %v, mode %q, forwards %v, message %q; want a self, open mode, no forwards, no message",
			st.Self, st.Mode, st.Forwards, st.Message)
	}
	ids := make(map[string]string)
	for _, n := range names {
		p := st.peerNamed(n, "alive")
		ids[n] = p.ID
		if want := procs[n].peerID(); p.ID != want {
			t.Errorf("status lists %s with id %s; the process logged %s", n, p.ID, want)
		}
		host, port, err := net.SplitHostPort(p.Addr)
		if err != nil || host != "127.0.0.1" || port == "0" {
			t.Errorf("peer %s addr %q: want 127.0.0.1:<port> in open mode", n, p.Addr)
		}
		if p.Host == "" || p.Listening || p.Stored != 0 || p.Description != "" {
			t.Errorf("peer %s: %+v; want a host, not listening, nothing stored, no description", n, *p)
		}
	}
	// The notice follows the start, a moment after the socket answers.
	testutil.WaitFor(t, startDeadline, "every serve to print the open-mode notice", func() bool {
		for _, n := range names {
			if !strings.Contains(procs[n].stderr(), "open mode") {
				return false
			}
		}
		return true
	})

	// SIGKILL: no goodbye, so the others must detect the failure.
	killed := procs["c"]
	killed.kill(t)
	killedAt := time.Now()
	took = testutil.WaitFor(t, failDeadline, "a and b to see c failed (dead)", func() bool {
		vs := m.views()
		if len(vs) != 2 {
			return false
		}
		for _, v := range vs {
			if p := v.peerID(ids["c"]); p == nil || p.State != "dead" {
				return false
			}
		}
		return true
	})
	t.Logf("a and b saw c dead %s after SIGKILL", took.Round(time.Millisecond))
	// Released: a new peer can claim "c". Until then a claim is refused
	// cleanly (exit 1) and the test tries again.
	var c2 *proc
	testutil.WaitFor(t, failDeadline-time.Since(killedAt), "the name c to be released", func() bool {
		p := m.serve("c2", "--name", "c")
		if p.serving() {
			c2 = p
			return true
		}
		if p.code != 1 || !strings.Contains(p.stderr(), "name taken") {
			t.Fatalf("serve --name c while c's old holder is dead: exit %d, want 0 or 1 with \"name taken\":\n%s", p.code, p.stderr())
		}
		return false
	})
	t.Logf("name c free for a new peer %s after SIGKILL (issue target: 15s)", time.Since(killedAt).Round(time.Millisecond))
	st = m.status()
	if p := st.peerNamed("c", "alive"); p == nil || p.ID != c2.peerID() {
		t.Fatalf("status after c restarted: alive c is %+v, want peer %s", p, c2.peerID())
	}

	// SIGTERM: a graceful leave, seen as "left" (not a failure), with the
	// peer's rendezvous entry and control socket removed.
	leaving := procs["b"]
	leaving.signal(syscall.SIGTERM)
	if code, err := leaving.wait(stopTimeout); err != nil || code != 0 {
		t.Fatalf("after SIGTERM: exit %d, %v; want 0\n%s", code, err, leaving.stderr())
	}
	if !strings.Contains(leaving.stderr(), "leaving the mesh") {
		t.Errorf("serve b did not log leaving the mesh:\n%s", leaving.stderr())
	}
	for _, f := range []string{ids["b"] + ".json", ids["b"] + ".sock"} {
		if _, err := os.Lstat(filepath.Join(m.runDir, f)); !os.IsNotExist(err) {
			t.Errorf("run dir still has %s after a graceful exit (err %v)", f, err)
		}
	}
	testutil.WaitFor(t, leaveDeadline, "a and c2 to see b left", func() bool {
		vs := m.views()
		if len(vs) != 2 {
			return false
		}
		for _, v := range vs {
			if p := v.peerID(ids["b"]); p == nil || p.State != "left" {
				return false
			}
		}
		return true
	})
	// A departed peer's name is free at once: the first claim succeeds.
	if b2 := m.serve("b2", "--name", "b"); !b2.serving() {
		t.Fatalf("serve --name b right after b left: exit %d\n%s", b2.code, b2.stderr())
	}
	testutil.WaitFor(t, meshDeadline, "a, b (new) and c (new) alive", func() bool {
		return allSee(m.views(), 3, names...)
	})
}

// servingLine matches the log line serve writes once it is up: what the log
// file must show, and what the discovery benchmark times (the e2e tests
// detect readiness through the control socket instead: proc.serving).
var servingLine = regexp.MustCompile(`msg=serving peer=(\S+)`)

// --log-file / PAF_LOG_FILE: the logs also go to that file (created with its
// directory, mode 0600, appended to), for serve and for mcp, whose stdout
// stays the MCP channel alone.
func TestE2ELogFile(t *testing.T) {
	m := newTestMesh(t)
	dir := t.TempDir()
	serveLog := filepath.Join(dir, "logs", "serve.log")
	if err := os.MkdirAll(filepath.Dir(serveLog), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(serveLog, []byte("an earlier line\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := m.env("s")
	env["PAF_LOG_FILE"] = serveLog
	p := startPeer(t, env, "serve", "--name", "alice")
	if !p.serving() {
		t.Fatalf("serve: exit %d\n%s", p.code, p.stderr())
	}
	id := p.peerID()
	var b []byte
	// The control socket answers a moment before serve logs that it serves.
	testutil.WaitFor(t, startDeadline, "the serving line in the log file", func() bool {
		b, _ = os.ReadFile(serveLog)
		return servingLine.Match(b)
	})
	if !strings.HasPrefix(string(b), "an earlier line\n") || !servingLine.Match(b) || !strings.Contains(string(b), id) {
		t.Fatalf("log file should keep its earlier line and add the serving line of %s, has:\n%s", id, b)
	}

	mcpLog := filepath.Join(dir, "new", "dir", "mcp.log")
	mp := m.mcp("b", "--log-file", mcpLog, "--name", "bob")
	mp.ok("paf_list_sessions", nil)
	testutil.WaitFor(t, meshDeadline, "the mcp peer to log that it is ready", func() bool {
		b, _ := os.ReadFile(mcpLog)
		return strings.Contains(string(b), "peer ready") && strings.Contains(string(b), "name=bob")
	})
	for _, f := range []string{serveLog, mcpLog} {
		fi, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if perm := fi.Mode().Perm(); perm != 0o600 {
			t.Errorf("%s: mode %o, want 600", f, perm)
		}
	}
	if fi, err := os.Stat(filepath.Dir(mcpLog)); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("the log file's new directory: %v, %v; want mode 700", fi.Mode(), err)
	}
}

// A serve restarted right after it was killed gets its name back: the new
// process waits while the old holder does not answer, claims the name once
// the mesh releases it, and receives what was sent to the name meanwhile.
func TestE2EServeRestartAfterCrash(t *testing.T) {
	m := newTestMesh(t)
	a := m.serve("a", "--name", "a")
	bob := m.serve("bob", "--name", "bob")
	if !a.serving() || !bob.serving() {
		t.Fatalf("serves did not start:\n%s\n%s", a.stderr(), bob.stderr())
	}
	testutil.WaitFor(t, meshDeadline, "every peer to see a and bob alive", func() bool {
		return allSee(m.views(), 2, "a", "bob")
	})
	oldID := bob.peerID()
	bob.kill(t)

	// The same user's restarted session: the same state dir, so the same identity (what was
	// stored for bob meanwhile is sealed to it).
	bob2 := m.serve("bob", "--name", "bob")
	if _, errOut, code := runCLI(t, m.env("a"), "send", "--as", "a", "bob", "sent while bob was down"); code != 0 {
		t.Fatalf("send to bob while it restarts: exit %d\n%s", code, errOut)
	}
	if !bob2.servingWithin(node.ClaimPatience + startDeadline) {
		t.Fatalf("serve --name bob right after its old holder was killed: exit %d, want it to wait and serve\n%s", bob2.code, bob2.stderr())
	}
	// It started while memberlist still took the old holder for alive. The run dir proves the
	// old holder dead (its entry's lock is free), so the peers of this machine fail it at once
	// and its restarted session, of the same identity, takes the name back without waiting for
	// failure detection; without that proof it would wait for the mesh, and say so. Either way
	// the old holder is failed (not alive, not gone from the list) when the new one has the name.
	st := m.status()
	if st.peerNamed("bob", "alive") == nil || st.peerNamed("bob", "alive").ID != bob2.peerID() || bob2.peerID() == oldID {
		t.Fatalf("after the restart, alive bob is %+v; want the new peer %s", st.peerNamed("bob", "alive"), bob2.peerID())
	}
	if old := st.peerID(oldID); old == nil || old.State != "dead" {
		t.Fatalf("after the restart, the killed bob (%s) is listed as %+v; want it failed (dead)", oldID, old)
	}
	t.Logf("restarted serve waited for the mesh: %v", strings.Contains(bob2.stderr(), "waiting for the mesh to release it"))
	var out string
	testutil.WaitFor(t, meshDeadline, "the message sent meanwhile to reach bob", func() bool {
		o, errOut, code := runCLI(t, m.env("bob"), "check", "--as", "bob", "--json")
		if code != 0 {
			t.Fatalf("check --as bob: exit %d\n%s", code, errOut)
		}
		out += o
		return strings.Contains(out, "sent while bob was down")
	})
}

// Two serves started together with one name: exactly one keeps it and
// serves; the other exits 1 with one error line that names the name and the
// winner, whether it found the name taken at start or lost a concurrent
// claim after both had started (then it must not run on without its name).
func TestE2EServeConcurrentClaim(t *testing.T) {
	paths := map[string]int{}
	for round := range 3 {
		m := newTestMesh(t)
		a := m.serve("a", "--name", "alice")
		b := m.serve("b", "--name", "alice")
		var winner, loser *proc
		testutil.WaitFor(t, startDeadline+failDeadline, "one of two serves claiming alice to exit", func() bool {
			switch {
			case a.exited():
				winner, loser = b, a
			case b.exited():
				winner, loser = a, b
			default:
				return false
			}
			return true
		})
		if winner.exited() {
			t.Fatalf("round %d: both exited (%d, %d):\n%s\n%s", round, a.code, b.code, a.stderr(), b.stderr())
		}
		if loser.code != 1 {
			t.Fatalf("round %d: the loser exited %d, want 1:\n%s", round, loser.code, loser.stderr())
		}
		if !winner.serving() {
			t.Fatalf("round %d: the winner is not serving:\n%s", round, winner.stderr())
		}
		id := winner.peerID()
		var errs []string
		for _, l := range messageLines(loser.stderr()) {
			if strings.HasPrefix(l, "paf-peer serve:") {
				errs = append(errs, l)
			}
		}
		if len(errs) != 1 || !strings.Contains(errs[0], `"alice"`) || !strings.Contains(errs[0], id) {
			t.Fatalf("round %d: want one error line naming \"alice\" and the winner %s, got:\n%s", round, id, loser.stderr())
		}
		if strings.Contains(errs[0], "at the same moment") {
			paths["lost after both started"]++
		} else {
			paths["refused at start"]++
		}
		testutil.WaitFor(t, meshDeadline, "status to show alice held by the winner", func() bool {
			p := m.status().peerNamed("alice", "alive")
			return p != nil && p.ID == id
		})
	}
	t.Logf("how the loser learned it (3 rounds): %v", paths)
}

// Bad input that must be refused before any peer starts: exit code, and one
// line on stderr saying what is wrong.
func TestE2EServeBadInput(t *testing.T) {
	notDir := func(t *testing.T, m *testMesh) string {
		f := filepath.Join(m.root, "file")
		if err := os.WriteFile(f, []byte("not a directory"), 0o600); err != nil {
			t.Fatal(err)
		}
		return filepath.Join(f, "below")
	}
	tests := map[string]struct {
		args     []string
		env      map[string]string
		setup    func(t *testing.T, m *testMesh) (env map[string]string) // extra env
		wantCode int
		want     []string // substrings of the one line on stderr
		wantFile bool     // the line names the regular file in the way
	}{
		"empty name":            {args: []string{"--name", ""}, wantCode: 2, want: []string{"must not be empty", "a-z 0-9 . _ -"}},
		"blank name":            {args: []string{"--name", "   "}, wantCode: 2, want: []string{"must not be empty"}},
		"name too long":         {args: []string{"--name", strings.Repeat("x", 65)}, wantCode: 2, want: []string{"65 characters", "limit is 64"}},
		"name with a space":     {args: []string{"--name", "bad name"}, wantCode: 2, want: []string{`"bad name"`, "a-z 0-9 . _ -"}},
		"name with a slash":     {args: []string{"--name", "a/b"}, wantCode: 2, want: []string{"a-z 0-9 . _ -"}},
		"name not ascii":        {args: []string{"--name", "zoë"}, wantCode: 2, want: []string{"a-z 0-9 . _ -"}},
		"name starts with dash": {args: []string{"--name", "-x"}, wantCode: 2, want: []string{"start with a letter or digit"}},
		"bad PAF_NAME":          {env: map[string]string{"PAF_NAME": "no way"}, wantCode: 2, want: []string{`"no way"`, "a-z 0-9 . _ -"}},
		"join without port":     {args: []string{"--join", "localhost"}, wantCode: 2, want: []string{"--join", "host:port"}},
		"join bad port":         {args: []string{"--join", "127.0.0.1:99999"}, wantCode: 2, want: []string{"--join", "out of range"}},
		"bad PAF_JOIN":          {env: map[string]string{"PAF_JOIN": "127.0.0.1:1,nonsense"}, wantCode: 2, want: []string{"nonsense", "host:port"}},
		"bad bind syntax":       {args: []string{"--bind", "here"}, wantCode: 2, want: []string{"bind address", "ip:port"}},
		"bad log level":         {args: []string{"--log-level", "loud"}, wantCode: 2, want: []string{"loud", "debug, info, warn or error"}},
		"bad mdns":              {args: []string{"--mdns", "maybe"}, wantCode: 2, want: []string{"maybe", "on or off"}},
		"extra argument":        {args: []string{"alice"}, wantCode: 2, want: []string{`unexpected argument "alice"`}},
		"bind beyond loopback without secret": {
			args: []string{"--bind", "0.0.0.0:0"}, wantCode: 1, want: []string{"0.0.0.0:0", "PAF_SECRET"},
		},
		"PAF_BIND beyond loopback without secret": {
			env: map[string]string{"PAF_BIND": "0.0.0.0:7946"}, wantCode: 1, want: []string{"PAF_SECRET"},
		},
		// Refused before any connection: the error is the only output, with
		// no "cannot reach" log of an attempt.
		"join another host without secret": {
			args: []string{"--join", "10.1.2.3:7946"}, wantCode: 1, want: []string{"10.1.2.3:7946", "PAF_SECRET"},
		},
		"mdns on without secret": {args: []string{"--mdns", "on"}, wantCode: 1, want: []string{"mDNS", "PAF_SECRET"}},
		"missing secret file": {
			args: []string{"--secret-file", "/nonexistent/paf-secret"}, wantCode: 1, want: []string{"/nonexistent/paf-secret", "does not exist"},
		},
		"state dir below a file": {
			setup: func(t *testing.T, m *testMesh) map[string]string {
				return map[string]string{"PAF_STATE_DIR": notDir(t, m)}
			},
			wantCode: 1, want: []string{"state dir", "--state-dir"}, wantFile: true,
		},
		"run dir below a file": {
			setup: func(t *testing.T, m *testMesh) map[string]string {
				return map[string]string{"PAF_RUN_DIR": notDir(t, m)}
			},
			wantCode: 1, wantFile: true,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			m := newTestMesh(t)
			env := m.env("p")
			for k, v := range tc.env {
				env[k] = v
			}
			if tc.setup != nil {
				for k, v := range tc.setup(t, m) {
					env[k] = v
				}
			}
			out, errOut, code := runCLI(t, env, append([]string{"serve"}, tc.args...)...)
			if code != tc.wantCode {
				t.Fatalf("serve %q: exit %d, want %d\nstderr:\n%s", tc.args, code, tc.wantCode, errOut)
			}
			ls := lines(errOut)
			if len(ls) != 1 {
				t.Fatalf("want one line on stderr, got %d:\n%s", len(ls), errOut)
			}
			if !strings.HasPrefix(ls[0], "paf-peer serve: ") {
				t.Errorf("error %q does not start with \"paf-peer serve: \"", ls[0])
			}
			for _, w := range tc.want {
				if !strings.Contains(ls[0], w) {
					t.Errorf("error %q does not contain %q", ls[0], w)
				}
			}
			if f := filepath.Join(m.root, "file"); tc.wantFile && !strings.Contains(ls[0], f) {
				t.Errorf("error %q does not name %s", ls[0], f)
			}
			if tc.wantCode == 2 && !strings.Contains(ls[0], "--help") {
				t.Errorf("usage error %q does not point to --help", ls[0])
			}
			if out != "" {
				t.Errorf("stdout: %q, want nothing", out)
			}
		})
	}
}

// status --watch redraws until interrupted, then exits 0.
func TestE2EStatusWatch(t *testing.T) {
	tests := map[string]struct {
		args    []string
		redraws func(out string) int // complete redraws in out that show the peer
	}{
		"text": {
			args: []string{"status", "--watch"},
			redraws: func(out string) int {
				n := 0
				frames := strings.Split(out, "\x1b[H\x1b[2J")
				for _, f := range frames[1:] {
					if strings.Contains(f, "watched") {
						n++
					}
				}
				return n
			},
		},
		"json": {
			args: []string{"status", "--watch", "--json"},
			redraws: func(out string) int {
				n := 0
				for _, l := range strings.SplitAfter(out, "\n") {
					var st jsonStatus
					if strings.HasSuffix(l, "\n") && json.Unmarshal([]byte(l), &st) == nil && st.peerNamed("watched", "alive") != nil {
						n++
					}
				}
				return n
			},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			m := newTestMesh(t)
			if p := m.serve("w", "--name", "watched"); !p.serving() {
				t.Fatalf("serve: exit %d\n%s", p.code, p.stderr())
			}
			w := startPeer(t, m.env("watch"), tc.args...)
			testutil.WaitFor(t, meshDeadline, "two redraws showing the peer", func() bool {
				if w.exited() {
					t.Fatalf("%s exited (code %d) before being interrupted\nstderr: %s", w, w.code, w.stderr())
				}
				return tc.redraws(w.stdout()) >= 2
			})
			w.signal(os.Interrupt)
			code, err := w.wait(cliTimeout)
			if err != nil || code != 0 {
				t.Fatalf("%s after SIGINT: exit %d, %v; want 0\nstderr: %s", w, code, err, w.stderr())
			}
			if e := w.stderr(); e != "" {
				t.Errorf("stderr: %q, want nothing", e)
			}
		})
	}
}

// Exit codes of the real process (SPEC section 6: 0 ok, 1 failure, 2 bad
// usage), through main and not just run.
func TestE2EUsage(t *testing.T) {
	tests := map[string]struct {
		args     []string
		wantCode int
		stdout   string // substring of stdout
		stderr   string // substring of stderr
	}{
		"unknown command": {args: []string{"frobnicate"}, wantCode: 2, stderr: `unknown command "frobnicate"`},
		"unknown flag":    {args: []string{"serve", "--frobnicate"}, wantCode: 2, stderr: "frobnicate"},
		"--help":          {args: []string{"--help"}, wantCode: 0, stdout: "Usage: paf-peer COMMAND"},
		"version":         {args: []string{"version"}, wantCode: 0, stdout: "paf-peer " + version},
		"no command":      {args: nil, wantCode: 2, stderr: "Usage: paf-peer COMMAND"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			m := newTestMesh(t)
			out, errOut, code := runCLI(t, m.env("u"), tc.args...)
			if code != tc.wantCode || !strings.Contains(out, tc.stdout) || !strings.Contains(errOut, tc.stderr) {
				t.Fatalf("paf-peer %q: exit %d (want %d)\nstdout: %q (want %q)\nstderr: %q (want %q)",
					tc.args, code, tc.wantCode, out, tc.stdout, errOut, tc.stderr)
			}
		})
	}
}
