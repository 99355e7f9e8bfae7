package main

// The one harness for end-to-end tests of the real paf-peer binary: TestMain
// builds it once; spawn starts it (on this host or on a lab host, with its
// stdio captured or connected to an MCP client), with a clean environment;
// proc.serving waits until its control socket answers; runCLI runs a
// command to completion; testutil.WaitFor polls for an outcome with a
// deadline.
// Timings here are deadlines for a loaded 2-core machine under -race, never
// claims about speed.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/paf-mesh/paf-mesh/discovery"
	"github.com/paf-mesh/paf-mesh/internal/netns"
	"github.com/paf-mesh/paf-mesh/internal/testutil"
)

// pafPeer is the path of the binary under test, built by TestMain.
var pafPeer string

const (
	// cliTimeout bounds one-shot commands; one that runs longer has hung.
	cliTimeout = 30 * time.Second
	// stopTimeout is how long a process gets to leave after SIGTERM before
	// the cleanup kills it. A graceful leave takes about a second.
	stopTimeout = 15 * time.Second
	// pollEvery is how often the polling loops here look, as
	// testutil.WaitFor does.
	pollEvery = testutil.PollInterval
)

func TestMain(m *testing.M) {
	if os.Getenv(stockLANChildEnv) != "" {
		os.Exit(stockLANChild()) // a baseline node of BenchmarkLANFailureDetection
	}
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "paf-bin")
	if err != nil {
		fmt.Fprintf(os.Stderr, "harness: %v\n", err)
		return 1
	}
	defer os.RemoveAll(dir)
	pafPeer = filepath.Join(dir, "paf-peer")
	args := []string{"build", "-o", pafPeer}
	if testutil.RaceEnabled() {
		// A race in the product shows up in e2e runs too: the binary prints
		// "DATA RACE" and the harness fails the test that ran it.
		args = append(args, "-race")
	}
	// go test puts its own toolchain first in PATH.
	build := exec.Command("go", append(args, ".")...)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintf(os.Stderr, "harness: go build paf-peer: %v\n", err)
		return 1
	}
	code := m.Run()
	if code == 0 {
		// What goleak.VerifyTestMain does, without its os.Exit, so that the
		// deferred removal of the binary still runs.
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: errors on successful test run: %v\n", err)
			return 1
		}
	}
	return code
}

// proc is one running paf-peer process.
type proc struct {
	t    testing.TB
	args []string
	// runDir is the run dir it was started with (PAF_RUN_DIR), where
	// serving looks for its control socket; host the lab host it runs on.
	runDir, host string
	id           string // its peer id, once serving has seen it answer
	cmd          *exec.Cmd
	out          testutil.SyncBuffer
	err          testutil.SyncBuffer
	done         chan struct{} // closed when the process has exited and been reaped
	code         int           // exit code, valid after done; -1 if killed by a signal
}

// cleanEnv is the environment every paf-peer runs with: PATH, a private HOME,
// and env. Nothing else leaks in from the test's environment (no PAF_SECRET,
// no XDG_*), so each test states all the configuration it depends on.
// GORACE shortens the race detector's pause at exit (1 s by default, which
// would make every short command take a second) while still leaving time
// for a race in another goroutine to be reported.
func cleanEnv(t testing.TB, env map[string]string) []string {
	t.Helper()
	out := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "GORACE=atexit_sleep_ms=100"}
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	return out
}

// startPeer starts paf-peer with args (a command and its flags) on this
// host and returns at once (see spawn).
func startPeer(t testing.TB, env map[string]string, args ...string) *proc {
	t.Helper()
	return spawn(t, nil, env, nil, args...)
}

// spawn is the one way the e2e tests start paf-peer: on this host (h nil) or
// on a lab host (under `ip netns exec`, which execs it in place, so the PID
// signalled is paf-peer's own), with env as its whole configuration. With
// pipes nil its stdout and stderr are captured; otherwise pipes connects
// them (the MCP harness reads stdout as the MCP channel) before the start.
// When the test ends, every process it started that still runs gets
// SIGTERM, all at once, and then SIGKILL if it has not exited within
// stopTimeout. Processes are only ever signalled by their PID.
func spawn(t testing.TB, h *netns.Host, env map[string]string, pipes func(*proc) (wait func()), args ...string) *proc {
	t.Helper()
	p := &proc{t: t, args: args, runDir: env["PAF_RUN_DIR"], done: make(chan struct{})}
	if h == nil {
		p.cmd = exec.Command(pafPeer, args...)
	} else {
		p.cmd = h.Command(context.Background(), pafPeer, args...)
		p.host = h.Name
	}
	// t.TempDir (in cleanEnv) before procsOf: cleanups run last-in first-out,
	// so the processes are stopped before their directories are removed.
	p.cmd.Env = cleanEnv(t, env)
	p.cmd.Dir = t.TempDir()
	p.cmd.Stdout, p.cmd.Stderr = &p.out, &p.err
	copied := func() {}
	if pipes != nil {
		copied = pipes(p)
	}
	g := procsOf(t)
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start paf-peer %s%s: %v", strings.Join(args, " "), p.where(), err)
	}
	go func() {
		copied() // exec's Wait closes the pipes: read them to the end first
		_ = p.cmd.Wait()
		p.code = p.cmd.ProcessState.ExitCode()
		close(p.done)
	}()
	g.add(p)
	return p
}

func (p *proc) where() string {
	if p.host == "" {
		return ""
	}
	return " on " + p.host
}

// procGroup is the processes one test started, stopped together at its end
// so that their graceful leaves (about a second each) overlap.
type procGroup struct {
	mu    sync.Mutex
	procs []*proc
}

var (
	groupsMu sync.Mutex
	groups   = map[testing.TB]*procGroup{}
)

// procsOf returns t's group, creating it (and its cleanup) on first use.
func procsOf(t testing.TB) *procGroup {
	groupsMu.Lock()
	defer groupsMu.Unlock()
	if g, ok := groups[t]; ok {
		return g
	}
	g := &procGroup{}
	groups[t] = g
	t.Cleanup(func() {
		groupsMu.Lock()
		delete(groups, t)
		groupsMu.Unlock()
		g.stop()
	})
	return g
}

func (g *procGroup) add(p *proc) {
	g.mu.Lock()
	g.procs = append(g.procs, p)
	g.mu.Unlock()
}

func (g *procGroup) stop() {
	g.mu.Lock()
	procs := g.procs
	g.mu.Unlock()
	for _, p := range procs {
		if !p.exited() {
			_ = p.cmd.Process.Signal(syscall.SIGTERM)
		}
	}
	deadline := time.After(stopTimeout)
	for _, p := range procs {
		select {
		case <-p.done:
		case <-deadline:
			p.t.Errorf("paf-peer %s did not exit within %s of SIGTERM; killing it", p, stopTimeout)
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		p.check()
	}
}

// check asserts what every run must satisfy: no data race, no panic, and
// nothing on stdout from serve (the stdout of a peer is an MCP channel in
// `paf-peer mcp`, so serve must not write there either).
func (p *proc) check() {
	t := p.t
	stderr := p.stderr()
	if strings.Contains(stderr, "DATA RACE") {
		t.Errorf("paf-peer %s: data race:\n%s", p, stderr)
	}
	if strings.Contains(stderr, "panic:") || strings.Contains(stderr, "fatal error:") {
		t.Errorf("paf-peer %s panicked:\n%s", p, stderr)
	}
	if len(p.args) > 0 && p.args[0] == "serve" {
		if out := p.stdout(); out != "" {
			t.Errorf("paf-peer %s wrote to stdout (it must stay empty):\n%s", p, out)
		}
	}
	if t.Failed() {
		t.Logf("stderr of paf-peer %s (pid %d, exit %d):\n%s", p, p.cmd.Process.Pid, p.code, stderr)
	}
}

func (p *proc) String() string { return strings.Join(p.args, " ") }

func (p *proc) stdout() string { return p.out.String() }
func (p *proc) stderr() string { return p.err.String() }

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// signal sends sig to the process (by PID).
func (p *proc) signal(sig os.Signal) {
	p.t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		p.t.Fatalf("signal %v to paf-peer %s: %v", sig, p, err)
	}
}

// kill ends the process as a crash would (SIGKILL: no goodbye to the mesh)
// and waits until it is gone.
func (p *proc) kill(t testing.TB) {
	t.Helper()
	p.signal(syscall.SIGKILL)
	if code, err := p.wait(stopTimeout); err != nil || code != -1 {
		t.Fatalf("paf-peer %s after SIGKILL: exit %d, %v; want killed by the signal", p, code, err)
	}
}

// errStillRunning is wait's error when the process outlives the timeout.
var errStillRunning = errors.New("still running")

// wait waits up to timeout for the process to exit and returns its exit code
// (-1 if a signal ended it).
func (p *proc) wait(timeout time.Duration) (int, error) {
	select {
	case <-p.done:
		return p.code, nil
	case <-time.After(timeout):
		return 0, fmt.Errorf("paf-peer %s: %w after %s", p, errStillRunning, timeout)
	}
}

// runCLI runs one paf-peer command to completion on this host.
func runCLI(t testing.TB, env map[string]string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	return runCLIOn(t, nil, env, args...)
}

// runCLIOn runs one paf-peer command to completion on h (nil: this host). A
// command still running after cliTimeout fails the test: it has hung.
func runCLIOn(t testing.TB, h *netns.Host, env map[string]string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	p := spawn(t, h, env, nil, args...)
	code, err := p.wait(cliTimeout)
	if err != nil {
		t.Fatalf("%v (hung?); stderr so far:\n%s", err, p.stderr())
	}
	return p.stdout(), p.stderr(), code
}

// testMesh is a place for peers to meet: one run dir (the local rendezvous)
// shared by all, and a state dir per peer.
type testMesh struct {
	t      testing.TB
	runDir string
	root   string
}

func newTestMesh(t testing.TB) *testMesh {
	t.Helper()
	// Not t.TempDir(): its long path would push the control sockets in the
	// run dir past the 107-byte limit on Unix socket paths.
	root, err := os.MkdirTemp("", "paf")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	return &testMesh{t: t, runDir: filepath.Join(root, "run"), root: root}
}

// env is the environment of peer number or name who: the shared run dir and
// a state dir of its own.
func (m *testMesh) env(who string) map[string]string {
	return map[string]string{
		"PAF_RUN_DIR":   m.runDir,
		"PAF_STATE_DIR": filepath.Join(m.root, "state-"+who),
	}
}

// serve starts `paf-peer serve` with its own state dir and extra args.
func (m *testMesh) serve(who string, args ...string) *proc {
	m.t.Helper()
	return startPeer(m.t, m.env(who), append([]string{"serve"}, args...)...)
}

// The `status --json` shape of SPEC section 6, decoded independently of the
// product's own types so that a renamed field fails the tests.
type jsonStatus struct {
	Self     *jsonPeer     `json:"self"`
	Mode     string        `json:"mode"`
	Peers    []jsonPeer    `json:"peers"`
	Forwards []jsonForward `json:"forwards"`
	Message  string        `json:"message"`
}

type jsonPeer struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	Description string `json:"description"`
	Host        string `json:"host"`
	Addr        string `json:"addr"`
	State       string `json:"state"`
	Listening   bool   `json:"listening"`
	Stored      int    `json:"stored"`
	Since       string `json:"since"`
}

type jsonForward struct {
	From      string `json:"from"`
	To        string `json:"to"`
	ExpiresAt string `json:"expires_at"`
}

// peerKeys and topKeys are the keys SPEC section 6 promises in status --json.
var (
	topKeys   = []string{"self", "mode", "peers", "forwards"}
	peerKeys  = []string{"id", "name", "description", "host", "addr", "state", "listening", "stored", "identity"}
	fwdKeys   = []string{"from", "to", "expires_at"}
	modeNames = map[string]bool{"open": true, "secure": true}
)

// decodeStatus checks that out is exactly one JSON object in the SPEC's shape
// and decodes it.
func decodeStatus(t testing.TB, out string) *jsonStatus {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(out))
	var raw map[string]json.RawMessage
	if err := dec.Decode(&raw); err != nil {
		t.Fatalf("status --json: not a JSON object: %v\n%s", err, out)
	}
	if dec.More() {
		t.Fatalf("status --json: more than one JSON value on stdout:\n%s", out)
	}
	requireKeys(t, "status", raw, topKeys)
	for _, k := range []string{"peers", "forwards"} {
		if !strings.HasPrefix(string(raw[k]), "[") {
			t.Fatalf("status --json: %s is %s, want an array (empty: [])", k, raw[k])
		}
	}
	var peers []map[string]json.RawMessage
	if err := json.Unmarshal(raw["peers"], &peers); err != nil {
		t.Fatalf("status --json: peers is not an array of objects: %v\n%s", err, out)
	}
	for _, p := range peers {
		requireKeys(t, "status peer", p, peerKeys)
	}
	if string(raw["self"]) != "null" {
		var self map[string]json.RawMessage
		if err := json.Unmarshal(raw["self"], &self); err != nil {
			t.Fatalf("status --json: self is not an object: %v\n%s", err, out)
		}
		requireKeys(t, "status self", self, peerKeys)
	}
	var fwds []map[string]json.RawMessage
	if err := json.Unmarshal(raw["forwards"], &fwds); err != nil {
		t.Fatalf("status --json: forwards is not an array of objects: %v\n%s", err, out)
	}
	for _, f := range fwds {
		requireKeys(t, "status forward", f, fwdKeys)
	}
	var st jsonStatus
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("status --json: %v\n%s", err, out)
	}
	if !modeNames[st.Mode] {
		t.Fatalf("status --json: mode %q, want open or secure", st.Mode)
	}
	return &st
}

func requireKeys(t testing.TB, what string, obj map[string]json.RawMessage, keys []string) {
	t.Helper()
	for _, k := range keys {
		if _, ok := obj[k]; !ok {
			t.Fatalf("%s: key %q missing (SPEC section 6 shape); got %v", what, k, sortedKeys(obj))
		}
	}
}

func sortedKeys(m map[string]json.RawMessage) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// status runs `paf-peer status --json` against the mesh and decodes it. The
// command must succeed.
func (m *testMesh) status() *jsonStatus {
	m.t.Helper()
	out, errOut, code := runCLI(m.t, m.env("status"), "status", "--json")
	if code != 0 {
		m.t.Fatalf("status --json: exit %d\nstderr: %s", code, errOut)
	}
	return decodeStatus(m.t, out)
}

// peerNamed returns the peer in st holding name in state, or nil.
func (st *jsonStatus) peerNamed(name, state string) *jsonPeer {
	for i := range st.Peers {
		if p := &st.Peers[i]; p.Name == name && p.State == state {
			return p
		}
	}
	return nil
}

// peerID returns the peer with id, or nil.
func (st *jsonStatus) peerID(id string) *jsonPeer {
	for i := range st.Peers {
		if p := &st.Peers[i]; p.ID == id {
			return p
		}
	}
	return nil
}

// lines splits s into its non-empty lines.
func lines(s string) []string {
	var out []string
	for l := range strings.SplitSeq(s, "\n") {
		if strings.TrimSpace(l) != "" {
			out = append(out, l)
		}
	}
	return out
}

// messageLines is lines(s) less the log records (slog's text format), which
// leaves what a command says to its user.
func messageLines(s string) []string {
	var out []string
	for _, l := range lines(s) {
		if !strings.HasPrefix(l, "time=") {
			out = append(out, l)
		}
	}
	return out
}

// serving waits until p serves (true) or exits (false).
func (p *proc) serving() bool {
	p.t.Helper()
	return p.servingWithin(startDeadline)
}

// servingWithin is serving with another deadline, for a start that may wait
// (for a crashed holder's name to be released). A peer serves once its
// control socket answers a status request: it finds its rendezvous entry in
// the run dir by its PID and asks the socket named there, which also gives
// its peer id.
func (p *proc) servingWithin(d time.Duration) bool {
	p.t.Helper()
	var ok bool
	testutil.WaitFor(p.t, d, "paf-peer "+p.String()+p.where()+" to serve or exit", func() bool {
		ok = p.answers()
		return ok || p.exited()
	})
	return ok
}

// answers reports whether p's control socket answers a status request
// about p itself, and records p's id.
func (p *proc) answers() bool {
	if p.runDir == "" || p.cmd.Process == nil {
		return false
	}
	l, err := discovery.NewLocal(p.runDir, nil)
	if err != nil {
		return false
	}
	entries, err := l.Entries()
	if err != nil {
		return false
	}
	for _, e := range entries {
		if e.PID != p.cmd.Process.Pid || e.Control == "" {
			continue
		}
		raw, err := askStatus(e.Control)
		if err != nil {
			return false
		}
		var st struct {
			Self struct {
				ID string `json:"id"`
			} `json:"self"`
		}
		if json.Unmarshal(raw, &st) != nil || st.Self.ID != e.ID {
			return false
		}
		p.id = e.ID
		return true
	}
	return false
}

// peerID is p's peer id, as its control socket reported it to serving.
func (p *proc) peerID() string {
	p.t.Helper()
	if p.id == "" && !p.answers() {
		p.t.Fatalf("paf-peer %s has not served (no answer on its control socket):\n%s", p, p.stderr())
	}
	return p.id
}

// views asks every live peer in the run dir for its own view of the mesh,
// straight over its control socket (not through `status`, which asks just
// one), and returns them by peer id. Peers that do not answer (starting,
// stopping, or not peers at all) are left out.
func (m *testMesh) views() map[string]*jsonStatus {
	m.t.Helper()
	l, err := discovery.NewLocal(m.runDir, nil)
	if err != nil {
		m.t.Fatal(err)
	}
	entries, err := l.Entries()
	if err != nil {
		m.t.Fatal(err)
	}
	out := make(map[string]*jsonStatus)
	for _, e := range entries {
		if e.Control == "" {
			continue
		}
		raw, err := askStatus(e.Control)
		if err != nil {
			continue
		}
		st := decodeStatus(m.t, string(raw))
		if st.Self == nil {
			m.t.Fatalf("peer %s answered status without self:\n%s", e.ID, raw)
		}
		out[st.Self.ID] = st
	}
	return out
}

// askStatus speaks the control protocol as a client that shares no code with
// the peer: one JSON request, one JSON response.
func askStatus(path string) (json.RawMessage, error) {
	c, err := net.DialTimeout("unix", path, 5*time.Second)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write([]byte(`{"v":1,"op":"status"}` + "\n")); err != nil {
		return nil, err
	}
	var resp struct {
		V      int             `json:"v"`
		Error  string          `json:"error"`
		Status json.RawMessage `json:"status"`
	}
	if err := json.NewDecoder(c).Decode(&resp); err != nil {
		return nil, err
	}
	if resp.Error != "" || resp.Status == nil {
		return nil, fmt.Errorf("control %s: error %q", path, resp.Error)
	}
	return resp.Status, nil
}
