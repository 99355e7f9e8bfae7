package natsbase

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"
)

// Config is the configuration of a baseline Server.
type Config struct {
	// Exe is the executable re-executed as the publishing child; it must call ChildMain when
	// IsChild is true before doing anything else. Default: os.Executable().
	Exe string
	// Timeout bounds one case, child included. Default 2 minutes.
	Timeout time.Duration
	// Stderr, when set, also receives the child's stderr as it is written.
	Stderr io.Writer
	// Logger receives progress at debug level. Default: discard.
	Logger *slog.Logger
}

func (c Config) withDefaults() (Config, error) {
	if c.Exe == "" {
		exe, err := os.Executable()
		if err != nil {
			return c, fmt.Errorf("natsbase: find own executable: %w", err)
		}
		c.Exe = exe
	}
	if c.Timeout <= 0 {
		c.Timeout = 2 * time.Minute
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c, nil
}

// LatencyCase is one one-way latency measurement.
type LatencyCase struct {
	Size       int // message size in bytes, stamp included (at least 8)
	Publishers int // concurrent publishers
	Samples    int // timed messages over all publishers (rounded up to a multiple of Publishers)
	Warmup     int // untimed messages over all publishers, sent first
	// TLS runs the case against the TLS server: both hops (publisher -> server ->
	// subscriber) over TLS 1.3, each client verifying the server's certificate.
	TLS bool
	// Pace is think time after each reply before the next message, so that every
	// message starts from idle processes, as the relay benchmark's paced runs do
	// (BenchmarkXProcRelaySend/1KiB-paced-500us). Zero sends back to back.
	Pace time.Duration
}

// Name is the case's name in results, e.g. "OneWay/1KiB/publishers-8", with "/tls" added
// for a TLS case: "OneWay/1KiB/publishers-1/tls".
func (c LatencyCase) Name() string {
	name := fmt.Sprintf("OneWay/%s/publishers-%d", SizeName(c.Size), c.Publishers)
	if c.Pace > 0 {
		name += fmt.Sprintf("/paced-%dus", c.Pace.Microseconds())
	}
	if c.TLS {
		name += "/tls"
	}
	return name
}

// ThroughputCase is one request-reply throughput measurement.
type ThroughputCase struct {
	Size       int // request size in bytes
	Requesters int // concurrent requesters
	Msgs       int // timed requests over all requesters (rounded up to a multiple of Requesters)
	Warmup     int // untimed requests over all requesters, sent first
}

// Name is the case's name in results, e.g. "RequestReply/1KiB/requesters-64".
func (c ThroughputCase) Name() string {
	return fmt.Sprintf("RequestReply/%s/requesters-%d", SizeName(c.Size), c.Requesters)
}

// JetStreamCase is one durable publish throughput measurement: publishers in the child each
// publish to a JetStream stream (file storage, one replica) and wait for its PubAck, which
// the server sends only once it has stored the message, as the relay acknowledges a message
// only once it is in the recipient's inbox log.
type JetStreamCase struct {
	Size       int // message size in bytes
	Publishers int // concurrent publishers
	Msgs       int // timed messages over all publishers (rounded up to a multiple of Publishers)
	Warmup     int // untimed messages over all publishers, sent first (and stored too)
	// SyncAlways runs the case on a server whose JetStream sync is "always": every stored
	// message is fsync'd before its ack, as the relay fdatasyncs the recipient's inbox log
	// (group-committed per batch) before acknowledging. False keeps the server's default:
	// acknowledged once written to the OS page cache, fsync'd every 2 minutes.
	SyncAlways bool
}

// Name is the case's name in results, e.g. "JetStreamPublish/1KiB/publishers-64/sync-always"
// or ".../sync-default".
func (c JetStreamCase) Name() string {
	sync := "sync-default"
	if c.SyncAlways {
		sync = "sync-always"
	}
	return fmt.Sprintf("JetStreamPublish/%s/publishers-%d/%s", SizeName(c.Size), c.Publishers, sync)
}

// SizeName writes a byte count as the benchmarks name sizes: "1KiB", "64KiB", "1MiB", "100B".
func SizeName(n int) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%dMiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%dKiB", n>>10)
	}
	return fmt.Sprintf("%dB", n)
}

// LatencyResult is the outcome of a LatencyCase.
type LatencyResult struct {
	Case    LatencyCase
	Samples int // messages timed
	P50     time.Duration
	P99     time.Duration
	Mean    time.Duration
}

// ThroughputResult is the outcome of a ThroughputCase.
type ThroughputResult struct {
	Case       ThroughputCase
	Msgs       int           // requests answered in the timed part
	Elapsed    time.Duration // of the timed part, measured by the child
	MsgsPerSec float64
}

// JetStreamResult is the outcome of a JetStreamCase.
type JetStreamResult struct {
	Case       JetStreamCase
	Msgs       int           // messages acknowledged in the timed part
	Stored     uint64        // messages in the stream after the run, warm-up included
	Elapsed    time.Duration // of the timed part, measured by the child
	MsgsPerSec float64
}

// Cases returns the baseline's cases: one-way latency for 1 KiB and 64 KiB with one
// publisher, plain and over TLS, 1 KiB with 8 and 64 publishers, and 1 KiB request-reply
// throughput with 64 requesters. Full mode takes about 10,000 samples for 1 KiB with one
// publisher and fewer for 64 KiB and for concurrency; quick mode a tenth of each. A TLS case
// takes as many samples as its plain twin. The durable cases are JetStreamCases'.
func Cases(quick bool) ([]LatencyCase, []ThroughputCase) {
	div := 1
	if quick {
		div = 10
	}
	lat := []LatencyCase{
		{Size: 1 << 10, Publishers: 1, Samples: 10000 / div, Warmup: 500 / div},
		{Size: 64 << 10, Publishers: 1, Samples: 2000 / div, Warmup: 200 / div},
		{Size: 1 << 10, Publishers: 1, Samples: 10000 / div, Warmup: 500 / div, TLS: true},
		{Size: 64 << 10, Publishers: 1, Samples: 2000 / div, Warmup: 200 / div, TLS: true},
		{Size: 1 << 10, Publishers: 1, Samples: 4000 / div, Warmup: 200 / div, Pace: PaceFair},
		{Size: 64 << 10, Publishers: 1, Samples: 2000 / div, Warmup: 100 / div, Pace: PaceFair},
		{Size: 1 << 10, Publishers: 1, Samples: 4000 / div, Warmup: 200 / div, Pace: PaceFair, TLS: true},
		{Size: 64 << 10, Publishers: 1, Samples: 2000 / div, Warmup: 100 / div, Pace: PaceFair, TLS: true},
		{Size: 1 << 10, Publishers: 8, Samples: 4000 / div, Warmup: 400 / div},
		{Size: 1 << 10, Publishers: 64, Samples: 6400 / div, Warmup: 640 / div},
	}
	tput := []ThroughputCase{
		{Size: 1 << 10, Requesters: 64, Msgs: 20000 / div, Warmup: 2000 / div},
	}
	return lat, tput
}

// JetStreamCases returns the durable baseline's cases: 1 KiB JetStream publishes from 64
// publishers, each acknowledged once stored, with sync always and with the default sync. Both
// send as many messages as the request-reply throughput case (20,000 after 2,000 of warm-up;
// quick mode a tenth), so that the three rates beside the relay's come from runs alike. Sync
// always fsyncs each message on its own (no group commit): on a 2-core VM whose fsync takes
// ~120 µs it stores 4,500-6,000 msg/s, so its case takes 4-5 s (the default one under 1 s);
// a disk with slower fsyncs makes it proportionally longer.
func JetStreamCases(quick bool) []JetStreamCase {
	div := 1
	if quick {
		div = 10
	}
	return []JetStreamCase{
		{Size: 1 << 10, Publishers: 64, Msgs: 20000 / div, Warmup: 2000 / div, SyncAlways: true},
		{Size: 1 << 10, Publishers: 64, Msgs: 20000 / div, Warmup: 2000 / div},
	}
}

// PaceFair is the think time of the paced cases: the same as the relay's and raw TCP's paced
// benchmarks, so that all three start every message from idle processes.
const PaceFair = 500 * time.Microsecond

// perWorker splits total over workers, rounding up, at least one each.
func perWorker(total, workers int) int {
	if workers < 1 {
		return 0
	}
	return max(1, (total+workers-1)/workers)
}
