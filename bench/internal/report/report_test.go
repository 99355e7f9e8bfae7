package report

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/paf-mesh/paf-mesh/bench/internal/benchout"
	"github.com/paf-mesh/paf-mesh/bench/internal/procs"
)

// ok is a successful benchmark with metrics given as unit, value pairs.
func ok(pkg, name string, kv ...any) Bench {
	b := Bench{Ref: Ref{pkg, name}, Status: StatusOK, Iterations: 1}
	for i := 0; i+1 < len(kv); i += 2 {
		b.Metrics = append(b.Metrics, benchout.Metric{Unit: kv[i].(string), Value: kv[i+1].(float64)})
	}
	return b
}

func rowSpec(t *testing.T, key string) RowSpec {
	t.Helper()
	for _, r := range Rows() {
		if r.Key == key {
			return r
		}
	}
	t.Fatalf("no row %q", key)
	return RowSpec{}
}

func TestSpecShape(t *testing.T) {
	keys := map[string]bool{}
	spec := 0
	for _, r := range Rows() {
		if keys[r.Key] || r.Key == "" || r.Judge == nil || len(r.Measured) == 0 {
			t.Errorf("row %q: duplicate key, or no judge or measured metric", r.Key)
		}
		keys[r.Key] = true
		if !strings.HasPrefix(r.Title, "  ↳") && r.Key != "floors" {
			spec++
		}
		for _, label := range r.Ratios {
			var m, b bool
			for _, x := range r.Measured {
				m = m || x.Label == label
			}
			for _, x := range r.Baseline {
				b = b || x.Label == label
			}
			for _, x := range r.Derived {
				b = b || x.Label == label
			}
			if !m || !b {
				t.Errorf("row %q: ratio %q has no measured or baseline value of that label", r.Key, label)
			}
		}
	}
	if spec != 14 {
		t.Errorf("%d SPEC rows, want the 14 of SPEC section 10", spec)
	}
	// A relay-vs-NATS latency line compares runs paced alike: relay "X/1KiB-paced-500us"
	// against NATS "OneWay/1KiB/publishers-1/paced-500us[/tls]", of the same size.
	relayPace := regexp.MustCompile(`^BenchmarkXProcRelaySend/(\w+)-(paced-\d+us)$`)
	natsPace := regexp.MustCompile(`^OneWay/(\w+)/publishers-1/(paced-\d+us)(/tls)?$`)
	natsRows := 0
	for _, r := range Rows() {
		if len(r.Baseline) == 0 || r.Baseline[0].Pkg != PkgNATS || r.Baseline[0].Unit != NATSOneWayP50Unit {
			continue
		}
		natsRows++
		for _, m := range r.Measured {
			for _, b := range r.Baseline {
				rm, bm := relayPace.FindStringSubmatch(m.Name), natsPace.FindStringSubmatch(b.Name)
				if rm == nil || bm == nil || rm[1] != bm[1] || rm[2] != bm[2] || !strings.Contains(r.Title, "both paced 500 µs") {
					t.Errorf("row %q compares %s with %s (%q): not paced alike", r.Key, m.Name, b.Name, r.Title)
				}
			}
		}
	}
	if natsRows != 4 {
		t.Errorf("%d relay-vs-NATS latency rows, want 4 (1 KiB and 64 KiB, plain and TLS)", natsRows)
	}
	// The JetStream lines sit right under the request-reply line, sub-rows of relay throughput.
	var order []string
	for _, r := range Rows() {
		order = append(order, r.Key)
	}
	i := slices.Index(order, "relay-throughput")
	if want := []string{"relay-throughput", "relay-throughput-vs-nats", "relay-throughput-vs-jetstream-sync", "relay-throughput-vs-jetstream"}; i < 0 || len(order) < i+4 || !slices.Equal(order[i:i+4], want) {
		t.Errorf("rows in order %q, want %q together", order, want)
	}
	for _, r := range Rows()[i+1 : i+4] {
		if !strings.HasPrefix(r.Title, "  ↳ vs NATS ") || r.Rounds != edgeRounds || len(r.Baseline) != 1 || r.Baseline[0].Unit != NATSMsgsUnit ||
			!reflect.DeepEqual(r.Measured, Rows()[i].Measured) {
			t.Errorf("row %q is not a throughput line against a NATS rate, in rounds, like its neighbours: %+v", r.Key, r)
		}
	}
	for _, c := range Curves() {
		if keys["curve:"+c.Key] || len(c.Xs) == 0 || len(c.Series) == 0 || c.Unit == "" || c.YLabel == "" {
			t.Errorf("curve %q malformed", c.Key)
		}
		keys["curve:"+c.Key] = true
	}
}

func TestBuildRow(t *testing.T) {
	// The relay latency row reads the paced run, to durable delivery.
	relay1K := func(p50, p99 float64) Bench {
		return ok(PkgRelay, "BenchmarkXProcRelaySend/1KiB-paced-500us", "p50-durable-us", p50, "p99-durable-us", p99, "ns/op", 1.0)
	}
	raw1K := ok(PkgRelay, "BenchmarkXProcRawTCP/1KiB-paced-500us", "p50-oneway-us", 10.0, "p99-oneway-us", 50.0)
	// The vs-NATS rows read the relay paced like the NATS cases, not the back-to-back run.
	relayPaced := func(size string, p50, p99 float64) Bench {
		return ok(PkgRelay, "BenchmarkXProcRelaySend/"+size+"-paced-500us", "p50-durable-us", p50, "p99-durable-us", p99, "ns/op", 1.0)
	}
	relayTput := func(msgs float64) Bench {
		return ok(PkgRelay, "BenchmarkXProcRelayThroughput/1KiB", "msgs/s", msgs, "MB/s", msgs*1024/1e6)
	}
	tests := map[string]struct {
		row         string
		benches     []Bench
		verdict     string
		note        string
		ratios      int
		baselines   int
		measuredLen int
	}{
		"relay latency met": {
			row: "relay-latency", benches: []Bench{relay1K(25, 140), raw1K},
			verdict: Met, ratios: 2, measuredLen: 2, baselines: 2,
		},
		"relay latency missed on the ratio alone": {
			row: "relay-latency", benches: []Bench{relay1K(40, 140), raw1K},
			verdict: Missed, ratios: 2, measuredLen: 2, baselines: 2,
		},
		"relay latency missed on p99": {
			row: "relay-latency", benches: []Bench{relay1K(10, 501), raw1K},
			verdict: Missed, ratios: 2, measuredLen: 2, baselines: 2,
		},
		"relay latency beside its floor": {
			row: "relay-latency",
			benches: []Bench{relay1K(60, 140), raw1K,
				ok(PkgRelay, "BenchmarkFsyncBaseline/overwrite-fdatasync-1KiB-paced-500us", "p50-commit-us", 20.0, "p99-commit-us", 90.0),
				ok(PkgRelay, "BenchmarkSignVerify/1KiB", "sign-us", 10.0, "verify-us", 20.0)},
			// floor 10 + 20 + 10 = 40 µs = 4× raw; 60 / 40 = 1.5
			verdict: Missed, note: "floor: raw one-way + fdatasync paced + sign = 40.0 µs = 4.00× raw; measured 1.50× that floor",
			ratios: 2, measuredLen: 2, baselines: 4,
		},
		"64 KiB relay latency beside its floor, its file included": {
			row: "relay-latency-64k",
			benches: []Bench{
				ok(PkgRelay, "BenchmarkXProcRelaySend/64KiB-paced-500us", "p50-durable-us", 1000.0, "p99-durable-us", 1500.0),
				ok(PkgRelay, "BenchmarkXProcRawTCP/64KiB-paced-500us", "p50-oneway-us", 50.0, "p99-oneway-us", 100.0),
				ok(PkgRelay, "BenchmarkFsyncBaseline/overwrite-fdatasync-1KiB-paced-500us", "p50-commit-us", 200.0, "p99-commit-us", 900.0),
				ok(PkgRelay, "BenchmarkSignVerify/64KiB", "sign-us", 150.0, "verify-us", 170.0),
				ok(PkgRelay, "BenchmarkSignVerify/1KiB", "sign-us", 10.0, "verify-us", 20.0),
				ok(PkgRelay, "BenchmarkFsyncBaseline/newfile-64KiB-fsync-paced-500us", "p50-commit-us", 400.0, "p99-commit-us", 2000.0)},
			// floor 50 + 200 + 150 = 400 µs = 8× raw, 1000 / 400 = 2.5; with the file 800 µs,
			// 1000 / 800 = 1.25 (the 1 KiB signature is not read)
			verdict: Missed, note: "floor: raw one-way + fdatasync paced + sign = 400 µs = 8.00× raw; measured 2.50× that floor; with the body's own file (new file + fsync paced, 400 µs) 800 µs, measured 1.25× that",
			ratios: 2, measuredLen: 2, baselines: 5,
		},
		"relay latency without its baseline": {
			row: "relay-latency", benches: []Bench{relay1K(40, 140)},
			verdict: Missing, note: "no raw TCP baseline", measuredLen: 2, baselines: 0,
		},
		"relay latency reads durable delivery, not the handler's": {
			row:     "relay-latency",
			benches: []Bench{ok(PkgRelay, "BenchmarkXProcRelaySend/1KiB-paced-500us", "p50-deliver-us", 10.0, "p99-deliver-us", 20.0), raw1K},
			verdict: Missing, note: "BenchmarkXProcRelaySend/1KiB-paced-500us reported no p50-durable-us", baselines: 2,
		},
		"missing: no output": {
			row: "relay-latency", benches: []Bench{raw1K},
			verdict: Missing, note: "no output from BenchmarkXProcRelaySend/1KiB-paced-500us", baselines: 2,
		},
		"missing: metric not reported": {
			row:     "relay-latency",
			benches: []Bench{ok(PkgRelay, "BenchmarkXProcRelaySend/1KiB-paced-500us", "p50-durable-us", 10.0), raw1K},
			verdict: Missing, note: "BenchmarkXProcRelaySend/1KiB-paced-500us reported no p99-durable-us", measuredLen: 1, baselines: 2, ratios: 1,
		},
		"missing: failed": {
			row:     "handover",
			benches: []Bench{{Ref: Ref{PkgRelay, "BenchmarkHandover/msgs-1"}, Status: StatusFailed, Reason: "boom"}},
			verdict: Missing, note: "BenchmarkHandover/msgs-1 failed", baselines: 0,
		},
		"skipped by its parent, with its reason": {
			row:     "lan-discovery",
			benches: []Bench{{Ref: Ref{PkgPeer, "BenchmarkLANDiscovery"}, Status: StatusSkipped, Reason: "needs root"}},
			verdict: Skipped, note: "needs root", baselines: 0,
		},
		"vs NATS faster": {
			row:     "relay-latency-vs-nats",
			benches: []Bench{relayPaced("1KiB", 20, 60), ok(PkgNATS, NATSOneWay1K, NATSOneWayP50Unit, 30.0, NATSOneWayP99Unit, 90.0)},
			verdict: Met, ratios: 2, measuredLen: 2, baselines: 2,
		},
		"vs NATS slower at p99": {
			row:     "relay-latency-vs-nats",
			benches: []Bench{relayPaced("1KiB", 20, 100), ok(PkgNATS, NATSOneWay1K, NATSOneWayP50Unit, 30.0, NATSOneWayP99Unit, 90.0)},
			verdict: Missed, ratios: 2, measuredLen: 2, baselines: 2,
		},
		"vs NATS without NATS": {
			row: "relay-latency-vs-nats", benches: []Bench{relayPaced("1KiB", 20, 100)},
			verdict: Missing, note: "no NATS baseline", measuredLen: 2, baselines: 0,
		},
		"vs NATS reads only the paced relay run": {
			row: "relay-latency-vs-nats",
			benches: []Bench{
				ok(PkgRelay, "BenchmarkXProcRelaySend/1KiB", "p50-durable-us", 20.0, "p99-durable-us", 60.0),
				ok(PkgNATS, NATSOneWay1K, NATSOneWayP50Unit, 30.0, NATSOneWayP99Unit, 90.0),
			},
			verdict: Missing, note: "no output from BenchmarkXProcRelaySend/1KiB-paced-500us", baselines: 2,
		},
		"vs NATS reads only the paced NATS case": {
			row: "relay-latency-vs-nats",
			benches: []Bench{
				relayPaced("1KiB", 20, 60),
				ok(PkgNATS, "OneWay/1KiB/publishers-1", NATSOneWayP50Unit, 30.0, NATSOneWayP99Unit, 90.0),
			},
			verdict: Missing, note: "no NATS baseline", measuredLen: 2, baselines: 0,
		},
		"vs NATS, 64 KiB, faster": {
			row:     "relay-latency-64k-vs-nats",
			benches: []Bench{relayPaced("64KiB", 70, 250), ok(PkgNATS, NATSOneWay64K, NATSOneWayP50Unit, 80.0, NATSOneWayP99Unit, 300.0)},
			verdict: Met, ratios: 2, measuredLen: 2, baselines: 2,
		},
		"vs NATS, 64 KiB, slower at p50": {
			row:     "relay-latency-64k-vs-nats",
			benches: []Bench{relayPaced("64KiB", 80, 250), ok(PkgNATS, NATSOneWay64K, NATSOneWayP50Unit, 80.0, NATSOneWayP99Unit, 300.0)},
			verdict: Missed, ratios: 2, measuredLen: 2, baselines: 2,
		},
		"vs NATS, 64 KiB, reads only its own size": {
			row: "relay-latency-64k-vs-nats",
			benches: []Bench{
				relayPaced("1KiB", 20, 60), ok(PkgRelay, "BenchmarkXProcRelaySend/64KiB", "p50-deliver-us", 70.0, "p99-deliver-us", 250.0),
				ok(PkgNATS, NATSOneWay1K, NATSOneWayP50Unit, 80.0, NATSOneWayP99Unit, 300.0),
			},
			verdict: Missing, note: "no output from BenchmarkXProcRelaySend/64KiB-paced-500us", baselines: 0,
		},
		"vs NATS, 64 KiB, without NATS": {
			row: "relay-latency-64k-vs-nats", benches: []Bench{relayPaced("64KiB", 70, 250)},
			verdict: Missing, note: "no NATS baseline", measuredLen: 2, baselines: 0,
		},
		"vs NATS over TLS faster": {
			row:     "relay-latency-vs-nats-tls",
			benches: []Bench{relayPaced("1KiB", 20, 60), ok(PkgNATS, NATSOneWay1KTLS, NATSOneWayP50Unit, 40.0, NATSOneWayP99Unit, 120.0)},
			verdict: Met, ratios: 2, measuredLen: 2, baselines: 2,
		},
		"vs NATS over TLS slower at p99": {
			row:     "relay-latency-vs-nats-tls",
			benches: []Bench{relayPaced("1KiB", 20, 120), ok(PkgNATS, NATSOneWay1KTLS, NATSOneWayP50Unit, 40.0, NATSOneWayP99Unit, 120.0)},
			verdict: Missed, ratios: 2, measuredLen: 2, baselines: 2,
		},
		"vs NATS over TLS reads only the TLS case": {
			row:     "relay-latency-vs-nats-tls",
			benches: []Bench{relayPaced("1KiB", 20, 60), ok(PkgNATS, NATSOneWay1K, NATSOneWayP50Unit, 30.0, NATSOneWayP99Unit, 90.0)},
			verdict: Missing, note: "no NATS over TLS baseline", measuredLen: 2, baselines: 0,
		},
		"vs NATS over TLS reads only the paced TLS case": {
			row: "relay-latency-vs-nats-tls",
			benches: []Bench{
				relayPaced("1KiB", 20, 60),
				ok(PkgNATS, "OneWay/1KiB/publishers-1/tls", NATSOneWayP50Unit, 40.0, NATSOneWayP99Unit, 120.0),
			},
			verdict: Missing, note: "no NATS over TLS baseline", measuredLen: 2, baselines: 0,
		},
		"vs NATS over TLS, 64 KiB, faster": {
			row:     "relay-latency-64k-vs-nats-tls",
			benches: []Bench{relayPaced("64KiB", 70, 250), ok(PkgNATS, NATSOneWay64KTLS, NATSOneWayP50Unit, 80.0, NATSOneWayP99Unit, 300.0)},
			verdict: Met, ratios: 2, measuredLen: 2, baselines: 2,
		},
		"vs NATS over TLS, 64 KiB, slower at p50": {
			row:     "relay-latency-64k-vs-nats-tls",
			benches: []Bench{relayPaced("64KiB", 90, 200), ok(PkgNATS, NATSOneWay64KTLS, NATSOneWayP50Unit, 80.0, NATSOneWayP99Unit, 300.0)},
			verdict: Missed, ratios: 2, measuredLen: 2, baselines: 2,
		},
		"vs NATS over TLS, 64 KiB, without the paced relay run": {
			row:     "relay-latency-64k-vs-nats-tls",
			benches: []Bench{ok(PkgNATS, NATSOneWay64KTLS, NATSOneWayP50Unit, 80.0, NATSOneWayP99Unit, 300.0)},
			verdict: Missing, note: "no output from BenchmarkXProcRelaySend/64KiB-paced-500us", baselines: 2,
		},
		"throughput missed": {
			row: "relay-throughput",
			benches: []Bench{
				ok(PkgRelay, "BenchmarkXProcRelayThroughput/1KiB", "msgs/s", 19150.0),
				ok(PkgRelay, "BenchmarkXProcTransportThroughput/1KiB-goroutines-64", "msgs/s", 80000.0),
			},
			verdict: Missed, note: "the receiver's default rate limit is the ceiling: 1,000 msg/s per sending identity (burst 2,000), and the 64 senders are one identity",
			ratios: 1, measuredLen: 1, baselines: 1,
		},
		"vs JetStream sync always, faster": {
			row:     "relay-throughput-vs-jetstream-sync",
			benches: []Bench{relayTput(43000), ok(PkgNATS, NATSJetStreamSyncAlways, NATSMsgsUnit, 5200.0, "msgs", 20032.0)},
			verdict: Met, ratios: 1, measuredLen: 1, baselines: 1,
		},
		"vs JetStream sync always, slower": {
			row:     "relay-throughput-vs-jetstream-sync",
			benches: []Bench{relayTput(5100), ok(PkgNATS, NATSJetStreamSyncAlways, NATSMsgsUnit, 5200.0)},
			verdict: Missed, ratios: 1, measuredLen: 1, baselines: 1,
		},
		"vs JetStream sync always without JetStream": {
			row: "relay-throughput-vs-jetstream-sync", benches: []Bench{relayTput(43000)},
			verdict: Missing, note: "no NATS JetStream sync-always baseline", measuredLen: 1, baselines: 0,
		},
		"vs JetStream sync always reads only its own case": {
			row: "relay-throughput-vs-jetstream-sync",
			benches: []Bench{
				relayTput(43000), ok(PkgNATS, NATSJetStream, NATSMsgsUnit, 30000.0), ok(PkgNATS, NATSRequestReply, NATSMsgsUnit, 40000.0),
			},
			verdict: Missing, note: "no NATS JetStream sync-always baseline", measuredLen: 1, baselines: 0,
		},
		"vs JetStream sync always, failed": {
			row: "relay-throughput-vs-jetstream-sync",
			benches: []Bench{
				relayTput(43000), {Ref: Ref{PkgNATS, NATSJetStreamSyncAlways}, Status: StatusFailed, Reason: "the stream holds 0 messages"},
			},
			verdict: Missing, note: "no NATS JetStream sync-always baseline", measuredLen: 1, baselines: 0,
		},
		"vs JetStream default sync, equal is met": {
			row:     "relay-throughput-vs-jetstream",
			benches: []Bench{relayTput(30000), ok(PkgNATS, NATSJetStream, NATSMsgsUnit, 30000.0)},
			verdict: Met, ratios: 1, measuredLen: 1, baselines: 1,
		},
		"vs JetStream default sync, slower": {
			row:     "relay-throughput-vs-jetstream",
			benches: []Bench{relayTput(19150), ok(PkgNATS, NATSJetStream, NATSMsgsUnit, 30000.0)},
			verdict: Missed, ratios: 1, measuredLen: 1, baselines: 1,
		},
		"vs JetStream default sync reads only its own case": {
			row:     "relay-throughput-vs-jetstream",
			benches: []Bench{relayTput(19150), ok(PkgNATS, NATSJetStreamSyncAlways, NATSMsgsUnit, 5200.0)},
			verdict: Missing, note: "no NATS JetStream default-sync baseline", measuredLen: 1, baselines: 0,
		},
		"vs JetStream default sync without the relay run": {
			row:     "relay-throughput-vs-jetstream",
			benches: []Bench{ok(PkgNATS, NATSJetStream, NATSMsgsUnit, 30000.0)},
			verdict: Missing, note: "no output from BenchmarkXProcRelayThroughput/1KiB", baselines: 1,
		},
		"idle: 20 peers within target": {
			row: "idle-20",
			benches: []Bench{
				ok(PkgProcs, ProcsIdle20, "cpu-median-%", 0.08, "rss-median-MB", 21.0, "cpu-max-%", 0.2),
				ok(PkgProcs, ProcsIdlePython, "cpu-%", 0.0, "rss-MB", 20.0),
			},
			verdict: Met, ratios: 1, measuredLen: 3, baselines: 2,
		},
		"idle: 20 peers over their CPU": {
			row:     "idle-20",
			benches: []Bench{ok(PkgProcs, ProcsIdle20, "cpu-median-%", 0.55, "rss-median-MB", 21.0)},
			verdict: Missed, measuredLen: 2, baselines: 0,
		},
		"idle beside stock memberlist at the same intervals": {
			row: "idle-20",
			benches: []Bench{
				ok(PkgProcs, ProcsIdle20, "cpu-median-%", 0.12, "rss-median-MB", 20.0),
				ok(PkgProcs, ProcsIdlePython, "cpu-%", 0.0, "rss-MB", 21.0),
				ok(PkgProcs, ProcsIdleStock20, "cpu-median-%", 0.08),
			},
			verdict: Missed, note: "1.50× stock memberlist alone at the same intervals (0.08% of a core)",
			ratios: 1, measuredLen: 2, baselines: 3,
		},
		"question and answer against hub + 2 fdatasync": {
			row: "qa",
			benches: []Bench{
				ok(PkgProcs, ProcsQA, "p50-rtt-ms", 1.1, "p99-rtt-ms", 5.0),
				ok(PkgProcs, ProcsHub, "p50-rtt-ms", 0.2),
				ok(PkgProcs, ProcsFsync, "p50-ms", 0.3, "p99-ms", 10.0, "paced-p50-ms", 0.4, "paced-p99-ms", 12.0, "pace-ms", 1.1),
			},
			// 1.1 ≤ 1.5 × (0.2 + 2 × 0.4); with the back-to-back sync it would be 1.38×.
			verdict: Met, note: "5.50× the hub alone; 1.38× hub + 2 × fdatasync back to back", ratios: 1, measuredLen: 2, baselines: 6,
		},
		"question and answer missed": {
			row: "qa",
			benches: []Bench{
				ok(PkgProcs, ProcsQA, "p50-rtt-ms", 2.6),
				ok(PkgProcs, ProcsHub, "p50-rtt-ms", 0.2),
				ok(PkgProcs, ProcsFsync, "paced-p50-ms", 0.3),
			},
			verdict: Missed, note: "13.0× the hub alone", ratios: 1, measuredLen: 1, baselines: 3,
		},
		"question and answer judged on the paced sync only": {
			row: "qa",
			benches: []Bench{
				ok(PkgProcs, ProcsQA, "p50-rtt-ms", 1.1),
				ok(PkgProcs, ProcsHub, "p50-rtt-ms", 0.2),
				ok(PkgProcs, ProcsFsync, "p50-ms", 0.3), // a results file from before the paced samples
			},
			verdict: Missing, note: "no hub or fdatasync baseline", measuredLen: 1, baselines: 2,
		},
		"question and answer without the disk baseline": {
			row:     "qa",
			benches: []Bench{ok(PkgProcs, ProcsQA, "p50-rtt-ms", 2.6), ok(PkgProcs, ProcsHub, "p50-rtt-ms", 0.2)},
			verdict: Missing, note: "no hub or fdatasync baseline", measuredLen: 1, baselines: 1,
		},
		"fsyncs counted": {
			row:     "qa-fsyncs",
			benches: []Bench{ok(PkgProcs, ProcsFsyncCount, "fsyncs/round-trip", 4.0)},
			verdict: Missed, measuredLen: 1,
		},
		"fsyncs not measured without strace": {
			row:     "qa-fsyncs",
			benches: []Bench{{Ref: Ref{PkgProcs, ProcsFsyncCount}, Status: StatusSkipped, Reason: "not measured: strace is not installed"}},
			verdict: Skipped, note: "not measured: strace is not installed",
		},
		"mcp start judged on its ratio to version": {
			row:     "mcp-start",
			benches: []Bench{ok(PkgProcs, ProcsMCPStart, "init-p50-ms", 16.0, "version-p50-ms", 10.0)},
			verdict: Missed, ratios: 1, measuredLen: 1, baselines: 1,
		},
		"20 separate processes against stock": {
			row: "mesh-20",
			benches: []Bench{
				ok(PkgProcs, ProcsAllSee20, "ms/after-last-start", 900.0),
				ok(PkgProcs, ProcsStockAllSee20, "ms/after-last-start", 1500.0),
			},
			verdict: Met, ratios: 1, measuredLen: 1, baselines: 1,
		},
		"50 separate processes, CPU-bound": {
			row: "mesh-50",
			benches: []Bench{
				ok(PkgProcs, ProcsAllSee50, "ms/after-last-start", 4000.0, "ms/starting", 1000.0, "ms/after-first-start", 5000.0,
					"cpu-ms/all", 9000.0, "cpu-ms/median", 180.0, "cpus", 2.0),
				ok(PkgProcs, ProcsStockAllSee50, "ms/after-last-start", 40000.0),
				ok(PkgProcs, ProcsMCPStart, "init-cpu-p50-ms", 30.0),
			},
			// 9 s of CPU in the 2 cores' 10 s since the first start
			verdict: Missed, note: "the 50 sessions had used 9.00 s of CPU by then (180 ms each, median): 90 % of the 2 cores' time since the first start, 5.00 s; a lone session's start to its initialize result uses 30.0 ms",
			ratios: 1, measuredLen: 6, baselines: 2,
		},
		"lifted throughput beside its CPU ceiling": {
			row: "relay-throughput-lifted",
			benches: []Bench{
				ok(PkgRelay, "BenchmarkXProcRelayThroughput/1KiB-rate-lifted", "msgs/s", 10000.0, "cpu-us-per-msg", 160.0,
					"rx-cpu-us-per-msg", 100.0, "cpus", 2.0),
				ok(PkgNATS, NATSJetStreamSyncAlways, NATSMsgsUnit, 5000.0),
				ok(PkgRelay, "BenchmarkSignVerify/1KiB", "sign-us", 10.0, "verify-us", 30.0),
			},
			// 2 cores / 160 µs = 12,500 msg/s, 80 % of it; 2 / 40 µs = 50,000
			verdict: Missed, note: "CPU-bound: 160 µs of CPU per message (both processes) caps 2 cores at 12,500 msg/s; measured 80 % of that; the signature alone (sign 10.0 + verify 30.0 µs) caps them at 50,000 msg/s",
			ratios: 1, measuredLen: 4, baselines: 3,
		},
		"optional metric absent is not missing": {
			row: "names",
			benches: []Bench{
				ok(PkgMesh, "BenchmarkNamePropagation/peers-100", "ms/claim-mean", 330.0, "ms/claim-max", 470.0),
				ok(PkgMesh, "BenchmarkStockPropagation/peers-100", "ms/update-mean", 300.0),
			},
			verdict: Met, ratios: 1, measuredLen: 1, baselines: 1,
		},
		"handover judged on p99": {
			row: "handover",
			benches: []Bench{ok(PkgRelay, "BenchmarkHandover/msgs-1",
				"ms/handover-p50", 140.0, "ms/handover-p99", 510.0, "ms/direct-p50", 2.3)},
			verdict: Missed, ratios: 1, measuredLen: 2, baselines: 1,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			var res Results
			res.Add(tc.benches...)
			row := BuildRow(rowSpec(t, tc.row), &res)
			if row.Verdict != tc.verdict || row.Note != tc.note {
				t.Errorf("verdict %q (%q), want %q (%q)", row.Verdict, row.Note, tc.verdict, tc.note)
			}
			if len(row.Ratios) != tc.ratios || len(row.Measured) != tc.measuredLen || len(row.Baseline) != tc.baselines {
				t.Errorf("row %+v: want %d ratios, %d measured, %d baseline values", row, tc.ratios, tc.measuredLen, tc.baselines)
			}
		})
	}
}

func TestAddOutput(t *testing.T) {
	var res Results
	res.AddOutput(PkgPeer, benchout.Output{
		Results: []benchout.Result{{Name: "BenchmarkMCPStartToInitialize", Iterations: 1, Metrics: []benchout.Metric{{Value: 17, Unit: "init-p50-ms"}}}},
		Skipped: map[string]string{"BenchmarkLANDiscovery": "lan_test.go:12: setup\nlan_test.go:14: needs root (netns)"},
		Failed:  map[string]string{"BenchmarkLocalDiscovery": "x_test.go:1: boom"},
	})
	list := res.List()
	if len(list) != 3 {
		t.Fatalf("%d benchmarks: %+v", len(list), list)
	}
	if list[1].Status != StatusSkipped || list[1].Reason != "needs root (netns)" {
		t.Errorf("skip recorded as %+v", list[1])
	}
	if list[2].Status != StatusFailed {
		t.Errorf("failure recorded as %+v", list[2])
	}
	res.Add(ok(PkgPeer, "BenchmarkMCPStartToInitialize", "init-p50-ms", 18.0))
	if v, found, _, _ := res.metric(Ref{PkgPeer, "BenchmarkMCPStartToInitialize"}, "init-p50-ms"); !found || v != 18 || len(res.List()) != 3 {
		t.Errorf("a later entry did not replace the earlier: %v %v %+v", v, found, res.List())
	}
}

func TestAddRound(t *testing.T) {
	ref := Ref{PkgRelay, "BenchmarkXProcRelayThroughput/1KiB"}
	round := func(v ...float64) Bench {
		b := Bench{Ref: ref, Status: StatusOK, Iterations: 1}
		for i, x := range v {
			b.Metrics = append(b.Metrics, benchout.Metric{Value: x, Unit: []string{"msgs/s", "p50-us"}[i]})
		}
		return b
	}
	var res Results
	res.AddRound(round(40000, 300)) // a first round is recorded as Add does
	if n := res.rounds(ref); n != 1 {
		t.Fatalf("rounds after one = %d", n)
	}
	res.AddRound(round(60000, 100))
	if v, _, _, _ := res.metric(ref, "msgs/s"); v != 50000 {
		t.Errorf("median of two = %v, want their mean 50000", v)
	}
	res.AddRound(round(55000)) // a round without p50-us: the median is over those that have it
	if v, _, _, _ := res.metric(ref, "msgs/s"); v != 55000 {
		t.Errorf("median of three = %v, want 55000", v)
	}
	if v, _, _, _ := res.metric(ref, "p50-us"); v != 200 {
		t.Errorf("median of p50-us over the two rounds that have it = %v, want 200", v)
	}
	if n := res.rounds(ref); n != 3 || len(res.List()) != 1 {
		t.Errorf("rounds = %d, entries %d", n, len(res.List()))
	}
	res.AddRound(Bench{Ref: ref, Status: StatusFailed, Reason: "boom"}) // a failed round is not hidden
	if _, ok, status, _ := res.metric(ref, "msgs/s"); ok || status != StatusFailed {
		t.Errorf("after a failed round: ok %v, status %q", ok, status)
	}

	rows, _, err := Select("^relay-throughput$")
	if err != nil {
		t.Fatal(err)
	}
	var two Results
	two.AddRound(round(40000), ok(PkgRelay, "BenchmarkXProcTransportThroughput/1KiB-goroutines-64", "msgs/s", 1e5))
	two.AddRound(round(60000), round(70000)) // rounds 2 and 3 of the relay; median 60000
	row := BuildRow(rows[0], &two)
	if row.Verdict != Met || row.Note != "medians of 3 interleaved runs" {
		t.Errorf("row: verdict %q, note %q", row.Verdict, row.Note)
	}
	// relay 64 KiB paced, NATS plain and TLS, relay and transport throughput, NATS request-reply,
	// JetStream sync always and default sync
	if n, refs := RoundRefs(Rows()); n != 3 || len(refs) != 8 {
		t.Errorf("RoundRefs(Rows()) = %d, %v", n, refs)
	}
}

func TestSelectAndNeeds(t *testing.T) {
	tests := map[string]struct {
		only           string
		rows, curves   []string
		wantErr        bool
		needs, notNeed []Ref
	}{
		"everything": {only: "", rows: nil, curves: nil},
		"one row and its curve": {
			only: "^membership$", rows: []string{"membership"}, curves: []string{"membership"},
			needs:   []Ref{{PkgMesh, "BenchmarkConvergence/peers-100"}, {PkgMesh, "BenchmarkStockConvergence/peers-200"}},
			notNeed: []Ref{{PkgMesh, "BenchmarkFailureDetection/peers-100"}},
		},
		"vs NATS lines: both sides paced": {
			only: "vs-nats", rows: []string{"relay-latency-vs-nats", "relay-latency-64k-vs-nats", "relay-latency-vs-nats-tls", "relay-latency-64k-vs-nats-tls", "relay-throughput-vs-nats"},
			needs: []Ref{
				{PkgNATS, NATSOneWay1K}, {PkgNATS, NATSOneWay64K}, {PkgNATS, NATSOneWay1KTLS}, {PkgNATS, NATSOneWay64KTLS}, {PkgNATS, NATSRequestReply},
				{PkgRelay, "BenchmarkXProcRelaySend/1KiB-paced-500us"}, {PkgRelay, "BenchmarkXProcRelaySend/64KiB-paced-500us"},
			},
			notNeed: []Ref{
				{PkgRelay, "BenchmarkXProcRelaySend/1KiB"}, {PkgRelay, "BenchmarkXProcRelaySend/64KiB"},
				{PkgNATS, "OneWay/1KiB/publishers-1"}, {PkgNATS, "OneWay/64KiB/publishers-1/tls"},
			},
		},
		"JetStream lines: the relay's throughput against both durable cases": {
			only: "jetstream", rows: []string{"relay-throughput-vs-jetstream-sync", "relay-throughput-vs-jetstream"},
			needs: []Ref{
				{PkgRelay, "BenchmarkXProcRelayThroughput/1KiB"}, {PkgNATS, NATSJetStreamSyncAlways}, {PkgNATS, NATSJetStream},
			},
			notNeed: []Ref{{PkgNATS, NATSRequestReply}, {PkgRelay, "BenchmarkXProcTransportThroughput/1KiB-goroutines-64"}},
		},
		"relay throughput and every line under it": {
			only: "^relay-throughput", rows: []string{"relay-throughput", "relay-throughput-vs-nats", "relay-throughput-vs-jetstream-sync", "relay-throughput-vs-jetstream", "relay-throughput-lifted"},
			needs: []Ref{
				{PkgRelay, "BenchmarkXProcRelayThroughput/1KiB"}, {PkgRelay, "BenchmarkXProcTransportThroughput/1KiB-goroutines-64"},
				{PkgRelay, "BenchmarkXProcRelayThroughput/1KiB-rate-lifted"},
				{PkgNATS, NATSRequestReply}, {PkgNATS, NATSJetStreamSyncAlways}, {PkgNATS, NATSJetStream},
			},
			notNeed: []Ref{{PkgNATS, NATSOneWay1K}},
		},
		"the relay latency row reads the paced relay against raw TCP paced alike": {
			only: "^relay-latency$", rows: []string{"relay-latency"},
			needs:   []Ref{{PkgRelay, "BenchmarkXProcRelaySend/1KiB-paced-500us"}, {PkgRelay, "BenchmarkXProcRawTCP/1KiB-paced-500us"}},
			notNeed: []Ref{{PkgRelay, "BenchmarkXProcRelaySend/1KiB"}, {PkgNATS, NATSOneWay1K}},
		},
		"the relay sizes curve is back to back, NATS over TLS included": {
			only: "^relay-sizes$", curves: []string{"relay-sizes"},
			needs: []Ref{
				{PkgRelay, "BenchmarkXProcRelaySend/1KiB"}, {PkgRelay, "BenchmarkXProcRelaySend/64KiB"},
				{PkgRelay, "BenchmarkXProcRawTCP/1KiB"}, {PkgRelay, "BenchmarkXProcRawTCP/64KiB"},
				{PkgNATS, "OneWay/1KiB/publishers-1"}, {PkgNATS, "OneWay/64KiB/publishers-1"},
				{PkgNATS, "OneWay/1KiB/publishers-1/tls"}, {PkgNATS, "OneWay/64KiB/publishers-1/tls"},
			},
			notNeed: []Ref{
				{PkgNATS, NATSRequestReply}, {PkgNATS, NATSOneWay1K}, {PkgNATS, NATSOneWay64K}, {PkgNATS, NATSOneWay1KTLS}, {PkgNATS, NATSOneWay64KTLS},
				{PkgRelay, "BenchmarkXProcRelaySend/1KiB-paced-500us"}, {PkgRelay, "BenchmarkXProcRawTCP/1KiB-paced-500us"},
			},
		},
		"bad regex": {only: "(", wantErr: true},
		"no match":  {only: "nothing-is-called-this", wantErr: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			rows, curves, err := Select(tc.only)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v", err)
			}
			if err != nil {
				return
			}
			if tc.only == "" {
				if len(rows) != len(Rows()) || len(curves) != len(Curves()) {
					t.Fatalf("everything: %d rows, %d curves", len(rows), len(curves))
				}
				return
			}
			var gotRows, gotCurves []string
			for _, r := range rows {
				gotRows = append(gotRows, r.Key)
			}
			for _, c := range curves {
				gotCurves = append(gotCurves, c.Key)
			}
			if !reflect.DeepEqual(gotRows, tc.rows) || !reflect.DeepEqual(gotCurves, tc.curves) {
				t.Fatalf("selected rows %v curves %v, want %v %v", gotRows, gotCurves, tc.rows, tc.curves)
			}
			needs := Needs(rows, curves)
			seen := map[Ref]bool{}
			for _, r := range needs {
				if seen[r] {
					t.Errorf("%v needed twice", r)
				}
				seen[r] = true
			}
			for _, r := range tc.needs {
				if !seen[r] {
					t.Errorf("%v not needed; needs = %v", r, needs)
				}
			}
			for _, r := range tc.notNeed {
				if seen[r] {
					t.Errorf("%v needed", r)
				}
			}
		})
	}
}

func TestBuildCurve(t *testing.T) {
	var res Results
	res.Add(
		ok(PkgMesh, "BenchmarkConvergence/peers-10", "ms/total", 120.0),
		ok(PkgMesh, "BenchmarkConvergence/peers-100", "ms/total", 1800.0),
		ok(PkgMesh, "BenchmarkStockConvergence/peers-10", "ms/total", 100.0),
	)
	var spec CurveSpec
	for _, c := range Curves() {
		if c.Key == "membership" {
			spec = c
		}
	}
	c := BuildCurve(spec, &res)
	want := []Point{{X: 10, Y: 120, Source: "mesh:BenchmarkConvergence/peers-10 ms/total"}, {X: 100, Y: 1800, Source: "mesh:BenchmarkConvergence/peers-100 ms/total"}}
	if !reflect.DeepEqual(c.Series[0].Points, want) || len(c.Series[1].Points) != 1 || c.Empty() {
		t.Fatalf("curve %+v", c)
	}
	if y, ok := c.Series[0].At(100); !ok || y != 1800 {
		t.Errorf("At(100) = %v %v", y, ok)
	}
	if _, ok := c.Series[0].At(50); ok {
		t.Error("At(50) found a point that was not measured")
	}
	h, rows := c.CurveTable()
	if len(h) != 3 || len(rows) != 4 || rows[1][1] != "—" || rows[2][1] != "1,800" {
		t.Errorf("table %v %v", h, rows)
	}
	if !BuildCurve(spec, &Results{}).Empty() {
		t.Error("a curve without results is not empty")
	}
}

// sampleReport is a report with a bit of everything.
func sampleReport() *Report {
	var res Results
	res.Add(
		ok(PkgRelay, "BenchmarkXProcRelaySend/1KiB", "p50-deliver-us", 41.2, "p99-deliver-us", 154.0),
		ok(PkgRelay, "BenchmarkXProcRawTCP/1KiB-paced-500us", "p50-oneway-us", 9.1, "p99-oneway-us", 24.9),
		ok(PkgRelay, "BenchmarkXProcRelaySend/1KiB-paced-500us", "p50-durable-us", 61.0, "p99-durable-us", 180.0),
		ok(PkgNATS, NATSOneWay1K, NATSOneWayP50Unit, 32.0, NATSOneWayP99Unit, 101.0),
		ok(PkgNATS, NATSOneWay1KTLS, NATSOneWayP50Unit, 122.0, NATSOneWayP99Unit, 244.0),
		ok(PkgNATS, "OneWay/1KiB/publishers-1", NATSOneWayP50Unit, 17.5, NATSOneWayP99Unit, 33.0),
		ok(PkgMesh, "BenchmarkConvergence/peers-100", "ms/total", 1730.0),
		Bench{Ref: Ref{PkgPeer, "BenchmarkLANDiscovery"}, Status: StatusSkipped, Reason: "needs root"},
		ok(PkgNATS, NATSJetStreamSyncAlways, NATSMsgsUnit, 5200.0, "msgs", 20032.0, "stored-msgs", 22016.0),
	)
	for _, v := range []float64{39868, 45764, 43209} { // kept in rounds
		res.AddRound(ok(PkgRelay, "BenchmarkXProcRelayThroughput/1KiB", "msgs/s", v))
	}
	rows, curves := Build(Rows(), Curves(), &res)
	return &Report{
		Format: FormatVersion, Date: time.Date(2026, 11, 22, 4, 30, 0, 0, time.UTC), Commit: "84b42f7-dirty",
		Mode: "full", Machine: Machine{NProc: 2, GOMAXPROCS: 2, CPU: "Xeon", Kernel: "6.18", GoVersion: "go1.26.8"},
		LoadStart: [3]float64{1.5, 1, 0.5}, LoadEnd: [3]float64{2, 1.2, 0.6}, Seconds: 192.3,
		Rows: rows, Curves: curves, Benchmarks: res.List(),
		Processes: []Process{{Pkg: PkgRelay, Bench: "^(X)$", Seconds: 1.5}},
	}
}

func TestJSONRoundTrip(t *testing.T) {
	r := sampleReport()
	path := filepath.Join(t.TempDir(), "results.json")
	if err := r.WriteFile(path); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, []byte(`\u003c`)) || !bytes.Contains(raw, []byte("< NATS")) {
		t.Error("JSON text is escaped for HTML")
	}
	got, err := ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, r) {
		t.Fatalf("round trip differs:\n got %+v\nwant %+v", got, r)
	}
	// A file written before rounds existed has none, and reads as one run.
	old, err := Decode([]byte(`{"format": 1, "benchmarks": [{"pkg": "relay", "name": "X", "status": "ok", "metrics": [{"value": 1, "unit": "msgs/s"}]}]}`))
	if err != nil || len(old.Benchmarks) != 1 || old.Benchmarks[0].Rounds != nil {
		t.Errorf("a report without rounds: %+v, %v", old, err)
	}
	for name, in := range map[string]string{
		"not json":      "{",
		"other version": `{"format": 99}`,
		"no format":     `{"rows": []}`,
	} {
		if _, err := Decode([]byte(in)); !errors.Is(err, ErrFormat) {
			t.Errorf("%s: err = %v, want ErrFormat", name, err)
		}
	}
	if _, err := ReadFile(filepath.Join(t.TempDir(), "none.json")); err == nil {
		t.Error("reading a missing file succeeded")
	}
}

func TestWriteText(t *testing.T) {
	var buf bytes.Buffer
	sampleReport().WriteText(&buf)
	out := buf.String()
	for _, want := range []string{
		"date: 2026-11-22 04:30:00 UTC", "commit: 84b42f7-dirty", "2 CPUs (GOMAXPROCS 2), Xeon, Linux 6.18, go1.26.8",
		"start 1.50 1.00 0.50, end 2.00 1.20 0.60", "run time: 3m12.3s",
		"| relay one-way latency to durable delivery, 1 KiB, separate processes, secure, paced 500 µs ", "| p50 ≤ 3× raw TCP, p99 ≤ 5×, paced alike ",
		"| p50 61.0 µs, p99 180 µs ", "raw TCP one-way, paced alike: p50 9.10 µs, p99 24.9 µs", "p50 6.70×, p99 7.23×", "MISSED",
		"|   ↳ vs NATS pub→sub, 1 KiB, both paced 500 µs ", "| p50 61.0 µs, p99 180 µs ",
		"NATS: p50 32.0 µs, p99 101 µs", "p50 1.91×, p99 1.78×", "1.73 s",
		"|   ↳ vs NATS over TLS pub→sub, 1 KiB, both paced 500 µs ", "| < NATS over TLS (p50 and p99) ",
		"NATS over TLS: p50 122 µs, p99 244 µs", "p50 0.5×, p99 0.738× ", "| met ",
		"|   ↳ vs NATS over TLS pub→sub, 64 KiB, both paced 500 µs ", "missing (no output from BenchmarkXProcRelaySend/64KiB-paced-500us)",
		"skipped (needs root)", "missing (no output from QuestionAnswer/1KiB)",
		// The relay's median throughput against JetStream, fsync'd and not.
		"|   ↳ vs NATS JetStream publish, stored and fsync'd before the ack (sync always) ", "| ≥ JetStream ",
		"| 43,209 msg/s ", "| JetStream, sync always: 5,200 msg/s ", "| 8.31× ", "| met (medians of 3 interleaved runs) ",
		"|   ↳ vs NATS JetStream publish, stored in the page cache before the ack (default sync) ",
		"| JetStream, default sync: missing ", "| missing (no NATS JetStream default-sync baseline; medians of 3 interleaved runs) ",
		// The sizes curve shows the back-to-back runs, not the paced ones of the rows.
		"| 1                  | 41.2      | 154       | —           | —           | 17.5     | 33.0     | —",
		"Membership convergence: all see all (ms)", "| 100   | 1,730", "(no data: its benchmarks are missing)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("text lacks %q:\n%s", want, out)
		}
	}
	// Every table line of the summary has the same width.
	width := -1
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "| SPEC row") {
			width = len([]rune(l))
			continue
		}
		if width > 0 && strings.HasPrefix(l, "|") {
			if len([]rune(l)) != width {
				t.Errorf("misaligned line %q", l)
			}
		} else if width > 0 {
			break
		}
	}
}

func TestWriteMarkdown(t *testing.T) {
	var buf bytes.Buffer
	sampleReport().WriteMarkdown(&buf, map[string]string{"membership": "bench/charts/membership.png"})
	out := buf.String()
	for _, want := range []string{"## Summary against SPEC section 10", "- commit: 84b42f7-dirty", "| SPEC row",
		"### Membership convergence: all see all (ms)", "![Membership convergence: all see all](bench/charts/membership.png)"} {
		if !strings.Contains(out, want) {
			t.Errorf("markdown lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "names.png") {
		t.Error("markdown links a chart that was not written")
	}
}

func TestCompare(t *testing.T) {
	old := sampleReport()
	cur := sampleReport()
	cur.Commit = "abc1234"
	cur.Mode = "quick"
	// The relay got 10% slower at p50; membership lost its result; a new NATS figure appeared.
	var res Results
	res.Add(
		ok(PkgRelay, "BenchmarkXProcRelaySend/1KiB", "p50-deliver-us", 41.2, "p99-deliver-us", 154.0),
		ok(PkgRelay, "BenchmarkXProcRawTCP/1KiB-paced-500us", "p50-oneway-us", 9.1, "p99-oneway-us", 24.9),
		ok(PkgRelay, "BenchmarkXProcRelaySend/1KiB-paced-500us", "p50-durable-us", 61.0*1.1, "p99-durable-us", 180.0),
		ok(PkgNATS, NATSOneWay1K, NATSOneWayP50Unit, 32.0, NATSOneWayP99Unit, 101.0),
		ok(PkgNATS, NATSOneWay1KTLS, NATSOneWayP50Unit, 122.0, NATSOneWayP99Unit, 244.0),
		ok(PkgNATS, NATSRequestReply, NATSMsgsUnit, 40000.0),
	)
	cur.Rows, cur.Curves = Build(Rows(), Curves(), &res)
	changes := Compare(old, cur)
	byKey := map[string]Change{}
	for _, c := range changes {
		if _, dup := byKey[c.Key]; dup {
			t.Errorf("%q listed twice", c.Key)
		}
		byKey[c.Key] = c
	}
	if c := byKey["relay-latency p50"]; c.Old == nil || c.New == nil || !c.HasPct || c.Percent < 9.99 || c.Percent > 10.01 {
		t.Errorf("relay p50 change %+v", c)
	}
	if c := byKey["relay-latency p99"]; !c.HasPct || c.Percent != 0 {
		t.Errorf("relay p99 change %+v", c)
	}
	if c, found := byKey["membership"]; !found || c.Old == nil || c.New != nil {
		t.Errorf("membership (only in old) %+v", c)
	}
	if c, found := byKey["relay-throughput-vs-nats baseline NATS"]; !found || c.Old != nil || c.New == nil || c.HasPct {
		t.Errorf("NATS throughput (only in new) %+v; changes %v", c, changes)
	}
	if c := byKey["relay-latency-vs-nats-tls baseline NATS over TLS p50"]; c.Old == nil || c.New == nil || !c.HasPct || c.Percent != 0 {
		t.Errorf("NATS over TLS p50 change %+v", c)
	}
	// The vs-NATS lines read the same paced relay run as relay-latency: its figures are
	// listed once, under the first line that shows them.
	for _, k := range []string{"relay-latency-vs-nats p50", "relay-latency-vs-nats-tls p50"} {
		if _, found := byKey[k]; found {
			t.Errorf("%s: the relay figures of relay-latency are listed again", k)
		}
	}
	var buf bytes.Buffer
	WriteComparison(&buf, old, cur)
	out := buf.String()
	for _, want := range []string{"old: 84b42f7-dirty", "new: abc1234", "different modes", "| relay-latency p50", "+10.0%"} {
		if !strings.Contains(out, want) {
			t.Errorf("comparison lacks %q:\n%s", want, out)
		}
	}
	if !regexp.MustCompile(`\| membership +\| met +\| missing`).MatchString(out) {
		t.Errorf("comparison lacks membership's verdict change:\n%s", out)
	}
}

func TestFormat(t *testing.T) {
	tests := map[string]struct {
		v    Value
		want string
	}{
		"microseconds":       {Value{Value: 41.23, Unit: "us"}, "41.2 µs"},
		"small microseconds": {Value{Value: 9.1, Unit: "us"}, "9.10 µs"},
		"milliseconds":       {Value{Value: 325, Unit: "ms"}, "325 ms"},
		"seconds":            {Value{Value: 8340, Unit: "ms"}, "8.34 s"},
		"rate":               {Value{Value: 19150.4, Unit: "msgs/s"}, "19,150 msg/s"},
		"million":            {Value{Value: 1234567, Unit: "msgs/s"}, "1,234,567 msg/s"},
		"percent":            {Value{Value: 0.45, Unit: "%"}, "0.45%"},
		"ratio":              {Value{Value: 1.8, Unit: "x"}, "1.80×"},
		"other unit":         {Value{Value: 17.7, Unit: "MB"}, "17.7 MB"},
		"zero":               {Value{Value: 0, Unit: ""}, "0"},
		"negative thousands": {Value{Value: -2500, Unit: ""}, "-2,500"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := FormatValue(tc.v); got != tc.want {
				t.Fatalf("FormatValue(%+v) = %q, want %q", tc.v, got, tc.want)
			}
		})
	}
}

// FuzzDecode: --compare reads a JSON file someone hands it; whatever it holds, Decode must
// not panic, and a report it accepts must render.
func FuzzDecode(f *testing.F) {
	b, err := sampleReport().Encode()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add([]byte(`{"format":1,"rows":[{"key":"x","measured":[{"name":"p50","value":1,"unit":"us"}]}],"curves":[{"key":"c","xs":[1],"series":[{"name":"s","points":[{"x":1,"y":2}]}]}]}`))
	f.Add([]byte(`{"format":1}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		r, err := Decode(in)
		if err != nil {
			return
		}
		var buf bytes.Buffer
		r.WriteText(&buf)
		r.WriteMarkdown(&buf, nil)
		WriteComparison(&buf, r, r)
	})
}

// TestProcsNames: the rows name the multi-process scenarios as package procs records them.
func TestProcsNames(t *testing.T) {
	for _, n := range []string{ProcsQA, ProcsHub, ProcsFsync, ProcsFsyncCount, ProcsAllSee20, ProcsAllSee50,
		ProcsStockAllSee20, ProcsStockAllSee50, ProcsIdle20, ProcsIdlePython, ProcsOneShot, ProcsMCPStart, ProcsCrashReclaim} {
		if !slices.Contains(procs.All, n) {
			t.Errorf("%s is not a scenario of package procs", n)
		}
	}
}
