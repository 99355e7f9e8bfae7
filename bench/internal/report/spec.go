package report

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
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
	// Derived are baseline values computed from the others (a sum of floors), shown after
	// them; a ratio may name one.
	Derived []Derived
	// Ratios are measured/baseline, each named by a label present in both Measured and
	// Baseline (or Derived).
	Ratios []string
	// Judge gives the verdict once every required measured value is there.
	Judge func(v Values) (verdict, note string)
	// Rounds, when over 1, is how many times a full run measures the row's benchmarks and
	// baselines, interleaved (all of them, then all again), each value then being the median:
	// for rows at the edge, whose verdict a baseline measured minutes apart on a drifting
	// machine could flip. Quick runs measure once.
	Rounds int
}

// Derived is a baseline value computed from the row's other baseline values.
type Derived struct {
	Label string // for Ratios and Judge
	Name  string // as shown
	Show  string // display unit
	F     func(v Values) (float64, bool)
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
	// Floor marks a row of physical floors: figures to read the others by, not judged.
	Floor = "floor"
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

// Rows returns the summary table's rows, in the order of SPEC section 10, each with its
// same-run baseline; rows measured in one process, or with a limit lifted, follow the SPEC
// row they stand beside and say so in their title.
func Rows() []RowSpec {
	// The relay's one-way latency is to durable delivery: from the stamp taken just before
	// Send to the receiver's answer after its inbox commit (fdatasync), paced 500 µs apart
	// like its baselines, the receiver at default settings.
	relay1KPaced := []M{
		m(PkgRelay, "BenchmarkXProcRelaySend/1KiB-paced-500us", "p50-durable-us", "p50", "us"),
		m(PkgRelay, "BenchmarkXProcRelaySend/1KiB-paced-500us", "p99-durable-us", "p99", "us"),
	}
	// The same with the receiver on one processor, as paf-peer mcp runs a session (its inbox
	// then syncs through Linux AIO): what a session meets; the rows above run both processes
	// with the machine's processors.
	relay1KPacedOneProc := []M{
		m(PkgRelay, "BenchmarkXProcRelaySend/1KiB-paced-500us-one-processor", "p50-durable-us", "p50", "us"),
		m(PkgRelay, "BenchmarkXProcRelaySend/1KiB-paced-500us-one-processor", "p99-durable-us", "p99", "us"),
	}
	relay64KPaced := []M{
		m(PkgRelay, "BenchmarkXProcRelaySend/64KiB-paced-500us", "p50-durable-us", "p50", "us"),
		m(PkgRelay, "BenchmarkXProcRelaySend/64KiB-paced-500us", "p99-durable-us", "p99", "us"),
	}
	relayTput := []M{m(PkgRelay, "BenchmarkXProcRelayThroughput/1KiB", "msgs/s", "", "msgs/s")}
	return []RowSpec{
		{
			Key: "qa", Title: "question → answer between two `paf-peer mcp` sessions (A paf_send, B's paf_listen returns, B paf_send, A's paf_listen returns), 1 KiB",
			Target: "p50 ≤ 1.5 × (hub + 2 × fdatasync)",
			Measured: []M{
				m(PkgProcs, ProcsQA, "p50-rtt-ms", "p50", "ms"),
				opt(m(PkgProcs, ProcsQA, "p99-rtt-ms", "p99", "ms")),
			},
			// The disk's sync paced like the round trip (one per round, as each session
			// makes): on this VM a sync after an idle spell costs more than one right after
			// another, and the path's syncs come after idle spells. The back-to-back figure is
			// shown beside it, and the note gives the ratio with it too.
			BaselineName: "non-durable Python hub round trip + the disk's 1 KiB write+fdatasync, paced like the round trip (back to back shown too)",
			Baseline: []M{
				m(PkgProcs, ProcsHub, "p50-rtt-ms", "hub p50", "ms"),
				m(PkgProcs, ProcsFsync, "paced-p50-ms", "fdatasync paced p50", "ms"),
				opt(m(PkgProcs, ProcsFsync, "pace-ms", "one per", "ms")),
				opt(m(PkgProcs, ProcsFsync, "p50-ms", "fdatasync back to back p50", "ms")),
				opt(m(PkgProcs, ProcsFsync, "paced-p99-ms", "fdatasync paced p99", "ms")),
			},
			Derived: []Derived{{Label: "p50", Name: "hub + 2 × fdatasync paced p50", Show: "ms", F: func(v Values) (float64, bool) {
				h, ok1 := v.B("hub p50")
				f, ok2 := v.B("fdatasync paced p50")
				return h + 2*f, ok1 && ok2
			}}},
			Ratios: []string{"p50"},
			Judge: func(v Values) (string, string) {
				r, ok := v.R("p50")
				if !ok {
					return Missing, "no hub or fdatasync baseline"
				}
				var notes []string
				if h, ok := v.B("hub p50"); ok && h > 0 {
					notes = append(notes, fmt.Sprintf("%s× the hub alone", num(v.M("p50")/h)))
					if f, ok := v.B("fdatasync back to back p50"); ok {
						notes = append(notes, fmt.Sprintf("%s× hub + 2 × fdatasync back to back", num(v.M("p50")/(h+2*f))))
					}
				}
				return verdict(r <= 1.5), strings.Join(notes, "; ")
			},
		},
		{
			Key: "qa-fsyncs", Title: "durable writes on the question → answer path (fsync, fdatasync and AIO fdatasync of both processes, strace)",
			Target: "≤ 2 per question → answer, none for reading",
			Measured: []M{
				m(PkgProcs, ProcsFsyncCount, "fsyncs/round-trip", "", "per round trip"),
				opt(m(PkgProcs, ProcsFsyncCount, "runtime-sleeps/round-trip", "Go runtime monitor sleeps (nanosleep), both processes", "per round trip")),
				opt(m(PkgProcs, ProcsFsyncCount, "futex/round-trip", "futex calls, both processes", "per round trip")),
			},
			Judge: func(v Values) (string, string) { return verdict(v.M("") <= 2), "" },
		},
		relayLatencyRow("relay-latency", "1 KiB", relay1KPaced, "BenchmarkXProcRawTCP/1KiB-paced-500us", "BenchmarkSignVerify/1KiB", ""),
		relayLatencyRow("relay-latency-one-processor", "1 KiB, the receiver on one processor as `paf-peer mcp` runs a session (the row above: two)", relay1KPacedOneProc, "BenchmarkXProcRawTCP/1KiB-paced-500us", "BenchmarkSignVerify/1KiB", ""),
		relayLatencyRow("relay-latency-64k", "64 KiB", relay64KPaced, "BenchmarkXProcRawTCP/64KiB-paced-500us", "BenchmarkSignVerify/64KiB", relayLargeFile),
		natsLatencyRow("relay-latency-vs-nats", "NATS", "1 KiB", relay1KPaced, NATSOneWay1K),
		withRounds(natsLatencyRow("relay-latency-64k-vs-nats", "NATS", "64 KiB", relay64KPaced, NATSOneWay64K), edgeRounds),
		// The relay authenticates every frame (SPEC section 7); NATS over TLS 1.3 is the
		// broker at comparable security.
		natsLatencyRow("relay-latency-vs-nats-tls", "NATS over TLS", "1 KiB", relay1KPaced, NATSOneWay1KTLS),
		withRounds(natsLatencyRow("relay-latency-64k-vs-nats-tls", "NATS over TLS", "64 KiB", relay64KPaced, NATSOneWay64KTLS), edgeRounds),
		{
			Key: "relay-throughput", Title: "relay throughput, 1 KiB, acknowledged (durable), 64 senders, default rate limits",
			Target: "≥ 50,000 msg/s", Measured: relayTput, BaselineName: "transport alone",
			Baseline: []M{m(PkgRelay, "BenchmarkXProcTransportThroughput/1KiB-goroutines-64", "msgs/s", "", "msgs/s")},
			Ratios:   []string{""},
			Judge: func(v Values) (string, string) {
				// By design: the 64 senders of one peer are one sending identity, and the
				// receiver admits 1,000 msg/s of each (burst 2,000); the lifted row below
				// measures the relay itself.
				if v.M("") >= 50000 {
					return Met, ""
				}
				return Missed, "the receiver's default rate limit is the ceiling: 1,000 msg/s per sending identity (burst 2,000), and the 64 senders are one identity"
			},
			Rounds: edgeRounds,
		},
		// A NATS request-reply is acknowledged before anything is stored; the relay's only
		// once the recipient's inbox log is fdatasync'd (group-committed per batch). The
		// like-for-like broker is JetStream with sync always, every message fsync'd before
		// its ack; with the default sync, its ack means the page cache.
		brokerTputRow("relay-throughput-vs-nats", "  ↳ vs NATS request-reply, 1 KiB, 64 requesters (nothing stored)",
			"NATS", "NATS", NATSRequestReply, "no NATS baseline", relayTput),
		brokerTputRow("relay-throughput-vs-jetstream-sync", "  ↳ vs NATS JetStream publish, stored and fsync'd before the ack (sync always)",
			"JetStream", "JetStream, sync always", NATSJetStreamSyncAlways, "no NATS JetStream sync-always baseline", relayTput),
		brokerTputRow("relay-throughput-vs-jetstream", "  ↳ vs NATS JetStream publish, stored in the page cache before the ack (default sync)",
			"JetStream", "JetStream, default sync", NATSJetStream, "no NATS JetStream default-sync baseline", relayTput),
		{
			Key: "relay-throughput-lifted", Title: "  ↳ extra row, LIMIT LIFTED: the receiver's rate limit off (default 1,000 msg/s per sending identity, burst 2,000)",
			Target: "≥ 50,000 msg/s",
			Measured: []M{
				m(PkgRelay, relayLifted, "msgs/s", "", "msgs/s"),
				opt(m(PkgRelay, relayLifted, "cpu-us-per-msg", "CPU per message, both processes", "us")),
				opt(m(PkgRelay, relayLifted, "rx-cpu-us-per-msg", "receiver's", "us")),
				opt(m(PkgRelay, relayLifted, "cpus", "cores", "")),
			},
			BaselineName: "JetStream, sync always",
			Baseline: []M{
				m(PkgNATS, NATSJetStreamSyncAlways, NATSMsgsUnit, "", "msgs/s"),
				// The CPU floor under a signed message (the note): its signature made and checked.
				opt(m(PkgRelay, "BenchmarkSignVerify/1KiB", "sign-us", "sign", "us")),
				opt(m(PkgRelay, "BenchmarkSignVerify/1KiB", "verify-us", "verify", "us")),
			},
			Ratios: []string{""},
			Judge: func(v Values) (string, string) {
				return verdict(v.M("") >= 50000), cpuCapNote(v)
			},
		},
		allSeeRow("mesh-20", 20, 1000, ProcsAllSee20, ProcsStockAllSee20),
		allSeeRow("mesh-50", 50, 2000, ProcsAllSee50, ProcsStockAllSee50),
		{
			Key: "idle-20", Title: "idle: 20 `paf-peer mcp` processes on one machine, each",
			Target: "CPU median ≤ 0.1% of a core, RSS ≤ 30 MB",
			Measured: []M{
				m(PkgProcs, ProcsIdle20, "cpu-median-%", "CPU median", "%"),
				opt(m(PkgProcs, ProcsIdle20, "cpu-max-%", "CPU max", "%")),
				opt(m(PkgProcs, ProcsIdle20, "cpu-total-%", "all 20", "%")),
				m(PkgProcs, ProcsIdle20, "rss-median-MB", "RSS median", "MB"),
				opt(m(PkgProcs, ProcsIdle20, "rss-max-MB", "RSS max", "MB")),
			},
			BaselineName: "an idle Python asyncio process",
			Baseline: []M{
				m(PkgProcs, ProcsIdlePython, "cpu-%", "CPU median", "%"),
				m(PkgProcs, ProcsIdlePython, "rss-MB", "RSS median", "MB"),
				opt(m(PkgProcs, ProcsIdleStock20, "cpu-median-%", idleStockLabel, "%")),
			},
			Ratios: []string{"RSS median"},
			Judge: func(v Values) (string, string) {
				return verdict(v.M("CPU median") <= 0.1 && v.M("RSS median") <= 30), idleStockNote(v)
			},
		},
		{
			Key: "crash-reclaim", Title: "a crashed (SIGKILL) session's name claimed again by its restarted session, same machine (kill to paf_register succeeding, restart included)",
			Target: "≤ 1 s",
			Measured: []M{
				m(PkgProcs, ProcsCrashReclaim, "ms/reclaim-p50", "median", "ms"),
				opt(m(PkgProcs, ProcsCrashReclaim, "ms/reclaim-max", "max", "ms")),
			},
			Judge: func(v Values) (string, string) { return verdict(v.M("median") <= 1000), "" },
		},
		{
			Key: "failure-lan", Title: "a crashed (SIGKILL) `paf-peer serve` marked dead by all, LAN: 5 hosts in network namespaces, secure mode (kill to the last host's status listing it dead)",
			Target: "≤ 5 s",
			Measured: []M{
				m(PkgPeer, "BenchmarkLANFailureDetection", "ms/dead-max", "all", "ms"),
				opt(m(PkgPeer, "BenchmarkLANFailureDetection", "ms/dead-mean", "mean", "ms")),
			},
			BaselineName: "stock memberlist (DefaultLANConfig), same lab",
			Baseline:     []M{m(PkgPeer, "BenchmarkLANFailureDetection", "ms/stock-dead-max", "all", "ms")},
			Ratios:       []string{"all"},
			Judge:        func(v Values) (string, string) { return verdict(v.M("all") <= 5000), "" },
		},
		{
			Key: "failure", Title: "  ↳ extra row, 100 peers IN ONE PROCESS, probing every 1 s as stock memberlist does (the LAN preset probes every 800 ms, the local one every 3 s: on one machine the run dir proves a crash): a hard-killed peer marked dead by all",
			Target: "≤ 5 s (mean)",
			Measured: []M{
				m(PkgMesh, "BenchmarkFailureDetection/peers-100", "ms/dead-mean", "mean", "ms"),
				opt(m(PkgMesh, "BenchmarkFailureDetection/peers-100", "ms/dead-max", "max", "ms")),
			},
			BaselineName: "stock memberlist",
			Baseline:     []M{m(PkgMesh, "BenchmarkStockFailureDetection/peers-100", "ms/dead-mean", "mean", "ms")},
			Ratios:       []string{"mean"},
			Judge:        func(v Values) (string, string) { return verdict(v.M("mean") <= 5000), "" },
		},
		{
			Key: "names-50", Title: "a name claim seen by all, 50 separate processes (paf_rename of one, polled on the 49 others)",
			Target: "≤ 1 s",
			Measured: []M{
				m(PkgProcs, ProcsAllSee50, "ms/claim-seen-by-all", "all", "ms"),
				opt(m(PkgProcs, ProcsAllSee50, "ms/claim-seen-p50", "p50", "ms")),
			},
			BaselineName: "stock memberlist UpdateNode, same layout",
			Baseline: []M{
				m(PkgProcs, ProcsStockAllSee50, "ms/claim-seen-by-all", "all", "ms"),
				opt(m(PkgProcs, ProcsStockAllSee50, "ms/claim-seen-p50", "p50", "ms")),
			},
			Ratios: []string{"all"},
			Judge:  func(v Values) (string, string) { return verdict(v.M("all") <= 1000), "" },
		},
		{
			Key: "names", Title: "  ↳ extra row, IN ONE PROCESS: a name claim seen by all of 100 peers",
			Target: "≤ 1 s (mean)",
			Measured: []M{
				m(PkgMesh, "BenchmarkNamePropagation/peers-100", "ms/claim-mean", "mean", "ms"),
				opt(m(PkgMesh, "BenchmarkNamePropagation/peers-100", "ms/claim-p99", "p99", "ms")),
			},
			BaselineName: "stock UpdateNode (each update capped at its bound; capped/op shown)",
			Baseline: []M{
				m(PkgMesh, "BenchmarkStockPropagation/peers-100", "ms/update-mean", "mean", "ms"),
				opt(m(PkgMesh, "BenchmarkStockPropagation/peers-100", "capped/op", "capped/op", "")),
			},
			Ratios: []string{"mean"},
			Judge:  func(v Values) (string, string) { return verdict(v.M("mean") <= 1000), "" },
		},
		{
			Key: "membership", Title: "  ↳ extra row, IN ONE PROCESS: 100 peers all see all",
			Target:       "≤ 2 s",
			Measured:     []M{m(PkgMesh, "BenchmarkConvergence/peers-100", "ms/total", "", "ms")},
			BaselineName: "stock memberlist, CAPPED at 5 s (converged share shown)",
			Baseline: []M{
				m(PkgMesh, "BenchmarkStockConvergence/peers-100", "ms/total", "", "ms"),
				opt(m(PkgMesh, "BenchmarkStockConvergence/peers-100", "converged-%", "converged", "%")),
			},
			Ratios: []string{""},
			Judge: func(v Values) (string, string) {
				note := ""
				if c, ok := v.B("converged"); ok && c < 100 {
					note = "the stock baseline hit its cap: a lower bound"
				}
				return verdict(v.M("") <= 2000), note
			},
		},
		{
			Key: "handover", Title: "future-message handover after the recipient claims its name (10 peers, 1 message)",
			Target: "p99 ≤ 100 ms",
			Measured: []M{
				opt(m(PkgRelay, "BenchmarkHandover/msgs-1", "ms/handover-p50", "p50", "ms")),
				m(PkgRelay, "BenchmarkHandover/msgs-1", "ms/handover-p99", "p99", "ms"),
			},
			BaselineName: "direct send",
			Baseline:     []M{m(PkgRelay, "BenchmarkHandover/msgs-1", "ms/direct-p50", "p50", "ms")},
			Ratios:       []string{"p50"},
			Judge:        func(v Values) (string, string) { return verdict(v.M("p99") <= 100), "" },
		},
		{
			Key: "mcp-start", Title: "`paf-peer mcp` process start to initialize result",
			Target: "median ≤ 1.5 × `paf-peer version`",
			Measured: []M{
				m(PkgProcs, ProcsMCPStart, "init-p50-ms", "median", "ms"),
				opt(m(PkgProcs, ProcsMCPStart, "init-p90-ms", "p90", "ms")),
			},
			BaselineName: "`paf-peer version`",
			Baseline:     []M{m(PkgProcs, ProcsMCPStart, "version-p50-ms", "median", "ms")},
			Ratios:       []string{"median"},
			Judge: func(v Values) (string, string) {
				r, ok := v.R("median")
				if !ok {
					return Missing, "no `paf-peer version` baseline"
				}
				return verdict(r <= 1.5), ""
			},
		},
		{
			Key: "one-shot", Title: "one-shot `paf-peer send` from a shell (sh -c) while a `serve` peer holds the sender's name",
			Target: "median ≤ 150 ms",
			Measured: []M{
				m(PkgProcs, ProcsOneShot, "send-p50-ms", "median", "ms"),
				opt(m(PkgProcs, ProcsOneShot, "send-p90-ms", "p90", "ms")),
			},
			BaselineName: "`sh -c 'paf-peer version'`",
			Baseline:     []M{m(PkgProcs, ProcsOneShot, "version-p50-ms", "median", "ms")},
			Ratios:       []string{"median"},
			Judge:        func(v Values) (string, string) { return verdict(v.M("median") <= 150), "" },
		},
		{
			Key: "lan-discovery", Title: "a new host found by mDNS and joined (netns)",
			Target: "p50 ≤ 1 s",
			Measured: []M{
				m(PkgPeer, "BenchmarkLANDiscovery", "ms/found-p50", "p50", "ms"),
				opt(m(PkgPeer, "BenchmarkLANDiscovery", "ms/found-max", "max", "ms")),
			},
			BaselineName: "raw mDNS browse",
			Baseline:     []M{m(PkgPeer, "BenchmarkLANDiscovery", "ms/mdns-answer-p50", "p50", "ms")},
			Ratios:       []string{"p50"},
			Judge:        func(v Values) (string, string) { return verdict(v.M("p50") <= 1000), "" },
		},
		{
			Key: "tools-list", Title: "tools/list, compact JSON",
			Target:   "≤ 4,096 bytes for all tools",
			Measured: []M{m(PkgProcs, ProcsMCPStart, "tools-list-bytes", "", "bytes")},
			Judge:    func(v Values) (string, string) { return verdict(v.M("") <= 4096), "" },
		},
		{
			Key: "floors", Title: "physical floors of this machine (no target): loopback TCP round trip, 1 KiB, paced; the disk's 1 KiB write+fdatasync, back to back and paced like the question → answer; a message's ed25519 signature (sign, verify)",
			Target: "—",
			Measured: []M{
				m(PkgRelay, "BenchmarkXProcRawTCP/1KiB-paced-500us", "p50-rtt-us", "loopback RTT p50", "us"),
				opt(m(PkgRelay, "BenchmarkXProcRawTCP/1KiB-paced-500us", "p99-rtt-us", "p99", "us")),
				m(PkgProcs, ProcsFsync, "p50-ms", "fdatasync back to back p50", "ms"),
				opt(m(PkgProcs, ProcsFsync, "p99-ms", "p99", "ms")),
				opt(m(PkgProcs, ProcsFsync, "paced-p50-ms", "fdatasync paced like the question → answer p50", "ms")),
				opt(m(PkgProcs, ProcsFsync, "paced-p99-ms", "paced p99", "ms")),
				opt(m(PkgRelay, relayPacedSync, "p50-commit-us", "fdatasync paced 500 µs (as the relay rows) p50", "us")),
				opt(m(PkgRelay, "BenchmarkSignVerify/1KiB", "sign-us", "sign", "us")),
				opt(m(PkgRelay, "BenchmarkSignVerify/1KiB", "verify-us", "verify", "us")),
			},
			Judge: func(Values) (string, string) { return Floor, "" },
		},
	}
}

// relayLifted is the relay's throughput benchmark with the receiver's rate limit off.
const relayLifted = "BenchmarkXProcRelayThroughput/1KiB-rate-lifted"

// cpuCapNote says where the lifted throughput's ceiling is, from the CPU both processes spent
// per message and the cores there are: the rate the machine would carry with its cores all
// busy, and the rate the signatures alone (made and checked, same run) would allow, nothing
// else costing anything.
func cpuCapNote(v Values) string {
	per, cores := v.M("CPU per message, both processes"), v.M("cores")
	if per <= 0 || cores <= 0 {
		return ""
	}
	capRate := cores * 1e6 / per
	note := fmt.Sprintf("CPU-bound: %s µs of CPU per message (both processes) caps %d cores at %s msg/s; measured %s of that",
		num(per), int(cores), num(capRate), pctOf(v.M(""), capRate))
	sign, ok1 := v.B("sign")
	verify, ok2 := v.B("verify")
	if ok1 && ok2 && sign+verify > 0 {
		note += fmt.Sprintf("; the signature alone (sign %s + verify %s µs) caps them at %s msg/s",
			num(sign), num(verify), num(cores*1e6/(sign+verify)))
	}
	return note
}

// pctOf formats part as a percentage of whole.
func pctOf(part, whole float64) string { return fmt.Sprintf("%.0f %%", 100*part/whole) }

// relayPacedSync is the relay's benchmark of the disk work of a lone message (a 1 KiB overwrite
// and fdatasync), paced like the relay latency rows.
const relayPacedSync = "BenchmarkFsyncBaseline/overwrite-fdatasync-1KiB-paced-500us"

// relayLargeFile: a new 64 KiB file written and fsync'd, paced like the relay's runs: what the
// inbox does first with a body over its LargeBody (10 KiB; SPEC section 3: such a body is saved
// to a file of its own).
const relayLargeFile = "BenchmarkFsyncBaseline/newfile-64KiB-fsync-paced-500us"

// relayLatencyRow is the SPEC row of the relay's one-way latency to durable delivery, paced
// 500 µs apart like its raw TCP baseline. sign is the signature benchmark of the row's size;
// largeFile, when not empty, the benchmark of the file such a body is saved to.
func relayLatencyRow(key, size string, relay []M, rawTCP, sign, largeFile string) RowSpec {
	title := "relay one-way latency"
	if key != "relay-latency" {
		title = "  ↳ relay one-way latency"
	}
	base := []M{
		m(PkgRelay, rawTCP, "p50-oneway-us", "p50", "us"),
		m(PkgRelay, rawTCP, "p99-oneway-us", "p99", "us"),
		// The floor under a durable, signed delivery (the note): the receiver's sync,
		// paced alike, and the sender's signature (the receiver's verification can run
		// beside its writes); for a large body, its own file too.
		opt(m(PkgRelay, relayPacedSync, "p50-commit-us", "fdatasync paced p50", "us")),
		opt(m(PkgRelay, sign, "sign-us", "sign", "us")),
	}
	if largeFile != "" {
		base = append(base, opt(m(PkgRelay, largeFile, "p50-commit-us", "new file + fsync paced p50", "us")))
	}
	return RowSpec{
		Key: key, Title: title + " to durable delivery, " + size + ", separate processes, secure, paced 500 µs",
		Target: "p50 ≤ 3× raw TCP, p99 ≤ 5×, paced alike", Measured: relay, BaselineName: "raw TCP one-way, paced alike",
		Baseline: base,
		Ratios:   []string{"p50", "p99"},
		Judge: func(v Values) (string, string) {
			r50, ok50 := v.R("p50")
			r99, ok99 := v.R("p99")
			if !ok50 || !ok99 {
				return Missing, "no raw TCP baseline"
			}
			note := ""
			raw, _ := v.B("p50")
			if f, ok := v.B("fdatasync paced p50"); ok && raw > 0 {
				sign, _ := v.B("sign")
				floor := raw + f + sign
				note = fmt.Sprintf("floor: raw one-way + fdatasync paced + sign = %s µs = %s× raw; measured %s× that floor",
					num(floor), num(floor/raw), num(v.M("p50")/floor))
				if file, ok := v.B("new file + fsync paced p50"); ok {
					// Measured apart, in a directory of its own: a new file's cost varies
					// with the file system's state (on ext4 without a journal, inode
					// allocation slows for a minute after many deletions), so the two
					// floors are shown, not just their sum.
					note += fmt.Sprintf("; with the body's own file (new file + fsync paced, %s µs) %s µs, measured %s× that",
						num(file), num(floor+file), num(v.M("p50")/(floor+file)))
				}
			}
			return verdict(r50 <= 3 && r99 <= 5), note
		},
	}
}

// allSeeRow is the SPEC row of n separate peer processes all seeing all, against stock
// memberlist in the same layout.
func allSeeRow(key string, n int, targetMS float64, paf, stock string) RowSpec {
	indent := ""
	if n != 20 {
		indent = "  ↳ "
	}
	return RowSpec{
		Key: key, Title: fmt.Sprintf("%s%d `paf-peer mcp` processes on one machine: all see all, after the last one starts", indent, n),
		Target: fmt.Sprintf("≤ %s", FormatValue(Value{Value: targetMS, Unit: "ms"})),
		Measured: []M{
			m(PkgProcs, paf, "ms/after-last-start", "", "ms"),
			opt(m(PkgProcs, paf, "ms/starting", "starting them took", "ms")),
			opt(m(PkgProcs, paf, "ms/after-first-start", "after the first start", "ms")),
			opt(m(PkgProcs, paf, "cpu-ms/all", "CPU of all sessions by then", "ms")),
			opt(m(PkgProcs, paf, "cpu-ms/median", "per session, median", "ms")),
			opt(m(PkgProcs, paf, "cpus", "cores", "")),
		},
		BaselineName: "stock memberlist, same layout, not capped",
		Baseline: []M{
			m(PkgProcs, stock, "ms/after-last-start", "", "ms"),
			opt(m(PkgProcs, stock, "ms/starting", "starting them took", "ms")),
			// What one session's start costs alone (the note).
			opt(m(PkgProcs, ProcsMCPStart, "init-cpu-p50-ms", "a lone session's CPU to its initialize result", "ms")),
		},
		Ratios: []string{""},
		Judge: func(v Values) (string, string) {
			return verdict(v.M("") <= targetMS), startsCPUNote(v, n)
		},
	}
}

// startsCPUNote says whether n sessions starting together were bound by the CPU: how much of
// the cores' time since the first start their CPU by then fills.
func startsCPUNote(v Values, n int) string {
	all, cores, since := v.M("CPU of all sessions by then"), v.M("cores"), v.M("after the first start")
	if all <= 0 || cores <= 0 || since <= 0 {
		return ""
	}
	note := fmt.Sprintf("the %d sessions had used %s of CPU by then (%s each, median): %s of the %d cores' time since the first start, %s",
		n, FormatValue(Value{Value: all, Unit: "ms"}), FormatValue(Value{Value: v.M("per session, median"), Unit: "ms"}),
		pctOf(all, cores*since), int(cores), FormatValue(Value{Value: since, Unit: "ms"}))
	if lone, ok := v.B("a lone session's CPU to its initialize result"); ok {
		note += fmt.Sprintf("; a lone session's start to its initialize result uses %s", FormatValue(Value{Value: lone, Unit: "ms"}))
	}
	return note
}

// idleStockLabel names the idle row's second baseline: 20 stock memberlist processes (one
// processor each, as `paf-peer mcp`) at the local preset's intervals, measured in the same
// window: what the same failure detection costs memberlist alone.
const idleStockLabel = "20 stock memberlist processes at the local preset's intervals (probe 3 s, gossip 3 s, push/pull 30 s), CPU median"

// idleStockNote compares the idle peers' CPU with stock memberlist's at the same intervals.
func idleStockNote(v Values) string {
	stock, ok := v.B(idleStockLabel)
	if !ok || stock <= 0 {
		return ""
	}
	return fmt.Sprintf("%s× stock memberlist alone at the same intervals (%s%% of a core)", num(v.M("CPU median")/stock), num(stock))
}

// Names of the multi-process scenarios (package procs), as recorded.
const (
	ProcsQA            = "QuestionAnswer/1KiB"
	ProcsHub           = "PythonHub/1KiB"
	ProcsFsync         = "DiskWriteFdatasync/1KiB"
	ProcsFsyncCount    = "QuestionAnswerFsyncs/1KiB"
	ProcsAllSee20      = "AllSeeAll/peers-20"
	ProcsAllSee50      = "AllSeeAll/peers-50"
	ProcsStockAllSee20 = "StockAllSeeAll/peers-20"
	ProcsStockAllSee50 = "StockAllSeeAll/peers-50"
	ProcsIdle20        = "Idle/peers-20"
	ProcsIdlePython    = "IdlePython"
	ProcsIdleStock20   = "IdleStock/stock-20"
	ProcsOneShot       = "OneShotSend"
	ProcsMCPStart      = "MCPStart"
	ProcsCrashReclaim  = "CrashReclaim"
)

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
			Key: "relay-concurrency", Title: "Relay one-way latency to the receiver's handler (before its fsync; ack = durable), 1 KiB, vs concurrent senders, rate limit lifted",
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
			Key: "relay-sizes", Title: "Relay one-way latency to the receiver's handler (before its fsync) by message size, one sender, back to back, rate limit lifted",
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
