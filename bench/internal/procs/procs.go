package procs

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

//go:embed hub.py
var hubPy []byte

// Config is what the scenarios need.
type Config struct {
	// Bin is the paf-peer binary to measure (built without -race).
	Bin string
	// Stock is the program run, with StockChildEnv set, as each stock memberlist node
	// (cmd/pafstock); "" re-executes Exe instead.
	Stock string
	// Exe is re-executed with StockChildEnv set as each stock memberlist node when Stock is "".
	Exe string
	// Python is the python3 to run the hub baseline with ("" : looked up on PATH).
	Python string
	// Strace is the strace to count fsyncs with ("" : looked up on PATH; missing: the
	// fsync row says "not measured").
	Strace string
	// Quick takes fewer samples and shorter windows.
	Quick bool
	// Log receives progress lines; nil discards them.
	Log func(format string, args ...any)
}

// Metric is one figure of a scenario, in the unit its name ends with.
type Metric struct {
	Value float64
	Unit  string
}

// Result is what one named scenario measured: metrics, or a reason it was skipped, or an
// error.
type Result struct {
	Name    string
	Metrics []Metric
	Skip    string
	Err     error
	Seconds float64
}

// Scenario names: the benchmark names the runner records them under.
const (
	QA            = "QuestionAnswer/1KiB"
	Hub           = "PythonHub/1KiB"
	Fsync         = "DiskWriteFdatasync/1KiB"
	FsyncCount    = "QuestionAnswerFsyncs/1KiB"
	AllSee20      = "AllSeeAll/peers-20"
	AllSee50      = "AllSeeAll/peers-50"
	StockAllSee20 = "StockAllSeeAll/peers-20"
	StockAllSee50 = "StockAllSeeAll/peers-50"
	Idle20        = "Idle/peers-20"
	IdlePython    = "IdlePython"
	IdleStock20   = "IdleStock/stock-20"
	OneShot       = "OneShotSend"
	MCPStart      = "MCPStart"
	CrashReclaim  = "CrashReclaim"
)

// All lists every scenario name, in the order Run runs them.
var All = []string{QA, Hub, Fsync, FsyncCount, AllSee20, StockAllSee20, Idle20, IdlePython, IdleStock20, AllSee50, StockAllSee50, OneShot, MCPStart, CrashReclaim}

// Run runs the scenarios that produce any of names and returns their results (one per name
// asked for, in All's order).
func Run(ctx context.Context, cfg Config, names []string) []Result {
	if cfg.Log == nil {
		cfg.Log = func(string, ...any) {}
	}
	want := func(ns ...string) bool {
		return slices.ContainsFunc(ns, func(n string) bool { return slices.Contains(names, n) })
	}
	var out []Result
	add := func(rs ...Result) {
		for _, r := range rs {
			if slices.Contains(names, r.Name) {
				out = append(out, r)
			}
		}
	}
	type step struct {
		names []string
		run   func(context.Context, Config) []Result
	}
	steps := []step{
		{[]string{QA, Hub, Fsync}, runQA},
		{[]string{FsyncCount}, runFsyncCount},
		{[]string{AllSee20, StockAllSee20, Idle20, IdlePython, IdleStock20}, func(ctx context.Context, c Config) []Result { return runMesh(ctx, c, 20, true) }},
		{[]string{AllSee50, StockAllSee50}, func(ctx context.Context, c Config) []Result { return runMesh(ctx, c, 50, false) }},
		{[]string{OneShot}, runOneShot},
		{[]string{MCPStart}, runMCPStart},
		{[]string{CrashReclaim}, runCrashReclaim},
	}
	for _, s := range steps {
		if !want(s.names...) || ctx.Err() != nil {
			continue
		}
		cfg.Log("processes: %s", strings.Join(s.names, ", "))
		start := time.Now()
		rs := s.run(ctx, cfg)
		for i := range rs {
			rs[i].Seconds = time.Since(start).Seconds()
			if rs[i].Err != nil {
				cfg.Log("  %s failed: %v", rs[i].Name, rs[i].Err)
			}
		}
		add(rs...)
	}
	return out
}

// failAll returns a failed result for each name.
func failAll(err error, names ...string) []Result {
	rs := make([]Result, len(names))
	for i, n := range names {
		rs[i] = Result{Name: n, Err: err}
	}
	return rs
}

// world is a temporary HOME with a run dir and state dirs, removed by close.
type world struct {
	root, run string
}

func newWorld() (*world, error) {
	// Short: a control socket's path must fit in 107 bytes.
	root, err := os.MkdirTemp("", "pafp")
	if err != nil {
		return nil, err
	}
	return &world{root: root, run: filepath.Join(root, "run")}, nil
}

func (w *world) close() { os.RemoveAll(w.root) }

// env is the whole environment of a peer named who: nothing leaks in from the runner's (no
// PAF_SECRET, no XDG_*): open mode, the default on a machine with no secret.
func (w *world) env(who string) []string {
	return []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + w.root,
		"XDG_CONFIG_HOME=" + filepath.Join(w.root, "config"),
		"XDG_STATE_HOME=" + filepath.Join(w.root, "xstate"),
		"PAF_RUN_DIR=" + w.run,
		"PAF_STATE_DIR=" + filepath.Join(w.root, "state-"+who),
	}
}

// startPeers starts `paf-peer mcp --name NAME` for each name and initializes each; direct:
// each peer's callers read its stdout themselves (mcpPeer.direct).
func startPeers(ctx context.Context, cfg Config, w *world, direct bool, names ...string) ([]*mcpPeer, error) {
	var peers []*mcpPeer
	for _, n := range names {
		p, err := startMCPMode(direct, cfg.Bin, w.env(n), n, "--name", n)
		if err != nil {
			closeAll(peers)
			return nil, err
		}
		peers = append(peers, p)
	}
	for _, p := range peers {
		if err := p.initialize(ctx); err != nil {
			closeAll(peers)
			return nil, err
		}
	}
	return peers, nil
}

func closeAll(peers []*mcpPeer) {
	for _, p := range peers {
		p.in.Close() // all at once: they leave together
	}
	for _, p := range peers {
		p.close()
	}
}

// waitSee polls p's paf_list_sessions until it lists every name of want but its own.
func waitSee(ctx context.Context, p *mcpPeer, want []string) error {
	for {
		got, err := p.sessions(ctx)
		if err != nil {
			return err
		}
		all := true
		for _, n := range want {
			if n != p.name && !slices.Contains(got, n) {
				all = false
				break
			}
		}
		if all {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s did not see all of %d peers: %w (it sees %d)", p.name, len(want), ctx.Err(), len(got))
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// timeCmd times exec to exit of one command.
func timeCmd(ctx context.Context, env []string, name string, args ...string) (time.Duration, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = env
	start := time.Now()
	out, err := cmd.CombinedOutput()
	d := time.Since(start)
	if err != nil {
		return 0, fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return d, nil
}

// pct is the p-th percentile (0-100) of ds, which it sorts.
func pct(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	slices.Sort(ds)
	i := int(float64(len(ds)-1)*p/100 + 0.5)
	return ds[i]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// count picks full or quick.
func count(c Config, full, quick int) int {
	if c.Quick {
		return quick
	}
	return full
}

// lookPath returns explicit, or name found on PATH, or "".
func lookPath(explicit, name string) string {
	if explicit != "" {
		return explicit
	}
	p, err := exec.LookPath(name)
	if err != nil {
		return ""
	}
	return p
}

var errNoPython = errors.New("python3 not found on PATH")
