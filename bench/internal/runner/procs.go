package runner

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/paf-mesh/paf-mesh/bench/internal/benchout"
	"github.com/paf-mesh/paf-mesh/bench/internal/procs"
	"github.com/paf-mesh/paf-mesh/bench/internal/report"
)

// runProcs runs the scenarios with the real binary in separate processes (package procs)
// that refs name, after building paf-peer (plain, never -race) into binDir (or with
// Config.Bin, a prebuilt one). Each scenario is
// recorded as a benchmark of the package "procs". It returns the processes (one per
// scenario) and whether all succeeded.
func (r *run) runProcs(ctx context.Context, binDir string, refs []report.Ref) ([]report.Process, bool) {
	var names []string
	for _, ref := range refs {
		if ref.Pkg == report.PkgProcs && !slices.Contains(names, ref.Name) {
			names = append(names, ref.Name)
		}
	}
	if len(names) == 0 {
		return nil, true
	}
	bin := r.cfg.Bin
	if bin == "" {
		bin = filepath.Join(binDir, "paf-peer")
		cmd := exec.CommandContext(ctx, r.cfg.Go, "build", "-o", bin, "./cmd/paf-peer")
		cmd.Dir = r.cfg.Repo
		if out, err := cmd.CombinedOutput(); err != nil {
			msg := fmt.Sprintf("go build ./cmd/paf-peer: %v: %s", err, strings.TrimSpace(string(out)))
			fmt.Fprintf(r.cfg.Stderr, "pafbench: %s\n", msg)
			for _, n := range names {
				r.results.Add(report.Bench{Ref: report.Ref{Pkg: report.PkgProcs, Name: n}, Status: report.StatusFailed, Reason: msg})
			}
			return []report.Process{{Pkg: report.PkgProcs, Bench: "build", ExitCode: -1, Error: msg}}, false
		}
	} else {
		r.progress("multi-process scenarios run the prebuilt %s (--bin)", bin)
	}
	exe := r.cfg.Exe
	if exe == "" {
		exe, _ = os.Executable()
	}
	// The stock memberlist nodes run as a program of their own, which links nothing else.
	stock := filepath.Join(binDir, "pafstock")
	build := exec.CommandContext(ctx, r.cfg.Go, "build", "-o", stock, "./cmd/pafstock")
	build.Dir = filepath.Join(r.cfg.Repo, "bench")
	if out, err := build.CombinedOutput(); err != nil {
		r.progress("go build ./cmd/pafstock: %v: %s; the stock nodes run as this program instead", err, strings.TrimSpace(string(out)))
		stock = ""
	}
	r.progress("running the multi-process scenarios: %s", strings.Join(names, ", "))
	start := time.Now()
	cfg := procs.Config{Bin: bin, Exe: exe, Stock: stock, Quick: r.cfg.Quick, Log: r.progress}
	var ps []report.Process
	ok := true
	for _, res := range procs.Run(ctx, cfg, names) {
		ref := report.Ref{Pkg: report.PkgProcs, Name: res.Name}
		p := report.Process{Pkg: report.PkgProcs, Bench: res.Name, Seconds: res.Seconds}
		switch {
		case res.Err != nil:
			ok = false
			p.ExitCode, p.Error = -1, res.Err.Error()
			r.results.Add(report.Bench{Ref: ref, Status: report.StatusFailed, Reason: res.Err.Error()})
		case res.Skip != "":
			r.results.Add(report.Bench{Ref: ref, Status: report.StatusSkipped, Reason: res.Skip})
		default:
			ms := make([]benchout.Metric, len(res.Metrics))
			for i, m := range res.Metrics {
				ms[i] = benchout.Metric{Value: m.Value, Unit: m.Unit}
			}
			r.results.Add(report.Bench{Ref: ref, Status: report.StatusOK, Iterations: 1, Metrics: ms})
		}
		ps = append(ps, p)
	}
	r.progress("  multi-process scenarios done in %s", time.Since(start).Round(time.Second))
	return ps, ok
}
