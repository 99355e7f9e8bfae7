package clients

// The harness: the paf-peer binary built once, and each client started as a
// user would have it, in a temporary HOME with temporary XDG dirs of its own,
// configured as README.md says (setup_test.go), talking to the fake model.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// modulesDir holds the clients, installed from package-lock.json by
// `npm ci --prefix test/clients`.
const modulesDir = "node_modules"

// clientTimeout bounds each client run: a start, a few model turns and a
// graceful end, on a loaded 2-core machine.
const clientTimeout = 90 * time.Second

var (
	binDir   string // holds paf-peer, put first on each client's PATH
	buildErr error
)

// inNSEnv marks the test binary re-run inside its own mount namespace.
const inNSEnv = "PAF_CLIENTS_IN_NS"

// nsErr says why the tests could not get a private runtime dir (then the
// tests that need the defaults skip, or fail under PAF_REQUIRE_CLIENTS=1).
var nsErr error

// TestMain runs the tests in a mount namespace of their own, with a fresh
// tmpfs over /run/user holding /run/user/<uid> (mode 0700): the layout of a
// systemd desktop, where XDG_RUNTIME_DIR is /run/user/<uid>. Every client
// then runs with the defaults a user has (no PAF_* variable at all: the run
// dir comes from the user id, /run/user/<uid>/paf) and yet sees none of the
// real user's sessions, nor other tests' peers. As root that is `unshare
// --mount`; otherwise a user namespace mapping the user to root does it.
func TestMain(m *testing.M) {
	if os.Getenv(inNSEnv) == "" {
		if code, ok := reexecInNS(); ok {
			os.Exit(code)
		}
	}
	code := m.Run()
	if binDir != "" {
		_ = os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// buildOnce builds paf-peer the first time a test needs it (not in
// TestMain: `go test -list` and -run patterns matching nothing here run
// TestMain too).
var buildOnce sync.Once

func buildPafPeer() error {
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "paf-clients-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binDir = dir
		cmd := exec.Command("go", "build", "-o", filepath.Join(dir, "paf-peer"), "../../cmd/paf-peer")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build ./cmd/paf-peer: %v\n%s", err, out)
		}
	})
	return buildErr
}

// nsScript mounts the tmpfs and makes the user's runtime dir, then execs the
// test binary. $0 is the mount point.
const nsScript = `mount -t tmpfs -o mode=0755 paf-clients "$0" && mkdir -m 0700 -p /run/user/$(id -u) && exec "$@"`

// reexecInNS runs this test binary again inside a private mount namespace
// and returns its exit code; ok is false (and nsErr set) when no such
// namespace can be made here.
func reexecInNS() (code int, ok bool) {
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		nsErr = fmt.Errorf("no unshare(1) to make a private mount namespace: %w", err)
		return 0, false
	}
	flags := []string{"--mount", "--propagation", "private"}
	if os.Geteuid() != 0 {
		flags = append([]string{"--map-root-user"}, flags...)
	}
	mnt := "/run/user"
	if _, err := os.Stat(mnt); err != nil {
		mnt = "/run" // no /run/user on this system: a fresh /run, in the namespace only
	}
	probe := exec.Command(unshare, append(flags, "/bin/sh", "-c", nsScript, mnt, "true")...)
	if out, err := probe.CombinedOutput(); err != nil {
		nsErr = fmt.Errorf("cannot make a private mount namespace (unshare %s): %v %s", strings.Join(flags, " "), err, out)
		return 0, false
	}
	self, err := os.Executable()
	if err != nil {
		nsErr = err
		return 0, false
	}
	cmd := exec.Command(unshare, append(append(flags, "/bin/sh", "-c", nsScript, mnt, self), os.Args[1:]...)...)
	cmd.Env = append(os.Environ(), inNSEnv+"=1")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	err = cmd.Run()
	if exit, isExit := err.(*exec.ExitError); isExit {
		return exit.ExitCode(), true
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "run the tests in a mount namespace:", err)
		return 1, true
	}
	return 0, true
}

// requireClients reports whether missing clients must fail the tests rather
// than skip them (.ci/run sets PAF_REQUIRE_CLIENTS=1 after `npm ci`).
func requireClients() bool { return os.Getenv("PAF_REQUIRE_CLIENTS") == "1" }

// clientBin returns the path of an installed client's executable, or skips
// (fails under PAF_REQUIRE_CLIENTS=1) when it is not installed.
func clientBin(t *testing.T, name string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join(modulesDir, ".bin", name))
	if err == nil {
		err = nsErr
	}
	if err == nil {
		_, err = os.Stat(p)
	}
	if err == nil {
		_, err = exec.LookPath("node")
	}
	if err == nil {
		if err := buildPafPeer(); err != nil {
			t.Fatal(err)
		}
	}
	if err != nil {
		msg := fmt.Sprintf("cannot run client %s: %v (the clients install with: npm ci --prefix test/clients)", name, err)
		if requireClients() {
			t.Fatal(msg + "; PAF_REQUIRE_CLIENTS=1 makes this a failure")
		}
		t.Skip(msg)
	}
	return p
}

// pafPeer is the built binary.
func pafPeer() string { return filepath.Join(binDir, "paf-peer") }

// world is what the sessions of one test share: the fake model and a temp
// dir for their homes. They meet in the default run dir, private to the
// tests (TestMain).
type world struct {
	t     *testing.T
	model *FakeModel
	root  string
}

func newWorld(t *testing.T) *world {
	if os.Getenv(inNSEnv) == "1" {
		// A fresh run dir for each test: in our own namespace the default
		// one is ours alone (never the real user's: see TestMain).
		if err := os.RemoveAll(fmt.Sprintf("/run/user/%d/paf", os.Geteuid())); err != nil {
			t.Fatal(err)
		}
	}
	w := &world{t: t, model: NewFakeModel(t), root: t.TempDir()}
	// Registered first, so it runs last: after the clients have ended.
	t.Cleanup(func() {
		if t.Failed() {
			for _, s := range w.model.Sessions() {
				t.Logf("what the model of %s was shown:\n%s", s, clip(w.model.Dump(s), 20000))
			}
		}
	})
	return w
}

// home is one user session's environment: its own HOME, XDG dirs and state
// dir, nothing of ours in it but what the test asks for.
type home struct {
	dir  string
	work string // the working directory the client runs in
	env  []string
}

func (w *world) newHome(name string) *home {
	dir := filepath.Join(w.root, "home-"+name)
	h := &home{dir: dir, work: filepath.Join(dir, "work")}
	for _, d := range []string{h.work, filepath.Join(dir, ".config"), filepath.Join(dir, ".local", "state"),
		filepath.Join(dir, ".cache"), filepath.Join(dir, ".local", "share")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			w.t.Fatal(err)
		}
	}
	h.env = []string{
		"HOME=" + dir,
		"PATH=" + binDir + string(os.PathListSeparator) + os.Getenv("PATH"),
		"LANG=C.UTF-8",
		"SHELL=/bin/sh",
		"TERM=dumb",
		"XDG_CONFIG_HOME=" + filepath.Join(dir, ".config"),
		"XDG_STATE_HOME=" + filepath.Join(dir, ".local", "state"),
		"XDG_CACHE_HOME=" + filepath.Join(dir, ".cache"),
		"XDG_DATA_HOME=" + filepath.Join(dir, ".local", "share"),
		"GORACE=atexit_sleep_ms=100",
		"NO_COLOR=1",
	}
	// What a systemd session gives every process; Codex drops it for its servers.
	h.env = append(h.env, fmt.Sprintf("XDG_RUNTIME_DIR=/run/user/%d", os.Geteuid()))
	return h
}

func (h *home) write(t *testing.T, rel, content string) {
	t.Helper()
	p := filepath.Join(h.dir, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// run is a started client (or paf-peer) process.
type run struct {
	t      *testing.T
	name   string
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	out    *syncBuf
	errb   *syncBuf
	done   chan struct{}
	waitEr error
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// start runs bin with args in h's working dir and environment (plus extra),
// in a process group of its own so that the clean-up reaches the client's
// `paf-peer mcp` children too: at the end of the test (or after
// clientTimeout) the group gets SIGTERM, then SIGKILL.
func (h *home) start(t *testing.T, name string, extra []string, withStdin bool, bin string, args ...string) *run {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), clientTimeout)
	cmd := exec.Command(bin, args...)
	cmd.Dir = h.work
	cmd.Env = append(append([]string(nil), h.env...), extra...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	r := &run{t: t, name: name, cmd: cmd, out: &syncBuf{}, errb: &syncBuf{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = r.out, r.errb
	if withStdin {
		var err error
		if r.stdin, err = cmd.StdinPipe(); err != nil {
			t.Fatal(err)
		}
	}
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start %s: %v", name, err)
	}
	pgid := cmd.Process.Pid
	go func() {
		r.waitEr = cmd.Wait()
		close(r.done)
	}()
	go func() {
		select {
		case <-ctx.Done():
			if ctx.Err() == context.DeadlineExceeded {
				_ = syscall.Kill(-pgid, syscall.SIGKILL)
			}
		case <-r.done:
		}
	}()
	t.Cleanup(func() {
		cancel()
		// The group: the client and what it started (its mcp peers, hooks),
		// and any descendant a client put in a group of its own.
		kids := descendants(pgid)
		_ = syscall.Kill(-pgid, syscall.SIGTERM)
		for _, k := range kids {
			_ = syscall.Kill(k, syscall.SIGTERM)
		}
		select {
		case <-r.done:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
			<-r.done
		}
		// Children that outlived the client.
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		for _, k := range kids {
			_ = syscall.Kill(k, syscall.SIGKILL) // ours: a PID reused since is unlikely within seconds
		}
		if t.Failed() {
			t.Logf("%s stdout:\n%s\n%s stderr:\n%s", name, clip(r.out.String(), 6000), name, clip(r.errb.String(), 6000))
		}
	})
	return r
}

// wait waits for the process to end and fails the test if it does not end
// within clientTimeout or ends with an error.
func (r *run) wait() {
	r.t.Helper()
	select {
	case <-r.done:
	case <-time.After(clientTimeout + 5*time.Second):
		r.t.Fatalf("%s did not end", r.name)
	}
	if r.waitEr != nil {
		r.t.Fatalf("%s: %v\nstdout:\n%s\nstderr:\n%s", r.name, r.waitEr, clip(r.out.String(), 4000), clip(r.errb.String(), 4000))
	}
}

// jsonLines decodes the JSON objects of a stream-json output, one a line.
func jsonLines(s string) []map[string]any {
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(s))
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) == nil {
			out = append(out, m)
		}
	}
	return out
}

// descendants returns the PIDs of every live process that descends from
// pid, read from /proc (Linux).
func descendants(pid int) []int {
	parent := map[int]int{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces, so read after the last ')'.
		f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
		if len(f) >= 2 {
			parent[p], _ = strconv.Atoi(f[1])
		}
	}
	var out []int
	for p := range parent {
		for q := parent[p]; q > 1; q = parent[q] {
			if q == pid {
				out = append(out, p)
				break
			}
		}
	}
	return out
}
