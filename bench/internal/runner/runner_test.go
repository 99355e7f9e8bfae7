package runner

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/paf-mesh/paf-mesh/bench/internal/report"
	"github.com/paf-mesh/paf-mesh/bench/natsbase"
)

func TestMain(m *testing.M) {
	if natsbase.IsChild() { // the NATS baseline re-executes this test binary as its publisher
		os.Exit(natsbase.ChildMain())
	}
	goleak.VerifyTestMain(m)
}

func TestPlan(t *testing.T) {
	r := func(pkg, name string) report.Ref { return report.Ref{Pkg: pkg, Name: name} }
	tests := map[string]struct {
		refs []report.Ref
		want []proc
	}{
		"same sub-benchmarks share a process": {
			refs: []report.Ref{
				r("mesh", "BenchmarkConvergence/peers-10"), r("mesh", "BenchmarkConvergence/peers-100"),
				r("mesh", "BenchmarkStockConvergence/peers-10"), r("mesh", "BenchmarkStockConvergence/peers-100"),
				r("mesh", "BenchmarkFailureDetection/peers-100"),
			},
			want: []proc{
				{"mesh", "^(BenchmarkConvergence|BenchmarkStockConvergence)$/^(peers-10|peers-100)$"},
				{"mesh", "^(BenchmarkFailureDetection)$/^(peers-100)$"},
			},
		},
		"nested levels, no sub-benchmarks, package order, NATS left out": {
			refs: []report.Ref{
				r("mesh", "BenchmarkConvergence/peers-100"),
				r("cmd/paf-peer", "BenchmarkMCPIdle"), r("cmd/paf-peer", "BenchmarkLANDiscovery"),
				r("nats", "OneWay/1KiB/publishers-1"),
				r("relay", "BenchmarkXProcRelayConcurrent/1KiB/senders-1"), r("relay", "BenchmarkXProcRelayConcurrent/1KiB/senders-64"),
				r("relay", "BenchmarkXProcTransportThroughput/1KiB-goroutines-64"),
			},
			want: []proc{
				{"relay", "^(BenchmarkXProcRelayConcurrent)$/^(1KiB)$/^(senders-1|senders-64)$"},
				{"relay", "^(BenchmarkXProcTransportThroughput)$/^(1KiB-goroutines-64)$"},
				{"cmd/paf-peer", "^(BenchmarkMCPIdle|BenchmarkLANDiscovery)$"},
				{"mesh", "^(BenchmarkConvergence)$/^(peers-100)$"},
			},
		},
		"relay latency and its vs-NATS lines: back to back and paced sends, paced raw TCP": {
			refs: []report.Ref{
				r("relay", "BenchmarkXProcRelaySend/1KiB"), r("relay", "BenchmarkXProcRawTCP/1KiB-paced-500us"),
				r("relay", "BenchmarkXProcRelaySend/1KiB-paced-500us"), r("nats", report.NATSOneWay1K),
				r("relay", "BenchmarkXProcRelaySend/64KiB-paced-500us"), r("nats", report.NATSOneWay64K),
			},
			want: []proc{
				{"relay", "^(BenchmarkXProcRelaySend)$/^(1KiB|1KiB-paced-500us|64KiB-paced-500us)$"},
				{"relay", "^(BenchmarkXProcRawTCP)$/^(1KiB-paced-500us)$"},
			},
		},
		"a whole benchmark wanted: all its subs": {
			refs: []report.Ref{r("relay", "BenchmarkHandover/msgs-1"), r("relay", "BenchmarkHandover")},
			want: []proc{{"relay", "^(BenchmarkHandover)$"}},
		},
		"names are quoted": {
			refs: []report.Ref{r("x", "BenchmarkA/a+b.c")},
			want: []proc{{"x", `^(BenchmarkA)$/^(a\+b\.c)$`}},
		},
		"only NATS": {refs: []report.Ref{r("nats", "OneWay/1KiB/publishers-1")}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := plan(tc.refs); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("plan:\n got %q\nwant %q", got, tc.want)
			}
		})
	}
}

// TestPlanCoversContract: every product benchmark of the contract is in exactly one process.
func TestPlanCoversContract(t *testing.T) {
	rows, curves, err := report.Select("")
	if err != nil {
		t.Fatal(err)
	}
	procs := plan(report.Needs(rows, curves))
	if len(procs) > 12 {
		t.Errorf("%d processes: %q", len(procs), procs)
	}
	seen := map[string]string{}
	for _, p := range procs {
		top := strings.TrimPrefix(strings.SplitN(p.Regex, ")$", 2)[0], "^(")
		for _, name := range strings.Split(top, "|") {
			if prev, dup := seen[p.Pkg+":"+name]; dup {
				t.Errorf("%s in two processes: %q and %q", name, prev, p.Regex)
			}
			seen[p.Pkg+":"+name] = p.Regex
		}
	}
	if got := procs[0].Pkg; got != report.PkgRelay {
		t.Errorf("first package %q, want relay", got)
	}
}

// TestNATSNames: the rows read the NATS cases under the names natsbase gives them.
func TestNATSNames(t *testing.T) {
	lat, tput := natsbase.Cases(false)
	var names []string
	for _, c := range lat {
		names = append(names, c.Name())
	}
	for _, c := range tput {
		names = append(names, c.Name())
	}
	for _, c := range natsbase.JetStreamCases(false) {
		names = append(names, c.Name())
	}
	rows, curves, _ := report.Select("")
	for _, ref := range report.Needs(rows, curves) {
		if ref.Pkg == report.PkgNATS && !slices.Contains(names, ref.Name) {
			t.Errorf("a row reads NATS case %q; natsbase has %q", ref.Name, names)
		}
	}
}

func TestChildEnv(t *testing.T) {
	env := []string{"A=1", QuickEnv + "=1", "B=2"}
	if got := childEnv(env, false); !reflect.DeepEqual(got, []string{"A=1", "B=2"}) {
		t.Errorf("full: %q", got)
	}
	if got := childEnv(env, true); !reflect.DeepEqual(got, []string{"A=1", "B=2", QuickEnv + "=1"}) {
		t.Errorf("quick: %q", got)
	}
}

func TestMachineParsing(t *testing.T) {
	if got := parseLoadAvg("1.07 0.50 0.25 2/345 6789\n"); got != [3]float64{1.07, 0.5, 0.25} {
		t.Errorf("parseLoadAvg = %v", got)
	}
	if got := parseLoadAvg(""); got != [3]float64{} {
		t.Errorf("parseLoadAvg(\"\") = %v", got)
	}
	info := "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) Processor\n\nprocessor\t: 1\nmodel name\t: other\n"
	if got := cpuModel([]byte(info)); got != "Intel(R) Xeon(R) Processor" {
		t.Errorf("cpuModel = %q", got)
	}
	if got := cpuModel([]byte("processor : 0\n")); got != "unknown" {
		t.Errorf("cpuModel without a model = %q", got)
	}
	m := machine(context.Background(), "go")
	if m.NProc < 1 || m.GOMAXPROCS < 1 || !strings.HasPrefix(m.GoVersion, "go") {
		t.Errorf("machine() = %+v", m)
	}
}

func TestFindRepo(t *testing.T) {
	root := t.TempDir()
	writeFiles(t, root, map[string]string{
		"go.mod":           "module github.com/paf-mesh/paf-mesh\n\ngo 1.26\n",
		"bench/go.mod":     "module github.com/paf-mesh/paf-mesh/bench\n\ngo 1.26\n",
		"bench/cmd/x/x.go": "package main\n",
	})
	got, err := FindRepo(filepath.Join(root, "bench", "cmd", "x"))
	if err != nil || got != root {
		t.Fatalf("FindRepo = %q, %v; want %q", got, err, root)
	}
	other := t.TempDir()
	writeFiles(t, other, map[string]string{"go.mod": "module example.com/other\n"})
	if _, err := FindRepo(other); !errors.Is(err, ErrNoRepo) {
		t.Fatalf("FindRepo outside the product: %v", err)
	}
	if c := commit(context.Background(), other); c != "unknown" {
		t.Errorf("commit outside git = %q", c)
	}
}

func writeFiles(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for name, body := range files {
		p := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// fakeProduct is a stand-in for the product: a module of that name whose packages hold
// benchmarks that report the contract's metrics at once.
var fakeProduct = map[string]string{
	"go.mod":         "module github.com/paf-mesh/paf-mesh\n\ngo 1.26\n",
	"relay/relay.go": "package relay\n",
	"relay/relay_test.go": `package relay

import (
	"os"
	"testing"
)

func BenchmarkXProcRawTCP(b *testing.B) {
	for _, s := range []string{"1KiB", "64KiB", "1KiB-paced-500us"} {
		b.Run(s, func(b *testing.B) {
			if s == "64KiB" {
				b.Fatal("not selected: must not run")
			}
			p50 := 100.0
			if os.Getenv("PAF_BENCH_QUICK") == "1" {
				p50 = 10
			}
			b.ReportMetric(p50, "p50-oneway-us")
			b.ReportMetric(20, "p99-oneway-us")
		})
	}
}

func BenchmarkXProcRelaySend(b *testing.B) {
	for _, s := range []string{"1KiB", "64KiB", "1KiB-paced-500us", "64KiB-paced-500us"} {
		b.Run(s, func(b *testing.B) {
			switch s {
			case "64KiB", "64KiB-paced-500us":
				b.Fatal("not selected: must not run")
			case "1KiB-paced-500us":
				b.ReportMetric(35, "p50-deliver-us")
				b.ReportMetric(70, "p99-deliver-us")
				b.ReportMetric(25, "p50-durable-us")
				b.ReportMetric(55, "p99-durable-us")
				return
			}
			b.ReportMetric(25, "p50-deliver-us")
			b.ReportMetric(55, "p99-deliver-us")
		})
	}
}
`,
	"relay/tput_test.go": `package relay

import (
	"os"
	"strconv"
	"testing"
)

// BenchmarkXProcRelayThroughput reports 40k, 60k, 55k msg/s in its first three runs (counted
// in a file beside it): only the median of three makes the row met.
func BenchmarkXProcRelayThroughput(b *testing.B) {
	b.Run("1KiB", func(b *testing.B) {
		n, _ := os.ReadFile("runs.txt")
		run, _ := strconv.Atoi(string(n))
		if err := os.WriteFile("runs.txt", []byte(strconv.Itoa(run+1)), 0o644); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric([]float64{40000, 60000, 55000, 1}[min(run, 3)], "msgs/s")
	})
}

func BenchmarkXProcTransportThroughput(b *testing.B) {
	b.Run("1KiB-goroutines-64", func(b *testing.B) { b.ReportMetric(100000, "msgs/s") })
}
`,
	// A fake paf-peer for the multi-process scenarios: version, and an MCP server on stdio
	// that answers initialize and tools/list.
	"cmd/paf-peer/main.go": `package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "version" {
		fmt.Println("paf-peer 0.0.0-fake")
		return
	}
	if len(os.Args) < 2 || os.Args[1] != "mcp" {
		os.Exit(2)
	}
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		var req struct {
			ID     *int   ` + "`json:\"id\"`" + `
			Method string ` + "`json:\"method\"`" + `
		}
		if json.Unmarshal(sc.Bytes(), &req) != nil || req.ID == nil {
			continue
		}
		var result any = map[string]any{}
		switch req.Method {
		case "initialize":
			result = map[string]any{"protocolVersion": "2025-06-18", "capabilities": map[string]any{}, "serverInfo": map[string]any{"name": "fake", "version": "0"}}
		case "tools/list":
			result = map[string]any{"tools": []any{map[string]any{"name": "paf_check", "inputSchema": map[string]any{"type": "object"}}}}
		}
		b, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": *req.ID, "result": result})
		os.Stdout.Write(append(b, '\n'))
	}
}
`,
	"cmd/paf-peer/peer_test.go": `package main

import (
	"os"
	"testing"
)

func BenchmarkMCPStartToInitialize(b *testing.B) {
	if _, err := os.Stat("peer_test.go"); err != nil {
		b.Fatal("not run in its package directory")
	}
	init := 50.0
	if os.Getenv("PAF_BENCH_QUICK") == "1" {
		init = 5
	}
	b.ReportMetric(init, "init-p50-ms")
	b.ReportMetric(4, "version-p50-ms")
}

func BenchmarkLANDiscovery(b *testing.B) { b.Skip("needs root (netns)") }
`,
	"mesh/mesh.go": "package mesh\n",
	"mesh/mesh_test.go": `package mesh

import (
	"fmt"
	"testing"
)

func BenchmarkConvergence(b *testing.B) {
	for _, n := range []int{10, 50, 100, 200} {
		b.Run(fmt.Sprintf("peers-%d", n), func(b *testing.B) { b.ReportMetric(float64(n*20), "ms/total") })
	}
}

func BenchmarkStockConvergence(b *testing.B) {
	for _, n := range []int{10, 100} {
		b.Run(fmt.Sprintf("peers-%d", n), func(b *testing.B) { b.ReportMetric(float64(n*18), "ms/total") })
	}
}

func BenchmarkFailureDetection(b *testing.B) {
	b.Run("peers-100", func(b *testing.B) { b.Fatal("the cluster did not converge") })
}
`,
}

// fakeRun sets up a run of the runner against fakeProduct in a temporary repo: the config
// (JSON into out, stdout and stderr into the buffers returned), for the test to complete.
func fakeRun(t *testing.T) (cfg Config, out string, stdout, stderr *bytes.Buffer) {
	t.Helper()
	if testing.Short() {
		t.Skip("builds test binaries")
	}
	root := t.TempDir()
	writeFiles(t, root, fakeProduct)
	out = t.TempDir()
	stdout, stderr = &bytes.Buffer{}, &bytes.Buffer{}
	return Config{Repo: root, JSON: filepath.Join(out, "r.json"), Stdout: stdout, Stderr: stderr}, out, stdout, stderr
}

// TestRun runs the whole runner against fakeProduct: build, processes, NATS, every output.
func TestRun(t *testing.T) {
	cfg, out, stdout, stderr := fakeRun(t)
	cfg.Quick, cfg.Only = true, "^relay-latency$|relay-latency-vs-nats|mcp-start|tools-list|lan-discovery|^membership$"
	cfg.Markdown, cfg.Charts = filepath.Join(out, "r.md"), filepath.Join(out, "charts")
	if err := Run(context.Background(), cfg); err != nil {
		t.Fatalf("Run: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	text := stdout.String()
	for _, want := range []string{
		"commit: unknown", "mode: quick run",
		// The paced run's durable figures, against raw TCP paced alike; PAF_BENCH_QUICK
		// reached the benchmark (its p50 is 10 µs only in quick mode).
		"p50 25.0 µs, p99 55.0 µs", "raw TCP one-way, paced alike: p50 10.0 µs, p99 20.0 µs", "p50 2.50×, p99 2.75×",
		"|   ↳ vs NATS pub→sub, 1 KiB, both paced 500 µs ",
		"skipped (needs root (netns))",
		"CAPPED at 5 s (converged share shown): 1.80 s", "| 200   | 4,000    | —",
		"chart: " + filepath.Join(out, "charts", "membership.png"),
		"json: " + cfg.JSON, "markdown: " + cfg.Markdown,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("stdout lacks %q:\n%s\nstderr:\n%s", want, text, stderr.String())
		}
	}
	rep, err := report.ReadFile(cfg.JSON)
	if err != nil {
		t.Fatal(err)
	}
	verdicts := map[string]string{}
	for _, r := range rep.Rows {
		verdicts[r.Key] = r.Verdict
	}
	want := map[string]string{
		"relay-latency": report.Met, "tools-list": report.Met, "lan-discovery": report.Skipped, "membership": report.Met,
	}
	// mcp-start ran the fake paf-peer in separate processes (package procs): judged, on a
	// ratio of times, so either verdict.
	if v := verdicts["mcp-start"]; v != report.Met && v != report.Missed {
		t.Errorf("row mcp-start: verdict %q: the multi-process scenario did not run", v)
	}
	for k, v := range want {
		if verdicts[k] != v {
			t.Errorf("row %s: verdict %q, want %q", k, verdicts[k], v)
		}
	}
	for _, k := range []string{"relay-latency-vs-nats", "relay-latency-vs-nats-tls"} {
		if v := verdicts[k]; v != report.Met && v != report.Missed {
			t.Errorf("row %s: verdict %q: the NATS baseline did not run", k, v)
		}
	}
	// Only the NATS cases the selected rows read ran: the paced ones.
	var natsRan []string
	for _, b := range rep.Benchmarks {
		if b.Pkg == report.PkgNATS && b.Status == report.StatusOK {
			natsRan = append(natsRan, b.Name)
		}
	}
	if want := []string{report.NATSOneWay1K, report.NATSOneWay1KTLS}; !reflect.DeepEqual(natsRan, want) {
		t.Errorf("NATS cases run %q, want %q", natsRan, want)
	}
	md, err := os.ReadFile(cfg.Markdown)
	if err != nil || !bytes.Contains(md, []byte("](charts/membership.png)")) && !bytes.Contains(md, []byte("membership.png)")) {
		t.Errorf("markdown (%v):\n%s", err, md)
	}
	if _, err := os.Stat(filepath.Join(out, "charts", "names.png")); err == nil {
		t.Error("names.png written without data")
	}

	// Compare with itself: every change is 0.
	stdout.Reset()
	cfg.Compare, cfg.JSON, cfg.Markdown, cfg.Charts, cfg.Only = cfg.JSON, "", "", "", "^tools-list$"
	if err := Run(context.Background(), cfg); err != nil {
		t.Fatalf("Run with --compare: %v\n%s", err, stderr.String())
	}
	if !strings.Contains(stdout.String(), "| tools-list ") || !strings.Contains(stdout.String(), "+0.0%") {
		t.Errorf("comparison:\n%s", stdout.String())
	}
}

// TestRunJetStream: the JetStream lines run the relay's throughput and both JetStream cases
// (real servers, a real child, quick counts), and nothing else of NATS; the stored count is in
// the results beside the rate.
func TestRunJetStream(t *testing.T) {
	cfg, _, stdout, stderr := fakeRun(t)
	cfg.Quick, cfg.Only = true, "jetstream"
	if err := Run(context.Background(), cfg); err != nil {
		t.Fatalf("Run: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	for _, want := range []string{
		"|   ↳ vs NATS JetStream publish, stored and fsync'd before the ack (sync always) ", "| JetStream, sync always: ",
		"|   ↳ vs NATS JetStream publish, stored in the page cache before the ack (default sync) ", "| JetStream, default sync: ",
		"| 40,000 msg/s ", // the fake relay's first run
	} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("stdout lacks %q:\n%s", want, stdout.String())
		}
	}
	rep, err := report.ReadFile(cfg.JSON)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Rows) != 2 {
		t.Fatalf("rows: %+v", rep.Rows)
	}
	for _, r := range rep.Rows {
		if r.Verdict != report.Met && r.Verdict != report.Missed || len(r.Ratios) != 1 {
			t.Errorf("row %s: verdict %q, ratios %v: the JetStream baseline did not run", r.Key, r.Verdict, r.Ratios)
		}
	}
	var natsRan []string
	for _, b := range rep.Benchmarks {
		if b.Pkg != report.PkgNATS {
			continue
		}
		natsRan = append(natsRan, b.Name)
		metrics := map[string]float64{}
		for _, m := range b.Metrics {
			metrics[m.Unit] = m.Value
		}
		// Quick: 2,000 messages over 64 publishers round up to 2,048, 200 of warm-up to 256.
		if b.Status != report.StatusOK || metrics[report.NATSMsgsUnit] <= 0 || metrics["msgs"] != 2048 || metrics["stored-msgs"] != 2048+256 {
			t.Errorf("%s: %s, metrics %v", b.Name, b.Status, metrics)
		}
	}
	if want := []string{report.NATSJetStreamSyncAlways, report.NATSJetStream}; !reflect.DeepEqual(natsRan, want) {
		t.Errorf("NATS cases run %q, want %q", natsRan, want)
	}
}

// A full run measures the rows marked with Rounds three times, interleaved, and judges their
// medians; the JSON keeps every round.
func TestRunRounds(t *testing.T) {
	cfg, out, stdout, stderr := fakeRun(t)
	cfg.Only = "^relay-throughput$"
	if err := Run(context.Background(), cfg); err != nil {
		t.Fatalf("Run: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	if text := stdout.String(); !strings.Contains(text, "55,000 msg/s") || !strings.Contains(text, "met (medians of 3 interleaved runs)") {
		t.Errorf("stdout lacks the median and its note:\n%s", text)
	}
	rep, err := report.ReadFile(cfg.JSON)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Rows) != 1 || rep.Rows[0].Verdict != report.Met {
		t.Fatalf("rows: %+v", rep.Rows)
	}
	for _, b := range rep.Benchmarks {
		if len(b.Rounds) != 3 {
			t.Errorf("%s: %d rounds kept, want 3: %+v", b.Ref, len(b.Rounds), b)
		}
	}
	procs := 0
	for _, p := range rep.Processes {
		if p.Pkg == report.PkgRelay {
			procs++
		}
	}
	if procs != 6 { // two benchmark processes, three rounds
		t.Errorf("%d relay processes ran, want 6", procs)
	}

	// Quick runs measure once.
	stdout.Reset()
	cfg.Quick, cfg.JSON = true, filepath.Join(out, "q.json")
	if err := Run(context.Background(), cfg); err != nil {
		t.Fatalf("quick Run: %v\n%s", err, stderr.String())
	}
	if strings.Contains(stdout.String(), "interleaved") {
		t.Errorf("a quick run measured rounds:\n%s", stdout.String())
	}
}

func TestRunFailures(t *testing.T) {
	if testing.Short() {
		t.Skip("builds test binaries")
	}
	t.Run("benchmark fails", func(t *testing.T) {
		root := t.TempDir()
		writeFiles(t, root, fakeProduct)
		var stdout, stderr bytes.Buffer
		err := Run(context.Background(), Config{Repo: root, Only: "^failure$", Stdout: &stdout, Stderr: &stderr})
		if !errors.Is(err, ErrBenchmark) {
			t.Fatalf("err = %v, want ErrBenchmark", err)
		}
		if !strings.Contains(stderr.String(), "the cluster did not converge") {
			t.Errorf("the failing output is not shown:\n%s", stderr.String())
		}
		if !strings.Contains(stdout.String(), "missing (BenchmarkFailureDetection/peers-100 failed)") || !strings.Contains(stdout.String(), "FAILED: mesh") {
			t.Errorf("stdout:\n%s", stdout.String())
		}
	})
	t.Run("build fails", func(t *testing.T) {
		root := t.TempDir()
		writeFiles(t, root, fakeProduct)
		writeFiles(t, root, map[string]string{"mesh/broken.go": "package mesh\n\nfunc broken() { undefined() }\n"})
		var stdout, stderr bytes.Buffer
		err := Run(context.Background(), Config{Repo: root, Only: "^membership$", Stdout: &stdout, Stderr: &stderr})
		if !errors.Is(err, ErrBuild) || !strings.Contains(stderr.String(), "undefined") {
			t.Fatalf("err = %v, want ErrBuild; stderr:\n%s", err, stderr.String())
		}
	})
	t.Run("bad --compare file", func(t *testing.T) {
		err := Run(context.Background(), Config{Repo: t.TempDir(), Compare: filepath.Join(t.TempDir(), "none.json"), Stdout: &bytes.Buffer{}, Stderr: &bytes.Buffer{}})
		if err == nil {
			t.Fatal("a missing --compare file was accepted")
		}
	})
}
