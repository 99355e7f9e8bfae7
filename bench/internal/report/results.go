package report

import (
	"regexp"
	"slices"
	"strings"

	"github.com/paf-mesh/paf-mesh/bench/internal/benchout"
)

// Package names used in Refs: the product's packages as built, and the runner's own NATS
// baseline.
const (
	PkgRelay = "relay"
	PkgMesh  = "mesh"
	PkgPeer  = "cmd/paf-peer"
	PkgNATS  = "nats"
	// PkgProcs holds the runner's own scenarios with the real binary in separate processes
	// (package procs): the question-and-answer round trip and its baselines, the mesh of
	// separate processes, idle cost, one-shot send, mcp start.
	PkgProcs = "procs"
)

// Ref names one benchmark of a package, sub-benchmarks included ("BenchmarkX/1KiB").
type Ref struct {
	Pkg  string `json:"pkg"`
	Name string `json:"name"`
}

func (r Ref) String() string { return r.Pkg + ":" + r.Name }

// Status of a benchmark in a run.
const (
	StatusOK      = "ok"
	StatusSkipped = "skipped"
	StatusFailed  = "failed"
)

// Bench is one benchmark's outcome in a run: its metrics, or why it has none.
type Bench struct {
	Ref
	Status     string            `json:"status"`
	Reason     string            `json:"reason,omitempty"` // of a skip or failure
	Iterations int               `json:"iterations,omitempty"`
	Metrics    []benchout.Metric `json:"metrics,omitempty"`
	// Rounds holds each run's metrics when the benchmark ran more than once, interleaved
	// with its baselines (RowSpec.Rounds); Metrics then holds, for each unit, the median
	// over the rounds.
	Rounds [][]benchout.Metric `json:"rounds,omitempty"`
}

// Results is everything a run measured, looked up by Ref.
type Results struct {
	list []Bench
}

// Add records benchmarks; a later entry for the same Ref replaces an earlier one.
func (rs *Results) Add(b ...Bench) {
	for _, x := range b {
		if i := slices.IndexFunc(rs.list, func(y Bench) bool { return y.Ref == x.Ref }); i >= 0 {
			rs.list[i] = x
			continue
		}
		rs.list = append(rs.list, x)
	}
}

// AddRound records another run of benchmarks already recorded: a successful one joins the
// earlier runs in Rounds and Metrics become the medians over all of them. A failed or skipped
// run, or a first one, is recorded as Add does (a failure replaces what was there).
func (rs *Results) AddRound(b ...Bench) {
	for _, x := range b {
		i := slices.IndexFunc(rs.list, func(y Bench) bool { return y.Ref == x.Ref })
		if i < 0 || x.Status != StatusOK || rs.list[i].Status != StatusOK {
			rs.Add(x)
			continue
		}
		cur := &rs.list[i]
		if len(cur.Rounds) == 0 {
			cur.Rounds = [][]benchout.Metric{cur.Metrics}
		}
		cur.Rounds = append(cur.Rounds, x.Metrics)
		cur.Metrics = medians(cur.Rounds)
	}
}

// medians returns, for each unit in the first round, in its order, the median of its values
// over the rounds that have it (the mean of the middle two for an even count).
func medians(rounds [][]benchout.Metric) []benchout.Metric {
	var out []benchout.Metric
	for _, m := range rounds[0] {
		var vs []float64
		for _, r := range rounds {
			for i := len(r) - 1; i >= 0; i-- {
				if r[i].Unit == m.Unit {
					vs = append(vs, r[i].Value)
					break
				}
			}
		}
		slices.Sort(vs)
		med := vs[len(vs)/2]
		if len(vs)%2 == 0 {
			med = (vs[len(vs)/2-1] + med) / 2
		}
		out = append(out, benchout.Metric{Value: med, Unit: m.Unit})
	}
	return out
}

// AddOutput records a benchmark process's parsed output for package pkg: every result, skip
// and failure.
func (rs *Results) AddOutput(pkg string, out benchout.Output) {
	rs.addOutput(pkg, out, rs.Add)
}

// AddOutputRound is AddOutput for another run of the same benchmarks (see AddRound).
func (rs *Results) AddOutputRound(pkg string, out benchout.Output) {
	rs.addOutput(pkg, out, rs.AddRound)
}

func (rs *Results) addOutput(pkg string, out benchout.Output, add func(...Bench)) {
	for _, r := range out.Results {
		add(Bench{Ref: Ref{pkg, r.Name}, Status: StatusOK, Iterations: r.Iterations, Metrics: r.Metrics})
	}
	for _, name := range sortedKeys(out.Skipped) {
		add(Bench{Ref: Ref{pkg, name}, Status: StatusSkipped, Reason: skipReason(out.Skipped[name])})
	}
	for _, name := range sortedKeys(out.Failed) {
		add(Bench{Ref: Ref{pkg, name}, Status: StatusFailed, Reason: out.Failed[name]})
	}
}

// rounds is how many runs ref's metrics are the medians of (1 for a single run, 0 if absent).
func (rs *Results) rounds(ref Ref) int {
	b, ok := rs.lookup(ref)
	switch {
	case !ok:
		return 0
	case len(b.Rounds) > 0:
		return len(b.Rounds)
	}
	return 1
}

// List returns every benchmark recorded, in the order they were added.
func (rs *Results) List() []Bench { return slices.Clone(rs.list) }

// lookup returns ref's own entry, or the skip or failure of a parent benchmark (a skipped
// BenchmarkX covers BenchmarkX/sub).
func (rs *Results) lookup(ref Ref) (Bench, bool) {
	var parent *Bench
	for i := range rs.list {
		b := &rs.list[i]
		if b.Pkg != ref.Pkg {
			continue
		}
		if b.Name == ref.Name {
			return *b, true
		}
		if b.Status != StatusOK && strings.HasPrefix(ref.Name, b.Name+"/") {
			parent = b
		}
	}
	if parent != nil {
		return *parent, true
	}
	return Bench{}, false
}

// metric returns ref's metric unit, or the status explaining its absence ("" when the
// benchmark left no trace at all).
func (rs *Results) metric(ref Ref, unit string) (v float64, ok bool, status, reason string) {
	b, found := rs.lookup(ref)
	if !found {
		return 0, false, "", ""
	}
	if b.Status != StatusOK {
		return 0, false, b.Status, b.Reason
	}
	for i := len(b.Metrics) - 1; i >= 0; i-- {
		if b.Metrics[i].Unit == unit {
			return b.Metrics[i].Value, true, StatusOK, ""
		}
	}
	return 0, false, StatusOK, ""
}

// logPrefix is the "file_test.go:123: " a test log line starts with.
var logPrefix = regexp.MustCompile(`^\S+\.go:\d+: `)

// skipReason makes a skip's log short enough for a table cell: its last line, without the
// file:line prefix.
func skipReason(log string) string {
	lines := strings.Split(strings.TrimSpace(log), "\n")
	return logPrefix.ReplaceAllString(strings.TrimSpace(lines[len(lines)-1]), "")
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
