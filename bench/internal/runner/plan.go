package runner

import (
	"regexp"
	"slices"
	"strings"

	"github.com/paf-mesh/paf-mesh/bench/internal/report"
)

// pkgOrder is the order packages run in; the NATS baseline runs right after the relay, whose
// figures it is compared with.
var pkgOrder = []string{report.PkgRelay, report.PkgNATS, report.PkgPeer, report.PkgMesh}

// proc is one benchmark process: a package's test binary run with one -test.bench regex.
type proc struct {
	Pkg   string
	Regex string
}

// plan groups the product benchmarks refs names into processes. go test matches -test.bench
// level by level (split at "/"), so one regex cannot select A/x and B/y without also
// selecting A/y and B/x: benchmarks are grouped by the sub-benchmark names they want, one
// process per group, so that nothing but the wanted sub-benchmarks runs.
func plan(refs []report.Ref) []proc {
	type top struct {
		pkg, name string
		levels    [][]string // wanted names per sub-benchmark level
		all       bool       // the benchmark itself is wanted: every sub-benchmark
	}
	var tops []*top
	find := func(pkg, name string) *top {
		for _, t := range tops {
			if t.pkg == pkg && t.name == name {
				return t
			}
		}
		t := &top{pkg: pkg, name: name}
		tops = append(tops, t)
		return t
	}
	for _, r := range refs {
		if r.Pkg == report.PkgNATS || r.Pkg == report.PkgProcs {
			continue
		}
		parts := strings.Split(r.Name, "/")
		t := find(r.Pkg, parts[0])
		if len(parts) == 1 {
			t.all = true
			continue
		}
		for i, p := range parts[1:] {
			if len(t.levels) <= i {
				t.levels = append(t.levels, nil)
			}
			if !slices.Contains(t.levels[i], p) {
				t.levels[i] = append(t.levels[i], p)
			}
		}
	}
	var procs []proc
	for _, pkg := range orderedPkgs(refs) {
		var sigs []string
		groups := map[string][]string{}
		for _, t := range tops {
			if t.pkg != pkg {
				continue
			}
			sig := ""
			if !t.all {
				sig = levelsRegex(t.levels)
			}
			if _, ok := groups[sig]; !ok {
				sigs = append(sigs, sig)
			}
			groups[sig] = append(groups[sig], t.name)
		}
		for _, sig := range sigs {
			re := alternation(groups[sig])
			if sig != "" {
				re += "/" + sig
			}
			procs = append(procs, proc{Pkg: pkg, Regex: re})
		}
	}
	return procs
}

// orderedPkgs returns the packages refs use, in pkgOrder, then any other in first-use order.
func orderedPkgs(refs []report.Ref) []string {
	var pkgs []string
	for _, p := range pkgOrder {
		if slices.ContainsFunc(refs, func(r report.Ref) bool { return r.Pkg == p }) {
			pkgs = append(pkgs, p)
		}
	}
	for _, r := range refs {
		if r.Pkg != report.PkgProcs && !slices.Contains(pkgs, r.Pkg) {
			pkgs = append(pkgs, r.Pkg)
		}
	}
	return pkgs
}

func levelsRegex(levels [][]string) string {
	parts := make([]string, len(levels))
	for i, names := range levels {
		parts[i] = alternation(names)
	}
	return strings.Join(parts, "/")
}

// alternation is an anchored regex matching exactly the names.
func alternation(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = regexp.QuoteMeta(n)
	}
	return "^(" + strings.Join(q, "|") + ")$"
}
