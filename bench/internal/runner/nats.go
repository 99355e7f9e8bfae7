package runner

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/paf-mesh/paf-mesh/bench/internal/benchout"
	"github.com/paf-mesh/paf-mesh/bench/internal/report"
	"github.com/paf-mesh/paf-mesh/bench/natsbase"
)

// runNATS runs the NATS baseline cases that refs name, JetStream's included, each recorded as
// a benchmark of the package "nats" (as another round of it, with round). It returns the
// processes (one per case) and whether all succeeded.
func (r *run) runNATS(ctx context.Context, refs []report.Ref, round bool) ([]report.Process, bool) {
	add := r.results.Add
	if round {
		add = r.results.AddRound
	}
	var names []string
	for _, ref := range refs {
		if ref.Pkg == report.PkgNATS {
			names = append(names, ref.Name)
		}
	}
	lat, tput := natsbase.Cases(r.cfg.Quick)
	lat = slices.DeleteFunc(lat, func(c natsbase.LatencyCase) bool { return !slices.Contains(names, c.Name()) })
	tput = slices.DeleteFunc(tput, func(c natsbase.ThroughputCase) bool { return !slices.Contains(names, c.Name()) })
	js := slices.DeleteFunc(natsbase.JetStreamCases(r.cfg.Quick), func(c natsbase.JetStreamCase) bool { return !slices.Contains(names, c.Name()) })
	cases := len(lat) + len(tput) + len(js)
	if cases == 0 {
		return nil, true
	}
	cfg := natsbase.Config{Exe: r.cfg.Exe}
	if r.cfg.Verbose {
		cfg.Stderr = r.cfg.Stderr
	}
	r.progress("running the NATS baseline, cases: %d", cases)
	srv, err := natsbase.Start(cfg)
	if err != nil {
		fmt.Fprintf(r.cfg.Stderr, "pafbench: NATS baseline: %v\n", err)
		return []report.Process{{Pkg: report.PkgNATS, Bench: "server", ExitCode: -1, Error: err.Error()}}, false
	}
	defer srv.Close()
	var procs []report.Process
	ok := true
	record := func(name string, start time.Time, err error, metrics ...benchout.Metric) {
		p := report.Process{Pkg: report.PkgNATS, Bench: name, Seconds: time.Since(start).Seconds()}
		if err != nil {
			ok = false
			p.ExitCode, p.Error = -1, err.Error()
			fmt.Fprintf(r.cfg.Stderr, "pafbench: NATS baseline %s failed: %v\n", name, err)
			add(report.Bench{Ref: report.Ref{Pkg: report.PkgNATS, Name: name}, Status: report.StatusFailed, Reason: err.Error()})
		} else {
			add(report.Bench{Ref: report.Ref{Pkg: report.PkgNATS, Name: name}, Status: report.StatusOK, Iterations: 1, Metrics: metrics})
		}
		procs = append(procs, p)
	}
	for _, c := range lat {
		start := time.Now()
		res, err := srv.Latency(ctx, c)
		record(c.Name(), start, err,
			benchout.Metric{Value: us(res.P50), Unit: report.NATSOneWayP50Unit},
			benchout.Metric{Value: us(res.P99), Unit: report.NATSOneWayP99Unit},
			benchout.Metric{Value: us(res.Mean), Unit: "mean-oneway-us"},
			benchout.Metric{Value: float64(res.Samples), Unit: "samples"})
	}
	for _, c := range tput {
		start := time.Now()
		res, err := srv.Throughput(ctx, c)
		record(c.Name(), start, err,
			benchout.Metric{Value: res.MsgsPerSec, Unit: report.NATSMsgsUnit},
			benchout.Metric{Value: float64(res.Msgs), Unit: "msgs"})
	}
	// The durable baseline last: each case starts a JetStream server of its own.
	for _, c := range js {
		start := time.Now()
		res, err := srv.JetStream(ctx, c)
		record(c.Name(), start, err,
			benchout.Metric{Value: res.MsgsPerSec, Unit: report.NATSMsgsUnit},
			benchout.Metric{Value: float64(res.Msgs), Unit: "msgs"},
			benchout.Metric{Value: float64(res.Stored), Unit: "stored-msgs"})
	}
	r.progress("  NATS baseline done")
	return procs, ok
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
