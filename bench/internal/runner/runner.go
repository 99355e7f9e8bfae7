package runner

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"time"

	"github.com/paf-mesh/paf-mesh/bench/internal/chart"
	"github.com/paf-mesh/paf-mesh/bench/internal/report"
)

// Config is one run of the runner.
type Config struct {
	// Repo is the product's repo root (FindRepo).
	Repo string
	// Quick sets PAF_BENCH_QUICK=1 for the product's benchmarks and takes a tenth of the NATS
	// samples.
	Quick bool
	// Only, a regex, runs only the rows and curves whose key matches; "" runs all.
	Only string
	// JSON, Markdown and Charts are where to write the report; "" writes nothing of that kind.
	JSON, Markdown, Charts string
	// Compare, a JSON report of an earlier run, is compared with this run's.
	Compare string
	// Verbose streams the benchmark processes' output to Stderr.
	Verbose bool
	// Go is the go command. Default "go".
	Go string
	// Bin, when set, is a prebuilt paf-peer binary that the multi-process scenarios run
	// instead of building ./cmd/paf-peer of Repo: for A/B runs of two builds, alternated.
	Bin string
	// Exe is the executable re-executed as the NATS publisher (natsbase.Config.Exe).
	// Default: this process's executable.
	Exe string
	// Stdout receives the report, Stderr progress and the output of failures.
	// Defaults: os.Stdout, os.Stderr.
	Stdout, Stderr io.Writer
}

// run is the state of one Run.
type run struct {
	cfg     Config
	results report.Results
}

func (r *run) progress(format string, args ...any) {
	fmt.Fprintf(r.cfg.Stderr, "pafbench: "+format+"\n", args...)
}

// procs is the GOMAXPROCS the benchmarks run with: this process's (both are under the same
// CPU limits), passed explicitly with -test.cpu so that result names are parsed knowing it.
func (r *run) procs() int { return runtime.GOMAXPROCS(0) }

// benchTimeout bounds one benchmark process (go test's -timeout).
func (r *run) benchTimeout() time.Duration {
	if r.cfg.Quick {
		return 10 * time.Minute
	}
	return 20 * time.Minute
}

// Run runs the benchmarks and writes the report.
func Run(ctx context.Context, cfg Config) error {
	if cfg.Go == "" {
		cfg.Go = "go"
	}
	if cfg.Stdout == nil {
		cfg.Stdout = os.Stdout
	}
	if cfg.Stderr == nil {
		cfg.Stderr = os.Stderr
	}
	rows, curves, err := report.Select(cfg.Only)
	if err != nil {
		return err
	}
	r := &run{cfg: cfg}
	start := time.Now()
	rep := &report.Report{
		Format: report.FormatVersion, Date: start.UTC().Truncate(time.Second), Mode: "full", Only: cfg.Only,
		Commit: commit(ctx, cfg.Repo), Machine: machine(ctx, cfg.Go), LoadStart: loadAvg(),
	}
	if cfg.Quick {
		rep.Mode = "quick"
	}
	var old *report.Report
	if cfg.Compare != "" { // read it first: a bad file should not cost a whole run
		if old, err = report.ReadFile(cfg.Compare); err != nil {
			return err
		}
	}

	refs := report.Needs(rows, curves)
	procs := plan(refs)
	failed := false
	binDir, err := os.MkdirTemp("", "pafbench-")
	if err != nil {
		return fmt.Errorf("runner: %w", err)
	}
	defer os.RemoveAll(binDir)
	var pkgs []string
	for _, p := range procs {
		if !slices.Contains(pkgs, p.Pkg) {
			pkgs = append(pkgs, p.Pkg)
		}
	}
	if len(pkgs) > 0 {
		if err := r.build(ctx, binDir, pkgs); err != nil {
			return err
		}
	}
	natsDone := false
	var roundsErr error
	runNATS := func() {
		if !natsDone {
			natsDone = true
			ps, ok := r.runNATS(ctx, refs, false)
			rep.Processes = append(rep.Processes, ps...)
			failed = failed || !ok
			// The extra rounds right after the first, so that all of them fall in the
			// same few minutes.
			if !cfg.Quick {
				roundsErr = r.runRounds(ctx, binDir, rows, rep, &failed)
			}
		}
	}
	for _, p := range procs {
		if p.Pkg != report.PkgRelay {
			runNATS() // right after the relay's benchmarks
		}
		if roundsErr != nil {
			return roundsErr
		}
		out, rec := r.runProc(ctx, binDir, p)
		r.results.AddOutput(p.Pkg, out)
		rep.Processes = append(rep.Processes, rec)
		failed = failed || rec.Error != ""
		if ctx.Err() != nil {
			return fmt.Errorf("runner: %w", ctx.Err())
		}
	}
	runNATS()
	if roundsErr != nil {
		return roundsErr
	}
	ps, ok := r.runProcs(ctx, binDir, refs)
	rep.Processes = append(rep.Processes, ps...)
	failed = failed || !ok

	rep.LoadEnd = loadAvg()
	rep.Seconds = time.Since(start).Seconds()
	rep.Rows, rep.Curves = report.Build(rows, curves, &r.results)
	rep.Benchmarks = r.results.List()
	if err := r.write(rep, old); err != nil {
		return err
	}
	if failed {
		for _, p := range rep.Processes {
			if p.Error != "" {
				fmt.Fprintf(cfg.Stdout, "FAILED: %s %s: %s (its output is on stderr)\n", p.Pkg, p.Bench, p.Error)
			}
		}
		return ErrBenchmark
	}
	return nil
}

// runRounds measures again, in rounds, the benchmarks of the rows that ask for more than one
// (RowSpec.Rounds): each round runs the product's benchmarks, then the NATS baseline, so that
// a row's value and its baseline come from the same minutes however the machine drifts; the
// rows then read medians (Results.AddRound). The main run was the first round.
func (r *run) runRounds(ctx context.Context, binDir string, rows []report.RowSpec, rep *report.Report, failed *bool) error {
	rounds, refs := report.RoundRefs(rows)
	procs := plan(refs)
	for i := 2; i <= rounds; i++ {
		r.progress("round %d of %d for the rows at the edge", i, rounds)
		for _, p := range procs {
			out, rec := r.runProc(ctx, binDir, p)
			r.results.AddOutputRound(p.Pkg, out)
			rep.Processes = append(rep.Processes, rec)
			*failed = *failed || rec.Error != ""
			if ctx.Err() != nil {
				return fmt.Errorf("runner: %w", ctx.Err())
			}
		}
		ps, ok := r.runNATS(ctx, refs, true)
		rep.Processes = append(rep.Processes, ps...)
		*failed = *failed || !ok
	}
	return nil
}

// write prints the report and writes its files.
func (r *run) write(rep *report.Report, old *report.Report) error {
	w := r.cfg.Stdout
	rep.WriteText(w)
	fmt.Fprintln(w)
	chartPaths := map[string]string{}
	if r.cfg.Charts != "" {
		for _, c := range rep.Curves {
			if c.Chart == "" {
				continue
			}
			p, err := chart.Write(r.cfg.Charts, c)
			switch {
			case errors.Is(err, chart.ErrNoData):
				fmt.Fprintf(w, "chart %s: not written, no data\n", c.Chart)
			case err != nil:
				return err
			default:
				fmt.Fprintf(w, "chart: %s\n", p)
				if rel, err := filepath.Rel(r.cfg.Repo, p); err == nil {
					chartPaths[c.Key] = filepath.ToSlash(rel)
				}
			}
		}
	}
	var errs []error
	if r.cfg.JSON != "" {
		if err := rep.WriteFile(r.cfg.JSON); err != nil {
			errs = append(errs, err)
		} else {
			fmt.Fprintf(w, "json: %s\n", r.cfg.JSON)
		}
	}
	if r.cfg.Markdown != "" {
		f, err := os.Create(r.cfg.Markdown)
		if err == nil {
			rep.WriteMarkdown(f, chartPaths)
			err = f.Close()
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("runner: markdown: %w", err))
		} else {
			fmt.Fprintf(w, "markdown: %s\n", r.cfg.Markdown)
		}
	}
	if old != nil {
		fmt.Fprintln(w)
		report.WriteComparison(w, old, rep)
	}
	return errors.Join(errs...)
}
