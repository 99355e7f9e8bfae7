package report

import (
	"fmt"
	"regexp"
	"slices"
)

// This file is the contract between the runner and the product's benchmarks: which
// benchmark and metric each row and curve reads, and how a row is judged. Metric units are
// the ones the benchmarks report with b.ReportMetric, exactly.

// M is one metric a row reads.
type M struct {
	Ref
	Unit     string // as reported: "p50-deliver-us"
	Label    string // as shown: "p50"
	Show     string // display unit: "us", "ms", "msgs/s", "MB", "%"
	Optional bool   // shown when present; its absence does not make the row missing
}

// RowSpec is one line of the summary table.
type RowSpec struct {
	Key          string // for --only and for comparing runs
	Title        string // the SPEC section 10 row
	Target       string
	Measured     []M
	BaselineName string // what the baseline is, shown before its values
	Baseline     []M
	// Ratios are measured/baseline, each named by a label present in both Measured and
	// Baseline.
	Ratios []string
	// Judge gives the verdict once every required measured value is there.
	Judge func(v Values) (verdict, note string)
	// Rounds, when over 1, is how many times a full run measures the row's benchmarks and
	// baselines, interleaved (all of them, then all again), each value then being the median:
	// for rows at the edge, whose verdict a baseline measured minutes apart on a drifting
	// machine could flip. Quick runs measure once.
	Rounds int
}

// edgeRounds is the Rounds of the rows whose verdict was at the edge in recent runs: the
// relay's throughput and its 64 KiB latency against NATS.
const edgeRounds = 3

// withRounds returns r measuring n rounds.
func withRounds(r RowSpec, n int) RowSpec {
	r.Rounds = n
	return r
}

// RoundRefs returns the most Rounds any of rows asks for, and the benchmarks those rows read.
func RoundRefs(rows []RowSpec) (rounds int, refs []Ref) {
	for _, r := range rows {
		if r.Rounds <= 1 {
			continue
		}
		rounds = max(rounds, r.Rounds)
		for _, mm := range append(slices.Clone(r.Measured), r.Baseline...) {
			if !slices.Contains(refs, mm.Ref) {
				refs = append(refs, mm.Ref)
			}
		}
	}
	return rounds, refs
}

// Verdicts.
const (
	Met     = "met"
	Missed  = "MISSED"
	Skipped = "skipped"
	Missing = "missing"
)

// XPoint is one point of a curve's x axis and the tag that names its benchmark.
type XPoint struct {
	X   float64
	Tag string // substituted for %s in SeriesSpec.NameFmt
}

// SeriesSpec is one line of a curve: benchmark NameFmt (with the point's tag) in Pkg.
type SeriesSpec struct {
	Name    string
	Pkg     string
	NameFmt string
	Unit    string
	Chart   bool // drawn on the chart (every series is in the table)
	// Baseline marks a baseline's series: a chart of baselines alone is not drawn.
	Baseline bool
}

// CurveSpec is one scaling curve: a small table, and a chart when Chart names a file.
type CurveSpec struct {
	Key         string
	Title       string
	XLabel      string // with its unit, if any
	YLabel      string // what the values are, without unit (the chart adds Unit)
	Unit        string // of every series' values: "us" or "ms"
	Xs          []XPoint
	Series      []SeriesSpec
	Target      float64 // drawn as a horizontal line when > 0
	TargetLabel string
	Chart       string // PNG file name; "" for none
	LogX        bool
	// LogY allows a logarithmic y axis on the chart when the values spread widely.
	LogY bool
}

// Refs returns the benchmarks the curve reads.
func (c CurveSpec) Refs() []Ref {
	var refs []Ref
	for _, s := range c.Series {
		for _, x := range c.Xs {
			refs = append(refs, Ref{s.Pkg, fmt.Sprintf(s.NameFmt, x.Tag)})
		}
	}
	return refs
}

// Refs returns the benchmarks the row reads.
func (r RowSpec) Refs() []Ref {
	var refs []Ref
	for _, m := range append(append([]M(nil), r.Measured...), r.Baseline...) {
		refs = append(refs, m.Ref)
	}
	return refs
}

// Names of the NATS baseline's cases (natsbase.LatencyCase.Name and ThroughputCase.Name).
const (
	// The relay-vs-NATS rows compare runs paced alike (500 µs of think time before each
	// message, on both sides), so that neither side has warm processes the other lacks.
	NATSOneWay1K      = "OneWay/1KiB/publishers-1/paced-500us"
	NATSOneWay64K     = "OneWay/64KiB/publishers-1/paced-500us"
	NATSOneWay1KTLS   = "OneWay/1KiB/publishers-1/paced-500us/tls"
	NATSOneWay64KTLS  = "OneWay/64KiB/publishers-1/paced-500us/tls"
	NATSOneWayFmt     = "OneWay/1KiB/publishers-%s"
	NATSRequestReply  = "RequestReply/1KiB/requesters-64"
	NATSOneWayP50Unit = "p50-oneway-us"
	NATSOneWayP99Unit = "p99-oneway-us"
	NATSMsgsUnit      = "msgs/s"
)

// Names of the durable NATS baseline's cases (natsbase.JetStreamCase.Name): JetStream
// publishes acknowledged once stored, with every message fsync'd before its ack (sync
// always) and with the server's default sync (written to the page cache, fsync'd every 2
// minutes). Their msgs/s is in NATSMsgsUnit.
const (
	NATSJetStreamSyncAlways = "JetStreamPublish/1KiB/publishers-64/sync-always"
	NATSJetStream           = "JetStreamPublish/1KiB/publishers-64/sync-default"
)

func m(pkg, name, unit, label, show string) M {
	return M{Ref: Ref{pkg, name}, Unit: unit, Label: label, Show: show}
}

func opt(x M) M { x.Optional = true; return x }

// Rows returns the summary table's rows, in order: the eleven rows of SPEC section 10, with
// "vs NATS" lines (core NATS, NATS over TLS, JetStream) under the relay rows.
func Rows() []RowSpec {
	relay1K := []M{
		m(PkgRelay, "BenchmarkXProcRelaySend/1KiB", "p50-deliver-us", "p50", "us"),
		m(PkgRelay, "BenchmarkXProcRelaySend/1KiB", "p99-deliver-us", "p99", "us"),
	}
	// Paced like the NATS cases of the vs-NATS rows.
	relay1KPaced := []M{
		m(PkgRelay, "BenchmarkXProcRelaySend/1KiB-paced-500us", "p50-deliver-us", "p50", "us"),
		m(PkgRelay, "BenchmarkXProcRelaySend/1KiB-paced-500us", "p99-deliver-us", "p99", "us"),
	}
	relay64KPaced := []M{
		m(PkgRelay, "BenchmarkXProcRelaySend/64KiB-paced-500us", "p50-deliver-us", "p50", "us"),
		m(PkgRelay, "BenchmarkXProcRelaySend/64KiB-paced-500us", "p99-deliver-us", "p99", "us"),
	}
	relayTput := []M{m(PkgRelay, "BenchmarkXProcRelayThroughput/1KiB", "msgs/s", "", "msgs/s")}
	return []RowSpec{
		{
			Key: "relay-latency", Title: "relay one-way latency, 1 KiB, separate processes, secure",
			Target: "p50 ≤ 100 µs, p99 ≤ 500 µs, ≤ 3× raw TCP",
			// The baseline is raw TCP paced 500 µs apart: a relay send waits for the
			// receiver's fsync before the next, so both processes idle between messages
			// and every message pays the wake-up; back-to-back raw TCP does not.
			Measured: relay1K, BaselineName: "raw TCP one-way, paced",
			Baseline: []M{
				m(PkgRelay, "BenchmarkXProcRawTCP/1KiB-paced-500us", "p50-oneway-us", "p50", "us"),
				m(PkgRelay, "BenchmarkXProcRawTCP/1KiB-paced-500us", "p99-oneway-us", "p99", "us"),
			},
			Ratios: []string{"p50", "p99"},
			Judge: func(v Values) (string, string) {
				ok := v.M("p50") <= 100 && v.M("p99") <= 500
				r50, ok50 := v.R("p50")
				r99, ok99 := v.R("p99")
				if !ok50 || !ok99 {
					return verdict(ok), "ratio not judged: no raw TCP baseline"
				}
				return verdict(ok && r50 <= 3 && r99 <= 3), ""
			},
		},
		natsLatencyRow("relay-latency-vs-nats", "NATS", "1 KiB", relay1KPaced, NATSOneWay1K),
		withRounds(natsLatencyRow("relay-latency-64k-vs-nats", "NATS", "64 KiB", relay64KPaced, NATSOneWay64K), edgeRounds),
		// The relay authenticates every frame (SPEC section 7); NATS over TLS 1.3 is the
		// broker at comparable security.
		natsLatencyRow("relay-latency-vs-nats-tls", "NATS over TLS", "1 KiB", relay1KPaced, NATSOneWay1KTLS),
		withRounds(natsLatencyRow("relay-latency-64k-vs-nats-tls", "NATS over TLS", "64 KiB", relay64KPaced, NATSOneWay64KTLS), edgeRounds),
		{
			Key: "relay-throughput", Title: "relay throughput, 1 KiB, acknowledged, 64 senders",
			Target: "≥ 50,000 msg/s", Measured: relayTput, BaselineName: "transport alone",
			Baseline: []M{m(PkgRelay, "BenchmarkXProcTransportThroughput/1KiB-goroutines-64", "msgs/s", "", "msgs/s")},
			Ratios:   []string{""},
			Judge:    func(v Values) (string, string) { return verdict(v.M("") >= 50000), "" },
			Rounds:   edgeRounds,
		},
		brokerTputRow("relay-throughput-vs-nats", "  ↳ vs NATS request-reply, 1 KiB, 64 requesters",
			"NATS", "NATS", NATSRequestReply, "no NATS baseline", relayTput),
		// A NATS request-reply is acknowledged before anything is stored; the relay's only
		// once the recipient's inbox log is fdatasync'd (group-committed per batch). The
		// like-for-like broker is JetStream with sync always, every message fsync'd before
		// its ack; with the default sync, its ack means the page cache.
		brokerTputRow("relay-throughput-vs-jetstream-sync", "  ↳ vs NATS JetStream publish, stored and fsync'd before the ack (sync always)",
			"JetStream", "JetStream, sync always", NATSJetStreamSyncAlways, "no NATS JetStream sync-always baseline", relayTput),
		brokerTputRow("relay-throughput-vs-jetstream", "  ↳ vs NATS JetStream publish, stored in the page cache before the ack (default sync)",
			"JetStream", "JetStream, default sync", NATSJetStream, "no NATS JetStream default-sync baseline", relayTput),
		{
			Key: "mcp-send-listen", Title: "MCP paf_send on A → paf_listen returns on B",
			Target: "p50 ≤ 2 ms",
			Measured: []M{
				m(PkgPeer, "BenchmarkMCPSendToListen", "send-to-listen-p50-ms", "p50", "ms"),
				opt(m(PkgPeer, "BenchmarkMCPSendToListen", "send-to-listen-p99-ms", "p99", "ms")),
			},
			BaselineName: "trivial tool call",
			Baseline:     []M{m(PkgPeer, "BenchmarkMCPSendToListen", "check-rtt-p50-ms", "p50", "ms")},
			Ratios:       []string{"p50"},
			Judge:        func(v Values) (string, string) { return verdict(v.M("p50") <= 2), "" },
		},
		{
			Key: "membership", Title: "membership: 100 peers in one process, all see all",
			Target:       "≤ 3 s",
			Measured:     []M{m(PkgMesh, "BenchmarkConvergence/peers-100", "ms/total", "", "ms")},
			BaselineName: "stock memberlist",
			Baseline:     []M{m(PkgMesh, "BenchmarkStockConvergence/peers-100", "ms/total", "", "ms")},
			Ratios:       []string{""},
			Judge:        func(v Values) (string, string) { return verdict(v.M("") <= 3000), "" },
		},
		{
			Key: "names", Title: "a name claim seen by all of 100 peers",
			Target: "≤ 1 s (mean)",
			Measured: []M{
				m(PkgMesh, "BenchmarkNamePropagation/peers-100", "ms/claim-mean", "mean", "ms"),
				opt(m(PkgMesh, "BenchmarkNamePropagation/peers-100", "ms/claim-p99", "p99", "ms")),
				opt(m(PkgMesh, "BenchmarkNamePropagation/peers-100", "ms/claim-max", "max", "ms")),
			},
			BaselineName: "stock UpdateNode",
			Baseline: []M{
				m(PkgMesh, "BenchmarkStockPropagation/peers-100", "ms/update-mean", "mean", "ms"),
				opt(m(PkgMesh, "BenchmarkStockPropagation/peers-100", "ms/update-p99", "p99", "ms")),
			},
			Ratios: []string{"mean"},
			Judge:  func(v Values) (string, string) { return verdict(v.M("mean") <= 1000), "" },
		},
		{
			Key: "failure", Title: "a hard-killed peer marked dead by all of 100",
			Target: "≤ 8 s (mean)",
			Measured: []M{
				m(PkgMesh, "BenchmarkFailureDetection/peers-100", "ms/dead-mean", "mean", "ms"),
				opt(m(PkgMesh, "BenchmarkFailureDetection/peers-100", "ms/dead-max", "max", "ms")),
			},
			BaselineName: "stock memberlist",
			Baseline:     []M{m(PkgMesh, "BenchmarkStockFailureDetection/peers-100", "ms/dead-mean", "mean", "ms")},
			Ratios:       []string{"mean"},
			Judge:        func(v Values) (string, string) { return verdict(v.M("mean") <= 8000), "" },
		},
		{
			Key: "handover", Title: "future-message handover after the claim (10 peers, 1 message)",
			Target: "p99 ≤ 500 ms",
			Measured: []M{
				opt(m(PkgRelay, "BenchmarkHandover/msgs-1", "ms/handover-p50", "p50", "ms")),
				m(PkgRelay, "BenchmarkHandover/msgs-1", "ms/handover-p99", "p99", "ms"),
			},
			BaselineName: "direct send",
			Baseline:     []M{m(PkgRelay, "BenchmarkHandover/msgs-1", "ms/direct-p50", "p50", "ms")},
			Ratios:       []string{"p50"},
			Judge:        func(v Values) (string, string) { return verdict(v.M("p99") <= 500), "" },
		},
		{
			Key: "mcp-start", Title: "`paf-peer mcp` process start to initialize result",
			Target:       "median ≤ 20 ms",
			Measured:     []M{m(PkgPeer, "BenchmarkMCPStartToInitialize", "init-p50-ms", "median", "ms")},
			BaselineName: "`paf-peer version`",
			Baseline:     []M{m(PkgPeer, "BenchmarkMCPStartToInitialize", "version-p50-ms", "median", "ms")},
			Ratios:       []string{"median"},
			Judge:        func(v Values) (string, string) { return verdict(v.M("median") <= 20), "" },
		},
		{
			Key: "mcp-idle", Title: "idle `paf-peer mcp` peer",
			Target: "RSS ≤ 30 MB, CPU ≤ 0.5% of a core",
			Measured: []M{
				m(PkgPeer, "BenchmarkMCPIdle", "rss-a-MB", "RSS", "MB"),
				m(PkgPeer, "BenchmarkMCPIdle", "cpu-a-%", "CPU", "%"),
			},
			Judge: func(v Values) (string, string) { return verdict(v.M("RSS") <= 30 && v.M("CPU") <= 0.5), "" },
		},
		{
			Key: "local-discovery", Title: "a new peer on the same machine sees the others",
			Target: "≤ 300 ms (p50)",
			Measured: []M{
				m(PkgPeer, "BenchmarkLocalDiscovery", "ms/sees-all-p50", "p50", "ms"),
				opt(m(PkgPeer, "BenchmarkLocalDiscovery", "ms/sees-all-max", "max", "ms")),
			},
			BaselineName: "serving",
			Baseline:     []M{m(PkgPeer, "BenchmarkLocalDiscovery", "ms/serving-p50", "p50", "ms")},
			Ratios:       []string{"p50"},
			Judge:        func(v Values) (string, string) { return verdict(v.M("p50") <= 300), "" },
		},
		{
			Key: "lan-discovery", Title: "a new peer on another host (netns) found by mDNS",
			Target: "≤ 2 s (p50)",
			Measured: []M{
				m(PkgPeer, "BenchmarkLANDiscovery", "ms/found-p50", "p50", "ms"),
				opt(m(PkgPeer, "BenchmarkLANDiscovery", "ms/found-max", "max", "ms")),
			},
			BaselineName: "raw mDNS browse",
			Baseline:     []M{m(PkgPeer, "BenchmarkLANDiscovery", "ms/mdns-answer-p50", "p50", "ms")},
			Ratios:       []string{"p50"},
			Judge:        func(v Values) (string, string) { return verdict(v.M("p50") <= 2000), "" },
		},
	}
}

// natsLatencyRow is a "vs NATS" line: the relay's one-way latency against NATS publish to
// subscriber delivery for the same size, which a direct path should beat (issue 7). broker
// names the NATS variant: "NATS" or "NATS over TLS".
func natsLatencyRow(key, broker, size string, relay []M, natsCase string) RowSpec {
	return RowSpec{
		Key: key, Title: "  ↳ vs " + broker + " pub→sub, " + size + ", both paced 500 µs",
		Target: "< " + broker + " (p50 and p99)", Measured: relay, BaselineName: broker,
		Baseline: []M{
			m(PkgNATS, natsCase, NATSOneWayP50Unit, "p50", "us"),
			m(PkgNATS, natsCase, NATSOneWayP99Unit, "p99", "us"),
		},
		Ratios: []string{"p50", "p99"},
		Judge: func(v Values) (string, string) {
			r50, ok50 := v.R("p50")
			r99, ok99 := v.R("p99")
			if !ok50 || !ok99 {
				return Missing, "no " + broker + " baseline"
			}
			return verdict(r50 < 1 && r99 < 1), ""
		},
	}
}

// brokerTputRow is a line under the relay throughput row: the relay's rate against a broker
// case's msgs/s, met when at least the broker's (measured in rounds: it is at the edge).
func brokerTputRow(key, title, broker, baselineName, natsCase, missingNote string, relayTput []M) RowSpec {
	return RowSpec{
		Key: key, Title: title, Target: "≥ " + broker, Measured: relayTput, BaselineName: baselineName,
		Baseline: []M{m(PkgNATS, natsCase, NATSMsgsUnit, "", "msgs/s")},
		Ratios:   []string{""},
		Judge:    atLeastBaseline(missingNote),
		Rounds:   edgeRounds,
	}
}

// atLeastBaseline judges a throughput line against a broker: met when the relay's rate is at
// least the broker's; missing, with the note, when the broker's figure is not there.
func atLeastBaseline(note string) func(Values) (string, string) {
	return func(v Values) (string, string) {
		r, ok := v.R("")
		if !ok {
			return Missing, note
		}
		return verdict(r >= 1), ""
	}
}

func verdict(met bool) string {
	if met {
		return Met
	}
	return Missed
}

// Curves returns the scaling curves, in order.
func Curves() []CurveSpec {
	peers := []XPoint{{10, "10"}, {50, "50"}, {100, "100"}, {200, "200"}}
	senders := []XPoint{{1, "1"}, {8, "8"}, {64, "64"}}
	return []CurveSpec{
		{
			Key: "relay-concurrency", Title: "Relay one-way latency, 1 KiB, vs concurrent senders",
			XLabel: "concurrent senders", YLabel: "one-way latency", Unit: "us", Xs: senders, LogX: true, LogY: true, Chart: "relay-latency.png",
			Series: []SeriesSpec{
				{Name: "relay p50", Pkg: PkgRelay, NameFmt: "BenchmarkXProcRelayConcurrent/1KiB/senders-%s", Unit: "p50-deliver-us", Chart: true},
				{Name: "relay p99", Pkg: PkgRelay, NameFmt: "BenchmarkXProcRelayConcurrent/1KiB/senders-%s", Unit: "p99-deliver-us", Chart: true},
				{Name: "relay ack p50", Pkg: PkgRelay, NameFmt: "BenchmarkXProcRelayConcurrent/1KiB/senders-%s", Unit: "p50-ack-us"},
				{Name: "relay ack p99", Pkg: PkgRelay, NameFmt: "BenchmarkXProcRelayConcurrent/1KiB/senders-%s", Unit: "p99-ack-us"},
				{Name: "NATS p50", Pkg: PkgNATS, NameFmt: NATSOneWayFmt, Unit: NATSOneWayP50Unit, Chart: true, Baseline: true},
				{Name: "NATS p99", Pkg: PkgNATS, NameFmt: NATSOneWayFmt, Unit: NATSOneWayP99Unit, Chart: true, Baseline: true},
			},
		},
		{
			// Back to back on every side (the paced runs are in the vs-NATS rows): the
			// relay's own figures beside raw TCP and NATS, plain and over TLS, as sent.
			Key: "relay-sizes", Title: "Relay one-way latency by message size, one sender, back to back",
			XLabel: "message size (KiB)", YLabel: "one-way latency", Unit: "us", Xs: []XPoint{{1, "1KiB"}, {64, "64KiB"}},
			Series: []SeriesSpec{
				{Name: "relay p50", Pkg: PkgRelay, NameFmt: "BenchmarkXProcRelaySend/%s", Unit: "p50-deliver-us"},
				{Name: "relay p99", Pkg: PkgRelay, NameFmt: "BenchmarkXProcRelaySend/%s", Unit: "p99-deliver-us"},
				{Name: "raw TCP p50", Pkg: PkgRelay, NameFmt: "BenchmarkXProcRawTCP/%s", Unit: "p50-oneway-us", Baseline: true},
				{Name: "raw TCP p99", Pkg: PkgRelay, NameFmt: "BenchmarkXProcRawTCP/%s", Unit: "p99-oneway-us", Baseline: true},
				{Name: "NATS p50", Pkg: PkgNATS, NameFmt: "OneWay/%s/publishers-1", Unit: NATSOneWayP50Unit, Baseline: true},
				{Name: "NATS p99", Pkg: PkgNATS, NameFmt: "OneWay/%s/publishers-1", Unit: NATSOneWayP99Unit, Baseline: true},
				{Name: "NATS TLS p50", Pkg: PkgNATS, NameFmt: "OneWay/%s/publishers-1/tls", Unit: NATSOneWayP50Unit, Baseline: true},
				{Name: "NATS TLS p99", Pkg: PkgNATS, NameFmt: "OneWay/%s/publishers-1/tls", Unit: NATSOneWayP99Unit, Baseline: true},
			},
		},
		{
			Key: "membership", Title: "Membership convergence: all see all",
			XLabel: "peers", YLabel: "time until all see all", Unit: "ms", Xs: peers, Chart: "membership.png",
			Target: 3000, TargetLabel: "target 3 s (100 peers)",
			Series: []SeriesSpec{
				{Name: "paf-mesh", Pkg: PkgMesh, NameFmt: "BenchmarkConvergence/peers-%s", Unit: "ms/total", Chart: true},
				{Name: "stock memberlist", Pkg: PkgMesh, NameFmt: "BenchmarkStockConvergence/peers-%s", Unit: "ms/total", Chart: true, Baseline: true},
			},
		},
		{
			Key: "names", Title: "Name claim seen by all",
			XLabel: "peers", YLabel: "claim seen by all", Unit: "ms", Xs: peers, Chart: "names.png",
			Target: 1000, TargetLabel: "target 1 s (100 peers)",
			Series: []SeriesSpec{
				{Name: "claim mean", Pkg: PkgMesh, NameFmt: "BenchmarkNamePropagation/peers-%s", Unit: "ms/claim-mean", Chart: true},
				{Name: "claim p99", Pkg: PkgMesh, NameFmt: "BenchmarkNamePropagation/peers-%s", Unit: "ms/claim-p99", Chart: true},
				{Name: "claim max", Pkg: PkgMesh, NameFmt: "BenchmarkNamePropagation/peers-%s", Unit: "ms/claim-max"},
				{Name: "stock UpdateNode mean", Pkg: PkgMesh, NameFmt: "BenchmarkStockPropagation/peers-%s", Unit: "ms/update-mean", Chart: true, Baseline: true},
				{Name: "stock UpdateNode p99", Pkg: PkgMesh, NameFmt: "BenchmarkStockPropagation/peers-%s", Unit: "ms/update-p99", Chart: true, Baseline: true},
			},
		},
		{
			Key: "handover", Title: "Future-message handover, 10 peers, vs stored messages",
			XLabel: "stored messages", YLabel: "all stored messages delivered", Unit: "ms", Xs: []XPoint{{1, "1"}, {100, "100"}, {1000, "1000"}},
			LogX: true, Chart: "handover.png", Target: 500, TargetLabel: "target p99 500 ms",
			Series: []SeriesSpec{
				{Name: "handover p50", Pkg: PkgRelay, NameFmt: "BenchmarkHandover/msgs-%s", Unit: "ms/handover-p50", Chart: true},
				{Name: "handover p99", Pkg: PkgRelay, NameFmt: "BenchmarkHandover/msgs-%s", Unit: "ms/handover-p99", Chart: true},
				{Name: "direct sends p50", Pkg: PkgRelay, NameFmt: "BenchmarkHandover/msgs-%s", Unit: "ms/direct-p50", Chart: true, Baseline: true},
			},
		},
	}
}

// Select returns the rows and curves whose key matches only (all when only is empty).
func Select(only string) ([]RowSpec, []CurveSpec, error) {
	rows, curves := Rows(), Curves()
	if only == "" {
		return rows, curves, nil
	}
	re, err := regexp.Compile(only)
	if err != nil {
		return nil, nil, fmt.Errorf("report: --only %q: %w", only, err)
	}
	var rs []RowSpec
	var cs []CurveSpec
	for _, r := range rows {
		if re.MatchString(r.Key) {
			rs = append(rs, r)
		}
	}
	for _, c := range curves {
		if re.MatchString(c.Key) {
			cs = append(cs, c)
		}
	}
	if len(rs)+len(cs) == 0 {
		return nil, nil, fmt.Errorf("report: --only %q matches no row or curve", only)
	}
	return rs, cs, nil
}

// Needs returns every benchmark the rows and curves read, each once, in first-use order.
func Needs(rows []RowSpec, curves []CurveSpec) []Ref {
	var refs []Ref
	seen := map[Ref]bool{}
	add := func(rs []Ref) {
		for _, r := range rs {
			if !seen[r] {
				seen[r] = true
				refs = append(refs, r)
			}
		}
	}
	for _, r := range rows {
		add(r.Refs())
	}
	for _, c := range curves {
		add(c.Refs())
	}
	return refs
}
