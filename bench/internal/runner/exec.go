package runner

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/paf-mesh/paf-mesh/bench/internal/benchout"
	"github.com/paf-mesh/paf-mesh/bench/internal/report"
)

// QuickEnv is set to 1 for the product's benchmark processes in quick mode.
const QuickEnv = "PAF_BENCH_QUICK"

// Sentinel errors of a run that did not complete.
var (
	ErrBuild     = errors.New("runner: build failed")
	ErrBenchmark = errors.New("runner: a benchmark process failed")
)

// binaryName is the file `go test -c -o DIR/` writes for pkg.
func binaryName(pkg string) string { return path.Base(pkg) + ".test" }

// build compiles the test binaries of pkgs (plain, never -race) into dir, in one go command
// so that go builds them in parallel.
func (r *run) build(ctx context.Context, dir string, pkgs []string) error {
	args := []string{"test", "-c", "-o", dir + string(filepath.Separator)}
	for _, p := range pkgs {
		args = append(args, "./"+p)
	}
	cmd := exec.CommandContext(ctx, r.cfg.Go, args...)
	cmd.Dir = r.cfg.Repo
	start := time.Now()
	out, err := cmd.CombinedOutput()
	if err != nil {
		fmt.Fprintf(r.cfg.Stderr, "pafbench: %s %s failed:\n%s\n", r.cfg.Go, strings.Join(args, " "), out)
		return fmt.Errorf("%w: %s %s: %w", ErrBuild, r.cfg.Go, strings.Join(args, " "), err)
	}
	r.progress("built %s in %s", strings.Join(pkgs, ", "), time.Since(start).Round(100*time.Millisecond))
	return nil
}

// lockedBuffer is a buffer two exec copy goroutines (stdout, stderr) may write at once.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// runProc runs one benchmark process and parses its stdout. A process that exits non-zero
// is reported with its whole output; what it printed before failing is still parsed.
func (r *run) runProc(ctx context.Context, binDir string, p proc) (benchout.Output, report.Process) {
	procs := r.procs()
	args := []string{
		"-test.run=^$", "-test.bench=" + p.Regex, "-test.benchtime=1x", "-test.count=1",
		"-test.cpu=" + strconv.Itoa(procs), "-test.timeout=" + r.benchTimeout().String(),
		"-test.v", // or a skipped benchmark prints nothing at all
	}
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, binaryName(p.Pkg)), args...)
	cmd.Dir = filepath.Join(r.cfg.Repo, filepath.FromSlash(p.Pkg)) // as go test runs it
	cmd.Env = childEnv(os.Environ(), r.cfg.Quick)
	cmd.WaitDelay = 10 * time.Second
	var stdout bytes.Buffer
	combined := &lockedBuffer{}
	outW, errW := io.Writer(io.MultiWriter(&stdout, combined)), io.Writer(combined)
	if r.cfg.Verbose {
		outW, errW = io.MultiWriter(outW, r.cfg.Stderr), io.MultiWriter(errW, r.cfg.Stderr)
	}
	cmd.Stdout, cmd.Stderr = outW, errW
	r.progress("running %s: %s", p.Pkg, p.Regex)
	start := time.Now()
	err := cmd.Run()
	rec := report.Process{Pkg: p.Pkg, Bench: p.Regex, Seconds: time.Since(start).Seconds()}
	out := benchout.Parse(&stdout, benchout.Options{Procs: procs})
	if err != nil {
		rec.ExitCode = -1
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			rec.ExitCode = ee.ExitCode()
		}
		rec.Error = err.Error()
		fmt.Fprintf(r.cfg.Stderr, "pafbench: %s -test.bench %q failed (%v); its output:\n%s\n", p.Pkg, p.Regex, err, combined.String())
	}
	r.progress("  %s done in %s: %d results, %d skipped, %d failed",
		p.Pkg, time.Since(start).Round(100*time.Millisecond), len(out.Results), len(out.Skipped), len(out.Failed))
	return out, rec
}

// childEnv is the environment of a benchmark process: this one's, with QuickEnv set to 1 in
// quick mode and removed otherwise.
func childEnv(env []string, quick bool) []string {
	out := make([]string, 0, len(env)+1)
	for _, e := range env {
		if !strings.HasPrefix(e, QuickEnv+"=") {
			out = append(out, e)
		}
	}
	if quick {
		out = append(out, QuickEnv+"=1")
	}
	return out
}
