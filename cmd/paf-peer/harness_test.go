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
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"
	"go.uber.org/goleak"

	"github.com/paf-mesh/paf-mesh/discovery"
	"github.com/paf-mesh/paf-mesh/internal/netns"
	"github.com/paf-mesh/paf-mesh/internal/testutil"
	"github.com/paf-mesh/paf-mesh/internal/testutil/mcptest"
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

func TestMain(m *testing.M) { os.Exit(testMain(m)) }

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
	t    *testing.T
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
func cleanEnv(t *testing.T, env map[string]string) []string {
	t.Helper()
	out := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "GORACE=atexit_sleep_ms=100"}
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	return out
}

// startPeer starts paf-peer with args (a command and its flags) on this
// host and returns at once (see spawn).
func startPeer(t *testing.T, env map[string]string, args ...string) *proc {
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
func spawn(t *testing.T, h *netns.Host, env map[string]string, pipes func(*proc) (wait func()), args ...string) *proc {
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
	groups   = map[*testing.T]*procGroup{}
)

// procsOf returns t's group, creating it (and its cleanup) on first use.
func procsOf(t *testing.T) *procGroup {
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
func (p *proc) kill(t *testing.T) {
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
func runCLI(t *testing.T, env map[string]string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	return runCLIOn(t, nil, env, args...)
}

// runCLIOn runs one paf-peer command to completion on h (nil: this host). A
// command still running after cliTimeout fails the test: it has hung.
func runCLIOn(t *testing.T, h *netns.Host, env map[string]string, args ...string) (stdout, stderr string, code int) {
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
	t      *testing.T
	runDir string
	root   string
}

func newTestMesh(t *testing.T) *testMesh {
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
	peerKeys  = []string{"id", "name", "description", "host", "addr", "state", "listening", "stored"}
	fwdKeys   = []string{"from", "to", "expires_at"}
	modeNames = map[string]bool{"open": true, "secure": true}
)

// decodeStatus checks that out is exactly one JSON object in the SPEC's shape
// and decodes it.
func decodeStatus(t *testing.T, out string) *jsonStatus {
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

func requireKeys(t *testing.T, what string, obj map[string]json.RawMessage, keys []string) {
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

// ---- The MCP client over a process's stdio

// The part of the harness for end-to-end tests of `paf-peer mcp`: the real binary, driven
// by mcp-go's own client over the process's stdin and stdout, with every line
// the process writes to stdout checked to be one JSON-RPC message.

// mcpCallTimeout bounds one tool call that is not meant to block; the first
// calls also wait for the peer to join the mesh.
const mcpCallTimeout = 30 * time.Second

// mcpPeer is one `paf-peer mcp` process and the MCP client talking to it.
type mcpPeer struct {
	t    *testing.T
	who  string
	p    *proc
	c    *client.Client
	init *mcp.InitializeResult

	notes mcptest.Notes // every notification the client received

	mu        sync.Mutex // guards badLines and toolsList
	badLines  []string
	toolsList int // bytes of the last tools/list response line
}

// mcp starts `paf-peer mcp` with its own state dir and the shared run dir,
// and initializes a client with it (the legacy handshake, as Claude Code
// does). When the test ends the client closes the process's stdin, which
// ends it; the process group then checks it for races and panics.
func (m *testMesh) mcp(who string, args ...string) *mcpPeer {
	t := m.t
	t.Helper()
	args = append([]string{"mcp"}, args...)
	mp := &mcpPeer{t: t, who: who}
	var stdin io.WriteCloser
	var toClient *io.PipeReader
	p := spawn(t, nil, m.env(who), func(p *proc) func() {
		p.cmd.Stdout = nil
		var err error
		if stdin, err = p.cmd.StdinPipe(); err != nil {
			t.Fatal(err)
		}
		stdout, err := p.cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		// Check each line, then hand it to the client.
		var fromProc *io.PipeWriter
		toClient, fromProc = io.Pipe()
		copied := make(chan struct{})
		go func() {
			defer close(copied)
			defer fromProc.Close()
			r := bufio.NewReaderSize(stdout, 1<<16)
			for {
				line, err := r.ReadBytes('\n')
				if len(line) > 0 {
					mp.inspect(line)
					_, _ = fromProc.Write(line) // fails only once the client is gone
				}
				if err != nil {
					return
				}
			}
		}()
		return func() { <-copied }
	}, args...)
	mp.p = p

	mp.c = client.NewClient(transport.NewIO(toClient, stdin, io.NopCloser(strings.NewReader(""))), client.WithLegacyProtocolOnly())
	mp.c.OnNotification(mp.notes.Add)
	t.Cleanup(func() {
		// Closing the client closes the process's stdin: the end of its
		// input, on which it ends its conversations, leaves and exits 0.
		mp.c.Close()
		if code, err := p.wait(stopTimeout); err != nil {
			t.Errorf("paf-peer mcp (%s) did not exit after its stdin closed: %v", who, err)
		} else if code != 0 {
			t.Errorf("paf-peer mcp (%s) exited %d after its stdin closed; want 0", who, code)
		}
		mp.mu.Lock()
		defer mp.mu.Unlock()
		for _, l := range mp.badLines {
			t.Errorf("paf-peer mcp (%s) wrote a line to stdout that is not a JSON-RPC message: %q", who, l)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), mcpCallTimeout)
	defer cancel()
	if err := mp.c.Start(ctx); err != nil {
		t.Fatalf("start client: %v", err)
	}
	var err error
	if mp.init, err = mcptest.Initialize(ctx, mp.c, "paf-e2e"); err != nil {
		t.Fatalf("initialize paf-peer mcp (%s): %v\nstderr:\n%s", who, err, p.stderr())
	}
	return mp
}

// inspect checks that one line of stdout is a JSON-RPC 2.0 message.
func (mp *mcpPeer) inspect(line []byte) {
	var msg struct {
		JSONRPC string          `json:"jsonrpc"`
		ID      json.RawMessage `json:"id"`
		Method  string          `json:"method"`
		Result  json.RawMessage `json:"result"`
		Error   json.RawMessage `json:"error"`
	}
	err := json.Unmarshal(line, &msg)
	mp.mu.Lock()
	defer mp.mu.Unlock()
	if err != nil || msg.JSONRPC != "2.0" || (msg.Method == "" && msg.Result == nil && msg.Error == nil) {
		mp.badLines = append(mp.badLines, clipLine(string(line)))
		return
	}
	var res struct {
		Tools []json.RawMessage `json:"tools"`
	}
	if msg.Result != nil && json.Unmarshal(msg.Result, &res) == nil && res.Tools != nil {
		mp.toolsList = len(line)
	}
}

func clipLine(s string) string {
	if len(s) > 300 {
		return s[:300] + "…"
	}
	return s
}

// call calls a tool (within mcpCallTimeout) and fails on a protocol error.
func (mp *mcpPeer) call(tool string, args map[string]any) *mcp.CallToolResult {
	mp.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), mcpCallTimeout)
	defer cancel()
	res, err := mcptest.Call(ctx, mp.c, tool, args, nil)
	if err != nil {
		mp.t.Fatalf("%s: %s: %v\nstderr:\n%s", mp.who, tool, err, mp.p.stderr())
	}
	return res
}

// ok calls a tool that must succeed; it returns the text and structured
// content.
func (mp *mcpPeer) ok(tool string, args map[string]any) (string, map[string]any) {
	mp.t.Helper()
	res := mp.call(tool, args)
	if res.IsError {
		mp.t.Fatalf("%s: %s(%v): error result: %s", mp.who, tool, args, mcptest.Text(res))
	}
	return mcptest.Text(res), mcptest.Structured(mp.t, res)
}

// fails calls a tool that must return an error result whose text contains
// every one of want.
func (mp *mcpPeer) fails(tool string, args map[string]any, want ...string) string {
	mp.t.Helper()
	res := mp.call(tool, args)
	txt := mcptest.Text(res)
	if !res.IsError {
		mp.t.Fatalf("%s: %s(%v): want an error result, got: %s", mp.who, tool, args, txt)
	}
	for _, w := range want {
		if !strings.Contains(txt, w) {
			mp.t.Fatalf("%s: %s(%v): the error does not say %q:\n%s", mp.who, tool, args, w, txt)
		}
	}
	return txt
}

// await waits up to timeout for a call made with mcptest.Async, which must
// succeed; it returns the text and structured content.
func (mp *mcpPeer) await(ch <-chan mcptest.Result, timeout time.Duration) (string, map[string]any) {
	mp.t.Helper()
	select {
	case r := <-ch:
		if r.Err != nil {
			mp.t.Fatalf("%s: %v", mp.who, r.Err)
		}
		if r.Res.IsError {
			mp.t.Fatalf("%s: error result: %s", mp.who, mcptest.Text(r.Res))
		}
		return mcptest.Text(r.Res), mcptest.Structured(mp.t, r.Res)
	case <-time.After(timeout):
		mp.t.Fatalf("%s: the call did not return within %s", mp.who, timeout)
	}
	return "", nil
}

// pushed returns the meta of the channel notifications received so far, by
// message id.
func (mp *mcpPeer) pushed() map[string]map[string]any {
	out := map[string]map[string]any{}
	for _, n := range mp.notes.Of("notifications/claude/channel") {
		meta, _ := n.Params.AdditionalFields["meta"].(map[string]any)
		if id, _ := meta["message_id"].(string); id != "" {
			meta["content"] = n.Params.AdditionalFields["content"]
			out[id] = meta
		}
	}
	return out
}

// session is what paf_list_sessions says about one session.
type e2eSession struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	Host        string `json:"host"`
	Activity    string `json:"activity"`
	Focus       string `json:"focus"`
	You         bool   `json:"you"`
}

// sessions calls paf_list_sessions and returns the sessions by name.
func (mp *mcpPeer) sessions() map[string]e2eSession {
	mp.t.Helper()
	_, d := mp.ok("paf_list_sessions", nil)
	var list []e2eSession
	decodeInto(mp.t, d["sessions"], &list)
	out := map[string]e2eSession{}
	for _, s := range list {
		out[s.Name] = s
	}
	return out
}

// e2eMessage is a message in structuredContent.
type e2eMessage struct {
	ID              string `json:"id"`
	From            string `json:"from"`
	To              string `json:"to"`
	Body            string `json:"body"`
	Kind            string `json:"kind"`
	ConversationID  string `json:"conversation_id"`
	Intent          string `json:"intent"`
	SentAt          string `json:"sent_at"`
	ForwardedFrom   string `json:"forwarded_from"`
	File            string `json:"file"`
	Broadcast       bool   `json:"broadcast"`
	NewConversation bool   `json:"new_conversation"`
}

func msgsOf(t *testing.T, d map[string]any) []e2eMessage {
	t.Helper()
	var ms []e2eMessage
	decodeInto(t, d["messages"], &ms)
	return ms
}

func decodeInto(t *testing.T, v any, into any) {
	t.Helper()
	b, err := json.Marshal(v)
	if err == nil {
		err = json.Unmarshal(b, into)
	}
	if err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
}

// ---- Lab hosts

// The part of the harness for lab hosts: the real paf-peer binary on the hosts of an internal/netns
// lab, each host a network namespace on a private bridge. Namespaces share
// the file system, so every host gets run and state dirs of its own: a shared
// run dir would let peers meet through it instead of over the network, and
// the tests would prove nothing about mDNS.
//
// The helpers take the *testing.T to fail explicitly rather than using
// proc.t: processes belong to the top-level test (so they outlive its
// subtests), and a subtest must not call FailNow on its parent.

// lanHost is one host of a lab with the directories and secret of the peer
// it runs.
type lanHost struct {
	*netns.Host
	name     string // the name its serve claims, also its label in logs
	runDir   string
	stateDir string
	secret   string // PAF_SECRET; "" is open mode
	serve    *proc  // its `paf-peer serve`, once started
}

// newLANHosts builds a lab with one host per name (skipping or failing as
// netns.Require does) and gives each its own run and state dirs.
func newLANHosts(t *testing.T, names ...string) []*lanHost {
	t.Helper()
	lab := netns.New(t, len(names))
	// Not t.TempDir(): its long path would push the control sockets past the
	// 107-byte limit on Unix socket paths. Removed after the processes stop
	// (cleanups run last-in first-out, and processes register theirs later).
	root, err := os.MkdirTemp("", "paf")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	hosts := make([]*lanHost, len(names))
	for i, n := range names {
		hosts[i] = &lanHost{
			Host:     lab.Hosts[i],
			name:     n,
			runDir:   filepath.Join(root, n, "run"),
			stateDir: filepath.Join(root, n, "state"),
		}
	}
	return hosts
}

// lanSecret returns a fresh random secret, well over the 16-character minimum.
func lanSecret(t *testing.T) string {
	t.Helper()
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b[:])
}

// env is the configuration every command on h runs with: its own dirs and
// its secret, nothing else.
func (h *lanHost) env() map[string]string {
	env := map[string]string{"PAF_RUN_DIR": h.runDir, "PAF_STATE_DIR": h.stateDir}
	if h.secret != "" {
		env["PAF_SECRET"] = h.secret
	}
	return env
}

// startServe starts `paf-peer serve --name <h.name>` plus args on h, owned
// by t (its cleanup stops it).
func (h *lanHost) startServe(t *testing.T, args ...string) *proc {
	t.Helper()
	h.serve = spawn(t, h.Host, h.env(), nil, append([]string{"serve", "--name", h.name}, args...)...)
	return h.serve
}

// cli runs one paf-peer command on h with h's environment.
func (h *lanHost) cli(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	return runCLIOn(t, h.Host, h.env(), args...)
}

// waitServing waits until p serves (see proc.serving) and returns its peer
// id; p exiting first fails t.
func waitServing(t *testing.T, p *proc) string {
	t.Helper()
	if !p.serving() {
		t.Fatalf("paf-peer %s%s exited with %d before serving:\n%s", p, p.where(), p.code, p.stderr())
	}
	return p.id
}

// lanView is a status report with what jsonStatus leaves out: the relay
// address and the counters.
type lanView struct {
	*jsonStatus
	relay    string            // self's relay address
	counters map[string]uint64 // "counters" of status --json
}

// decodeLANView checks out as status --json (decodeStatus) and decodes it.
func decodeLANView(t *testing.T, out string) *lanView {
	t.Helper()
	st := decodeStatus(t, out)
	var extra struct {
		Self *struct {
			Relay string `json:"relay"`
		} `json:"self"`
		Counters map[string]uint64 `json:"counters"`
	}
	if err := json.Unmarshal([]byte(out), &extra); err != nil {
		t.Fatalf("status --json: %v\n%s", err, out)
	}
	v := &lanView{jsonStatus: st, counters: extra.Counters}
	if extra.Self != nil {
		v.relay = extra.Self.Relay
	}
	return v
}

// view asks h's serve for its view of the mesh straight over its control
// socket (cheap enough to poll; the socket is a path, so it is reachable
// from any namespace). It returns nil while no peer in h's run dir answers.
func (h *lanHost) view(t *testing.T) *lanView {
	t.Helper()
	l, err := discovery.NewLocal(h.runDir, nil)
	if err != nil {
		t.Fatal(err)
	}
	entries, err := l.Entries()
	if err != nil {
		return nil
	}
	for _, e := range entries {
		if e.Control == "" {
			continue
		}
		if raw, err := askStatus(e.Control); err == nil {
			return decodeLANView(t, string(raw))
		}
	}
	return nil
}

// status runs `paf-peer status --json` on h, in h's namespace with h's run
// dir, as a user would; it must succeed and report a peer.
func (h *lanHost) status(t *testing.T) *lanView {
	t.Helper()
	out, errOut, code := h.cli(t, "status", "--json")
	if code != 0 {
		t.Fatalf("status --json on %s: exit %d\nstderr: %s", h.name, code, errOut)
	}
	v := decodeLANView(t, out)
	if v.Self == nil {
		t.Fatalf("status --json on %s: no peer answered:\n%s", h.name, out)
	}
	return v
}

// seeAlive reports whether every one of hosts answers and lists each of
// names alive.
func seeAlive(t *testing.T, hosts []*lanHost, names ...string) bool {
	t.Helper()
	for _, h := range hosts {
		v := h.view(t)
		if v == nil {
			return false
		}
		for _, n := range names {
			if v.peerNamed(n, "alive") == nil {
				return false
			}
		}
	}
	return true
}

// lanSend is the output of send --json.
type lanSend struct {
	ID      string `json:"id"`
	Status  string `json:"status"`
	Holders int    `json:"holders"`
}

// send runs `send --as <h.name> to body --json` on h.
func (h *lanHost) send(t *testing.T, to, body string) lanSend {
	t.Helper()
	out, errOut, code := h.cli(t, "send", "--as", h.name, to, body, "--json")
	if code != 0 {
		t.Fatalf("send --as %s %s on %s: exit %d\nstderr: %s", h.name, to, h.name, code, errOut)
	}
	var r lanSend
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("send --json: %v\n%s", err, out)
	}
	return r
}

// lanMessage is one message of check --json.
type lanMessage struct {
	ID   string `json:"id"`
	From string `json:"from"`
	To   string `json:"to"`
	Body string `json:"body"`
}

// check runs `check --as <h.name> --json` on h: the unread messages, now
// marked read.
func (h *lanHost) check(t *testing.T) []lanMessage {
	t.Helper()
	out, errOut, code := h.cli(t, "check", "--as", h.name, "--json")
	if code != 0 {
		t.Fatalf("check --as %s on %s: exit %d\nstderr: %s", h.name, h.name, code, errOut)
	}
	var r struct {
		Messages []lanMessage `json:"messages"`
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("check --json: %v\n%s", err, out)
	}
	return r.Messages
}

// dialFrom tries a TCP connection to addr from inside h's namespace and
// returns the dial's error (nil: something accepted it).
func dialFrom(t *testing.T, h *netns.Host, addr string) error {
	t.Helper()
	var dialErr error
	err := h.Run(func() error {
		c, err := net.DialTimeout("tcp", addr, 3*time.Second)
		if err == nil {
			_ = c.Close()
		}
		dialErr = err
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return dialErr
}

// listenIn opens a TCP listener in h's namespace on addr, closed when t ends.
func listenIn(t *testing.T, h *netns.Host, addr string) net.Listener {
	t.Helper()
	var ln net.Listener
	err := h.Run(func() (err error) {
		ln, err = net.Listen("tcp", addr)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	return ln
}

// lanSocket is one socket `ss` lists.
type lanSocket struct {
	netid string // tcp or udp
	local string // local address:port
	users string // the process column, e.g. users:(("paf-peer",pid=42,fd=7))
}

// socketsIn lists the listening TCP and the unconnected UDP sockets of h's
// namespace, with their owners, as `ss -H -l -t -u -n -p` run there sees them.
func socketsIn(t *testing.T, h *netns.Host) []lanSocket {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cliTimeout)
	defer cancel()
	out, err := h.Command(ctx, "ss", "-H", "-l", "-t", "-u", "-n", "-p").Output()
	if err != nil {
		t.Fatalf("ss in %s: %v", h.Name, err)
	}
	var socks []lanSocket
	for _, l := range lines(string(out)) {
		// Netid State Recv-Q Send-Q Local Peer [Process]
		f := strings.Fields(l)
		if len(f) < 6 {
			t.Fatalf("ss in %s: unexpected line %q", h.Name, l)
		}
		s := lanSocket{netid: f[0], local: f[4]}
		if len(f) > 6 {
			s.users = strings.Join(f[6:], " ")
		}
		socks = append(socks, s)
	}
	return socks
}

// ownedBy reports whether process pid holds s.
func (s lanSocket) ownedBy(pid int) bool {
	return strings.Contains(s.users, "pid="+strconv.Itoa(pid)+",")
}

// hostOf returns the host part of a host:port address, failing t when addr
// is not one.
func hostOf(t *testing.T, what, addr string) string {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	if err != nil || port == "" || port == "0" {
		t.Fatalf("%s %q: want host:port with a bound port", what, addr)
	}
	return host
}

// portOf returns the port of a host:port address.
func portOf(t *testing.T, what, addr string) string {
	t.Helper()
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("%s %q: want host:port", what, addr)
	}
	return port
}
