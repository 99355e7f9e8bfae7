package benchout

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestParseLines(t *testing.T) {
	tests := map[string]struct {
		in      string
		procs   int
		results []Result
		skipped map[string]string
		failed  map[string]string
	}{
		"sub-benchmark with procs suffix": {
			in:    "BenchmarkXProcRelaySend/1KiB-2   \t       1\t  41.20 p50-deliver-us\t 154.0 p99-deliver-us\n",
			procs: 2,
			results: []Result{{Name: "BenchmarkXProcRelaySend/1KiB", Iterations: 1, Metrics: []Metric{
				{41.2, "p50-deliver-us"}, {154, "p99-deliver-us"}}}},
		},
		"name ending in a number keeps it": {
			in:      "BenchmarkConvergence/peers-100-2 \t 1 \t 1730 ms/total\nBenchmarkHandover/msgs-1-2 1 143.0 ms/handover-p50\n",
			procs:   2,
			results: []Result{{"BenchmarkConvergence/peers-100", 1, []Metric{{1730, "ms/total"}}}, {"BenchmarkHandover/msgs-1", 1, []Metric{{143, "ms/handover-p50"}}}},
		},
		"procs 1: no suffix to strip": {
			in:      "BenchmarkXProcRelayConcurrent/1KiB/senders-64 \t 1 \t 12 p50-ack-us\n",
			procs:   1,
			results: []Result{{"BenchmarkXProcRelayConcurrent/1KiB/senders-64", 1, []Metric{{12, "p50-ack-us"}}}},
		},
		"suffix of another procs value is kept": {
			in:      "BenchmarkA/senders-8-4 1 5 x/op\n",
			procs:   2,
			results: []Result{{"BenchmarkA/senders-8-4", 1, []Metric{{5, "x/op"}}}},
		},
		"no metrics at all": {
			in:      "BenchmarkMCPIdle-2 \t 1\n",
			procs:   2,
			results: []Result{{Name: "BenchmarkMCPIdle", Iterations: 1}},
		},
		"malformed lines are ignored": {
			in: strings.Join([]string{
				"BenchmarkA-2 1 12 ns/op 5",         // odd field count
				"BenchmarkB-2 one 12 ns/op",         // iterations not a number
				"BenchmarkC-2 1 twelve ns/op",       // value not a number
				"BenchmarkD-2 1 NaN ns/op",          // not a finite number
				"BenchmarkE",                        // -test.v announcement
				"ok  \tgithub.com/x/relay\t1.2s",    // go test summary
				"BenchmarkF-2 3 1e3 ns/op 2.5 MB/s", // a good one
			}, "\n"),
			procs:   2,
			results: []Result{{"BenchmarkF", 3, []Metric{{1000, "ns/op"}, {2.5, "MB/s"}}}},
		},
		"plain skip: reason after the verdict": {
			in:      "--- SKIP: BenchmarkLANDiscovery\n    lan_bench_test.go:20: needs root (netns)\nPASS\n",
			skipped: map[string]string{"BenchmarkLANDiscovery": "lan_bench_test.go:20: needs root (netns)"},
		},
		"chatty skip: reason before the verdict": {
			in:      "BenchmarkLANDiscovery\n    lan_bench_test.go:20: needs root\n--- SKIP: BenchmarkLANDiscovery\nBenchmarkNext\n    other.go:1: not a reason\n",
			skipped: map[string]string{"BenchmarkLANDiscovery": "lan_bench_test.go:20: needs root"},
		},
		"failed sub-benchmark and its parent": {
			in: "BenchmarkHandover/msgs-1\nstray output\n    handover_bench_test.go:40: timed out\n    more\n" +
				"--- FAIL: BenchmarkHandover/msgs-1\n--- FAIL: BenchmarkHandover\nFAIL\n",
			failed: map[string]string{"BenchmarkHandover/msgs-1": "handover_bench_test.go:40: timed out\nmore", "BenchmarkHandover": ""},
		},
		"plain failure: log after the verdict": {
			in:     "--- FAIL: BenchmarkX/a\n    x_test.go:7: boom\n--- FAIL: BenchmarkX\nFAIL\n",
			failed: map[string]string{"BenchmarkX/a": "x_test.go:7: boom", "BenchmarkX": ""},
		},
		"test verdict with elapsed time": {
			in:     "--- FAIL: TestMainHelper (0.01s)\n    main_test.go:3: bad\n",
			failed: map[string]string{"TestMainHelper": "main_test.go:3: bad"},
		},
		"log lines of a result are not a reason": {
			in:      "BenchmarkA/1KiB-2 1 5 x/op\n--- BENCH: BenchmarkA/1KiB-2\n    a.go:1: hello\n--- SKIP: BenchmarkB\n",
			procs:   2,
			results: []Result{{"BenchmarkA/1KiB", 1, []Metric{{5, "x/op"}}}},
			skipped: map[string]string{"BenchmarkB": ""},
		},
		"crlf line endings": {
			in:      "BenchmarkA-2 1 5 x/op\r\n",
			procs:   2,
			results: []Result{{"BenchmarkA", 1, []Metric{{5, "x/op"}}}},
		},
		"empty": {},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got := Parse(strings.NewReader(tc.in), Options{Procs: tc.procs})
			if !reflect.DeepEqual(got.Results, tc.results) {
				t.Errorf("results:\n got %+v\nwant %+v", got.Results, tc.results)
			}
			if tc.skipped == nil {
				tc.skipped = map[string]string{}
			}
			if tc.failed == nil {
				tc.failed = map[string]string{}
			}
			if !reflect.DeepEqual(got.Skipped, tc.skipped) {
				t.Errorf("skipped: got %q, want %q", got.Skipped, tc.skipped)
			}
			if !reflect.DeepEqual(got.Failed, tc.failed) {
				t.Errorf("failed: got %q, want %q", got.Failed, tc.failed)
			}
		})
	}
}

// TestParseRecorded parses output recorded from real test binaries (testdata/*.txt): a plain
// run, a -test.v run, a -test.v run with -test.cpu=1, and a real relay run.
func TestParseRecorded(t *testing.T) {
	wantSample := func(t *testing.T, o Output) {
		t.Helper()
		for name, want := range map[string]map[string]float64{
			"BenchmarkA/1KiB":               {"msgs/s": 12346, "p50-deliver-us": 41.5},
			"BenchmarkA/peers-10":           {"msgs/s": 12346, "p50-deliver-us": 41.5},
			"BenchmarkNest/1KiB/senders-64": {"p99-ack-us": 3},
			"BenchmarkPlain":                {},
		} {
			r, ok := o.Lookup(name)
			if !ok {
				t.Errorf("%s: no result (have %+v)", name, o.Results)
				continue
			}
			for unit, v := range want {
				if got, ok := r.Metric(unit); !ok || got != v {
					t.Errorf("%s %s = %v, %v; want %v", name, unit, got, ok, v)
				}
			}
		}
		if len(o.Results) != 4 {
			t.Errorf("%d results, want 4: %+v", len(o.Results), o.Results)
		}
		if _, ok := o.Failed["BenchmarkFail/msgs-1"]; !ok {
			t.Errorf("failed: %q, want BenchmarkFail/msgs-1", o.Failed)
		}
	}
	tests := map[string]struct {
		file  string
		procs int
		check func(*testing.T, Output)
	}{
		"plain": {file: "plain.txt", procs: 2, check: func(t *testing.T, o Output) {
			wantSample(t, o)
			if len(o.Skipped) != 0 { // a plain run does not print skips of benchmarks
				t.Errorf("skipped: %q", o.Skipped)
			}
			if got := o.Failed["BenchmarkFail/msgs-1"]; got != "s_test.go:7: the child timed 3" {
				t.Errorf("failure reason %q", got)
			}
		}},
		"chatty": {file: "chatty.txt", procs: 2, check: func(t *testing.T, o Output) {
			wantSample(t, o)
			want := map[string]string{"BenchmarkSkip": "s_test.go:5: needs root", "BenchmarkSkipSub/x": "s_test.go:6: needs root (netns)"}
			if !reflect.DeepEqual(o.Skipped, want) {
				t.Errorf("skipped: %q, want %q", o.Skipped, want)
			}
			if got := o.Failed["BenchmarkFail/msgs-1"]; got != "s_test.go:7: the child timed 3" {
				t.Errorf("failure reason %q", got)
			}
		}},
		"chatty, procs 1": {file: "chatty-procs1.txt", procs: 1, check: wantSample},
		"relay": {file: "relay.txt", procs: 2, check: func(t *testing.T, o Output) {
			for name, unit := range map[string]string{
				"BenchmarkXProcRawTCP/1KiB":     "p50-oneway-us",
				"BenchmarkXProcRawTCP/64KiB":    "p99-oneway-us",
				"BenchmarkXProcRelaySend/1KiB":  "p50-deliver-us",
				"BenchmarkXProcRelaySend/64KiB": "p99-deliver-us",
			} {
				r, ok := o.Lookup(name)
				if !ok {
					t.Errorf("%s: missing", name)
					continue
				}
				if v, ok := r.Metric(unit); !ok || v <= 0 {
					t.Errorf("%s %s = %v, %v", name, unit, v, ok)
				}
			}
			if len(o.Failed)+len(o.Skipped) != 0 {
				t.Errorf("failed %q, skipped %q", o.Failed, o.Skipped)
			}
		}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			f, err := os.Open(filepath.Join("testdata", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			tc.check(t, Parse(f, Options{Procs: tc.procs}))
		})
	}
}

func TestParseLongLine(t *testing.T) {
	in := strings.Repeat("x", 3*maxLine) + "\nBenchmarkA-2 1 5 x/op\n"
	got := Parse(strings.NewReader(in), Options{Procs: 2})
	if len(got.Results) != 1 || got.Results[0].Name != "BenchmarkA" {
		t.Fatalf("results %+v", got.Results)
	}
}

// FuzzParse: benchmark output comes from another process; whatever it prints, Parse must not
// panic, and every result it returns must be a well-formed one.
func FuzzParse(f *testing.F) {
	for _, name := range []string{"plain.txt", "chatty.txt", "chatty-procs1.txt"} {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(b), 2)
	}
	f.Add("BenchmarkA/peers-100-2 1 1730 ms/total\n--- SKIP: BenchmarkB\n    why\n", 2)
	f.Add("--- FAIL: BenchmarkX (1.5s)\n\t\tnested\n", 1)
	f.Add("Benchmark 1 2 3\n", 0)
	f.Fuzz(func(t *testing.T, in string, procs int) {
		out := Parse(strings.NewReader(in), Options{Procs: procs})
		for _, r := range out.Results {
			if !strings.HasPrefix(r.Name, "Benchmark") || r.Iterations < 0 {
				t.Fatalf("bad result %+v", r)
			}
			for _, m := range r.Metrics {
				if m.Unit == "" {
					t.Fatalf("metric without unit in %+v", r)
				}
			}
		}
	})
}
