// Command pafbench is `make bench`: it runs the product's benchmarks of SPEC section 10 with
// their baselines (raw TCP, stock memberlist, an embedded NATS server) in one run and prints
// a table of every row with target, measured value, baseline, ratio and verdict; it can write
// the results as JSON, markdown and PNG charts, and compare two runs. See bench/README.md.
//
// Usage:
//
//	pafbench [--quick] [--only REGEX] [--json FILE] [--md FILE] [--charts DIR] [-v] [--compare OLD.json]
//	pafbench --compare OLD.json NEW.json      (compare two reports, run nothing)
//
// Exit status: 0 when the run completed, whatever the verdicts; 1 when the build or a
// benchmark process failed (its output is printed), 2 on bad usage.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/paf-mesh/paf-mesh/bench/internal/procs"
	"github.com/paf-mesh/paf-mesh/bench/internal/report"
	"github.com/paf-mesh/paf-mesh/bench/internal/runner"
	"github.com/paf-mesh/paf-mesh/bench/natsbase"
)

// off disables a default output path.
const off = "off"

func main() {
	if natsbase.IsChild() { // re-executed as the NATS baseline's publisher
		os.Exit(natsbase.ChildMain())
	}
	if name := os.Getenv(procs.StockChildEnv); name != "" { // a stock memberlist node, when cmd/pafstock could not be built
		os.Exit(procs.StockChild(name, os.Stdin, os.Stdout))
	}
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("pafbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		quick   = fs.Bool("quick", false, "quick mode: PAF_BENCH_QUICK=1 for the product's benchmarks, a tenth of the NATS samples")
		only    = fs.String("only", "", "run only the rows and curves whose key matches this regex (see README)")
		jsonOut = fs.String("json", "", `write the results as JSON here (default: <repo>/bench/results.json, results-quick.json with --quick, none with --only; "off": none)`)
		mdOut   = fs.String("md", "", `write the summary and curve tables as markdown here (default: <repo>/bench/results.md for a full run, none otherwise; "off": none)`)
		charts  = fs.String("charts", "", `write PNG charts into this directory (default: <repo>/bench/charts, charts-quick with --quick; "off": none)`)
		compare = fs.String("compare", "", "compare with this earlier JSON report (with a second argument NEW.json: compare the two, run nothing)")
		verbose = fs.Bool("v", false, "stream the benchmark processes' output to stderr")
		repo    = fs.String("repo", "", "the product's repo root (default: found from the working directory)")
		bin     = fs.String("bin", "", "run the multi-process scenarios with this prebuilt paf-peer instead of building ./cmd/paf-peer (A/B runs)")
	)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: pafbench [flags]\n       pafbench --compare OLD.json NEW.json\nflags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		if *compare == "" || fs.NArg() != 1 {
			fs.Usage()
			return 2
		}
		return compareFiles(*compare, fs.Arg(0), stdout, stderr)
	}

	root := *repo
	if root == "" {
		wd, err := os.Getwd()
		if err == nil {
			root, err = runner.FindRepo(wd)
		}
		if err != nil {
			fmt.Fprintln(stderr, "pafbench:", err)
			return 1
		}
	}
	full := !*quick && *only == ""
	suffix := ""
	if *quick {
		suffix = "-quick"
	}
	cfg := runner.Config{
		Repo: root, Bin: *bin, Quick: *quick, Only: *only, Compare: *compare, Verbose: *verbose,
		Stdout: stdout, Stderr: stderr,
		JSON:     outPath(*jsonOut, *only == "", filepath.Join(root, "bench", "results"+suffix+".json")),
		Markdown: outPath(*mdOut, full, filepath.Join(root, "bench", "results.md")),
		Charts:   outPath(*charts, true, filepath.Join(root, "bench", "charts"+suffix)),
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := runner.Run(ctx, cfg); err != nil {
		if !errors.Is(err, runner.ErrBenchmark) && !errors.Is(err, runner.ErrBuild) {
			fmt.Fprintln(stderr, "pafbench:", err)
		}
		return 1
	}
	return 0
}

// outPath resolves an output flag: "off" is none, "" is the default when there is one.
func outPath(flagValue string, useDefault bool, def string) string {
	switch {
	case flagValue == off:
		return ""
	case flagValue != "":
		return flagValue
	case useDefault:
		return def
	}
	return ""
}

func compareFiles(oldPath, newPath string, stdout, stderr io.Writer) int {
	old, err := report.ReadFile(oldPath)
	if err == nil {
		var cur *report.Report
		if cur, err = report.ReadFile(newPath); err == nil {
			report.WriteComparison(stdout, old, cur)
			return 0
		}
	}
	fmt.Fprintln(stderr, "pafbench:", err)
	return 1
}
