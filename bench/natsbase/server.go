package natsbase

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// Subjects of the baseline. The subscriber times only latSubject.
const (
	latSubject  = "pafbench.lat"
	warmSubject = "pafbench.warm"
	tputSubject = "pafbench.tput"
	subjects    = "pafbench.>"
	stampLen    = 8
)

// ack is the subscriber's reply: an acknowledgement, no payload to speak of.
var ack = []byte("ok")

// ErrChild is wrapped by the errors of a publishing child that failed.
var ErrChild = errors.New("natsbase: child failed")

// Server is the embedded NATS baseline: two servers, one plain and one that takes only
// TLS 1.3 clients, each with the timing subscriber connected to it.
type Server struct {
	cfg    Config
	plain  broker
	secure broker
	caPEM  []byte // the secure server's self-signed certificate, the clients' only root

	mu      sync.Mutex
	samples []time.Duration // one-way times of latSubject messages since the last reset
}

// broker is one embedded server and the subscriber's connection to it.
type broker struct {
	ns *server.Server
	nc *nats.Conn
}

// Start starts the embedded servers on 127.0.0.1 (random ports), a plain one and one with
// TLS 1.3 (a fresh self-signed ECDSA P-256 certificate for 127.0.0.1, no client
// certificates), and subscribes to both, over TLS to the second.
func Start(cfg Config) (*Server, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	cert, caPEM, err := selfSigned()
	if err != nil {
		return nil, err
	}
	subTLS, err := clientTLS(caPEM)
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, caPEM: caPEM}
	if s.plain, err = s.startBroker(nil, nil); err != nil {
		s.Close()
		return nil, err
	}
	if s.secure, err = s.startBroker(serverTLS(cert), subTLS); err != nil {
		s.Close()
		return nil, fmt.Errorf("natsbase: tls: %w", err)
	}
	cfg.Logger.Debug("nats baseline servers up", "url", s.plain.ns.ClientURL(), "tls-url", s.secure.ns.ClientURL())
	return s, nil
}

// startBroker starts one server (with TLS when srvTLS is set) and connects the subscriber
// to it (with TLS when subTLS is set). On error, what was started is in the broker, for Close.
func (s *Server) startBroker(srvTLS, subTLS *tls.Config) (broker, error) {
	var b broker
	ns, err := server.NewServer(&server.Options{
		Host:       "127.0.0.1",
		Port:       server.RANDOM_PORT,
		NoLog:      true,
		NoSigs:     true,
		MaxPayload: 8 << 20,
		TLSConfig:  srvTLS,
	})
	if err != nil {
		return b, fmt.Errorf("natsbase: new server: %w", err)
	}
	b.ns = ns
	ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		return b, errors.New("natsbase: server not ready within 10s")
	}
	opts := []nats.Option{nats.Name("pafbench-sub"), nats.NoReconnect()}
	if subTLS != nil {
		opts = append(opts, nats.Secure(subTLS))
	}
	if b.nc, err = nats.Connect(ns.ClientURL(), opts...); err != nil {
		return b, fmt.Errorf("natsbase: connect subscriber: %w", err)
	}
	sub, err := b.nc.Subscribe(subjects, s.deliver)
	if err == nil {
		err = sub.SetPendingLimits(-1, -1) // never drop: publishers wait for replies anyway
	}
	if err == nil {
		err = b.nc.Flush()
	}
	if err != nil {
		return b, fmt.Errorf("natsbase: subscribe: %w", err)
	}
	return b, nil
}

// URL is the plain server's client URL.
func (s *Server) URL() string { return s.plain.ns.ClientURL() }

// TLSURL is the TLS server's client URL ("tls://127.0.0.1:port").
func (s *Server) TLSURL() string { return s.secure.ns.ClientURL() }

// CAPEM is the PEM of the TLS server's self-signed certificate, which its clients trust.
func (s *Server) CAPEM() []byte { return s.caPEM }

// deliver is the subscriber: time a stamped latency message first, then acknowledge.
func (s *Server) deliver(m *nats.Msg) {
	now := time.Now().UnixNano()
	if m.Subject == latSubject && len(m.Data) >= stampLen {
		d := time.Duration(now - int64(binary.BigEndian.Uint64(m.Data)))
		s.mu.Lock()
		s.samples = append(s.samples, d)
		s.mu.Unlock()
	}
	_ = m.Respond(ack) // a lost reply shows as the child's request timing out
}

// Close stops the subscribers and the servers.
func (s *Server) Close() {
	for _, b := range []broker{s.plain, s.secure} {
		if b.nc != nil {
			b.nc.Close()
		}
		if b.ns != nil {
			b.ns.Shutdown()
			b.ns.WaitForShutdown()
		}
	}
}

// takeSamples returns the samples recorded since the last call and forgets them.
func (s *Server) takeSamples() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.samples
	s.samples = nil
	return out
}

// Latency runs one one-way latency case.
func (s *Server) Latency(ctx context.Context, c LatencyCase) (LatencyResult, error) {
	if c.Size < stampLen || c.Publishers < 1 || c.Samples < 1 {
		return LatencyResult{}, fmt.Errorf("natsbase: %s: bad case %+v", c.Name(), c)
	}
	per := perWorker(c.Samples, c.Publishers)
	j := job{
		Mode: modeLatency, URL: s.URL(), Size: c.Size, Workers: c.Publishers,
		Count: per, Warmup: perWorker(c.Warmup, c.Publishers), PaceNS: c.Pace.Nanoseconds(),
	}
	if c.TLS {
		j.URL, j.CA = s.TLSURL(), string(s.caPEM)
	}
	s.takeSamples()
	if _, err := s.runChild(ctx, j); err != nil {
		return LatencyResult{}, fmt.Errorf("natsbase: %s: %w", c.Name(), err)
	}
	ds := s.takeSamples()
	if want := per * c.Publishers; len(ds) != want {
		return LatencyResult{}, fmt.Errorf("natsbase: %s: subscriber timed %d messages, %d were sent", c.Name(), len(ds), want)
	}
	p50, p99, mean := stats(ds)
	return LatencyResult{Case: c, Samples: len(ds), P50: p50, P99: p99, Mean: mean}, nil
}

// Throughput runs one request-reply throughput case.
func (s *Server) Throughput(ctx context.Context, c ThroughputCase) (ThroughputResult, error) {
	if c.Size < 1 || c.Requesters < 1 || c.Msgs < 1 {
		return ThroughputResult{}, fmt.Errorf("natsbase: %s: bad case %+v", c.Name(), c)
	}
	per := perWorker(c.Msgs, c.Requesters)
	elapsed, err := s.runChild(ctx, job{
		Mode: modeThroughput, URL: s.URL(), Size: c.Size, Workers: c.Requesters,
		Count: per, Warmup: perWorker(c.Warmup, c.Requesters),
	})
	if err != nil {
		return ThroughputResult{}, fmt.Errorf("natsbase: %s: %w", c.Name(), err)
	}
	if elapsed <= 0 {
		return ThroughputResult{}, fmt.Errorf("natsbase: %s: child reported %v", c.Name(), elapsed)
	}
	n := per * c.Requesters
	return ThroughputResult{Case: c, Msgs: n, Elapsed: elapsed, MsgsPerSec: float64(n) / elapsed.Seconds()}, nil
}

// runChild runs one job in a child process and returns the timed duration it reports.
func (s *Server) runChild(ctx context.Context, j job) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	spec, err := json.Marshal(j)
	if err != nil {
		return 0, fmt.Errorf("encode job: %w", err)
	}
	cmd := exec.CommandContext(ctx, s.cfg.Exe)
	cmd.Env = append(os.Environ(), ChildEnv+"="+string(spec))
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	if s.cfg.Stderr != nil {
		cmd.Stderr = io.MultiWriter(&stderr, s.cfg.Stderr)
	}
	cmd.WaitDelay = 5 * time.Second
	start := time.Now()
	err = cmd.Run()
	s.cfg.Logger.Debug("nats baseline child done", "mode", j.Mode, "workers", j.Workers, "took", time.Since(start))
	if err != nil {
		return 0, fmt.Errorf("%w: %w\nstderr:\n%s", ErrChild, err, strings.TrimSpace(stderr.String()))
	}
	d, err := parseDone(stdout.String())
	if err != nil {
		return 0, fmt.Errorf("%w: %w\nstderr:\n%s", ErrChild, err, strings.TrimSpace(stderr.String()))
	}
	return d, nil
}

// parseDone reads the child's last stdout line, "done <elapsed ns>".
func parseDone(out string) (time.Duration, error) {
	var last string
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		if strings.TrimSpace(sc.Text()) != "" {
			last = strings.TrimSpace(sc.Text())
		}
	}
	f := strings.Fields(last)
	if len(f) != 2 || f[0] != "done" {
		return 0, fmt.Errorf("child printed %q, want \"done <ns>\"", last)
	}
	ns, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil || ns < 0 {
		return 0, fmt.Errorf("child printed %q: bad duration", last)
	}
	return time.Duration(ns), nil
}

// stats returns p50, p99 and the mean of ds (sorted in place): the nearest-rank percentile,
// as the product's benchmarks compute theirs.
func stats(ds []time.Duration) (p50, p99, mean time.Duration) {
	if len(ds) == 0 {
		return 0, 0, 0
	}
	slices.Sort(ds)
	var sum time.Duration
	for _, d := range ds {
		sum += d
	}
	return pct(ds, 0.50), pct(ds, 0.99), sum / time.Duration(len(ds))
}

func pct(sorted []time.Duration, p float64) time.Duration {
	i := int(float64(len(sorted))*p+0.999999999) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}
