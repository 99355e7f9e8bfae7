package natsbase

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	if IsChild() { // the publishing child is this test binary, re-executed
		os.Exit(ChildMain())
	}
	goleak.VerifyTestMain(m)
}

// TestRoundTrip runs every kind of case against a real embedded server with a real child, on
// small sample counts.
func TestRoundTrip(t *testing.T) {
	s, err := Start(Config{Timeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	for name, c := range map[string]LatencyCase{
		"one publisher, 1 KiB":    {Size: 1 << 10, Publishers: 1, Samples: 50, Warmup: 5},
		"one publisher, 64 KiB":   {Size: 64 << 10, Publishers: 1, Samples: 20, Warmup: 2},
		"4 publishers, rounds up": {Size: 1 << 10, Publishers: 4, Samples: 10, Warmup: 4},
		"TLS, 1 KiB":              {Size: 1 << 10, Publishers: 1, Samples: 50, Warmup: 5, TLS: true},
		"TLS, 64 KiB":             {Size: 64 << 10, Publishers: 1, Samples: 20, Warmup: 2, TLS: true},
		"paced, 1 KiB":            {Size: 1 << 10, Publishers: 1, Samples: 20, Warmup: 2, Pace: 10 * time.Millisecond},
		"paced over TLS, 64 KiB":  {Size: 64 << 10, Publishers: 1, Samples: 10, Warmup: 2, Pace: 10 * time.Millisecond, TLS: true},
	} {
		t.Run(name, func(t *testing.T) {
			start := time.Now()
			r, err := s.Latency(ctx, c)
			if err != nil {
				t.Fatal(err)
			}
			// Think time follows every message, warm-up included: a lower bound, whatever the load.
			if floor := time.Duration(c.Samples+c.Warmup) * c.Pace; time.Since(start) < floor {
				t.Errorf("case took %v, less than its think time alone (%v): not paced", time.Since(start), floor)
			}
			if want := perWorker(c.Samples, c.Publishers) * c.Publishers; r.Samples != want {
				t.Errorf("samples %d, want %d", r.Samples, want)
			}
			if r.P50 <= 0 || r.P99 < r.P50 || r.Mean <= 0 || r.P99 > time.Minute {
				t.Errorf("implausible result %+v", r)
			}
		})
	}
	t.Run("the TLS subscriber is on TLS 1.3", func(t *testing.T) {
		st, err := s.secure.nc.TLSConnectionState()
		if err != nil || !st.HandshakeComplete || st.Version != tls.VersionTLS13 {
			t.Fatalf("subscriber TLS state %+v, %v", st, err)
		}
		if !strings.HasPrefix(s.TLSURL(), "tls://127.0.0.1:") || !strings.HasPrefix(s.URL(), "nats://127.0.0.1:") {
			t.Errorf("urls %q %q", s.URL(), s.TLSURL())
		}
	})
	t.Run("a child that trusts another certificate is refused", func(t *testing.T) {
		_, other, err := selfSigned()
		if err != nil {
			t.Fatal(err)
		}
		_, err = s.runChild(ctx, job{Mode: modeLatency, URL: s.TLSURL(), CA: string(other), Size: 1024, Workers: 1, Count: 1})
		if !errors.Is(err, ErrChild) || !strings.Contains(err.Error(), "certificate") {
			t.Fatalf("err = %v, want ErrChild for an unknown certificate", err)
		}
		s.takeSamples()
	})
	t.Run("throughput", func(t *testing.T) {
		c := ThroughputCase{Size: 1 << 10, Requesters: 8, Msgs: 200, Warmup: 16}
		r, err := s.Throughput(ctx, c)
		if err != nil {
			t.Fatal(err)
		}
		if r.Msgs != 200 || r.Elapsed <= 0 || r.MsgsPerSec <= 0 {
			t.Errorf("implausible result %+v", r)
		}
		if got := s.takeSamples(); len(got) != 0 {
			t.Errorf("throughput requests were timed as latency samples: %d", len(got))
		}
	})
}

// TestJetStream runs both JetStream cases against real embedded JetStream servers with a
// real child, on small counts: every publish acknowledged, every message stored, each case's
// store its own and removed after.
func TestJetStream(t *testing.T) {
	s, err := Start(Config{Timeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// The stores go to os.TempDir(): a directory of this test's own, to see them removed.
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	for _, sync := range []bool{true, false} {
		// 300 timed messages over 8 publishers round up to 304; 20 warm-up to 24.
		c := JetStreamCase{Size: 1 << 10, Publishers: 8, Msgs: 300, Warmup: 20, SyncAlways: sync}
		t.Run(c.Name(), func(t *testing.T) {
			r, err := s.JetStream(context.Background(), c)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s: %.0f msgs/s, %d stored", c.Name(), r.MsgsPerSec, r.Stored)
			if r.Msgs != 304 || r.Stored != 304+24 || r.Elapsed <= 0 || r.MsgsPerSec <= 0 || r.Case != c {
				t.Errorf("implausible result %+v", r)
			}
		})
	}
	if left, err := os.ReadDir(tmp); err != nil || len(left) != 0 {
		t.Errorf("JetStream stores left behind: %v (%v)", left, err)
	}
	if got := s.takeSamples(); len(got) != 0 {
		t.Errorf("JetStream publishes reached the latency subscriber: %d", len(got))
	}
	t.Run("a publish to no stream fails the child", func(t *testing.T) {
		// The plain server has no JetStream: its subscriber's "ok" is no PubAck.
		_, err := s.runChild(context.Background(), job{Mode: modeJetStream, URL: s.URL(), Size: 1024, Workers: 1, Count: 1})
		if !errors.Is(err, ErrChild) || !strings.Contains(err.Error(), "publish") {
			t.Fatalf("err = %v, want ErrChild from the publish", err)
		}
	})
	t.Run("a bad case runs nothing", func(t *testing.T) {
		if _, err := s.JetStream(context.Background(), JetStreamCase{Size: 1024, Publishers: 0, Msgs: 1}); err == nil || errors.Is(err, ErrChild) {
			t.Fatalf("no publishers: err = %v", err)
		}
	})
}

// TestJetStreamStoredCount: the stored count is checked, not taken from the child. A child
// that reports a run but publishes nothing leaves the stream short of what the case says was
// acknowledged, which fails the case.
func TestJetStreamStoredCount(t *testing.T) {
	liar := filepath.Join(t.TempDir(), "child")
	if err := os.WriteFile(liar, []byte("#!/bin/sh\necho done 1000\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	s, err := Start(Config{Exe: liar, Timeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	_, err = s.JetStream(context.Background(), JetStreamCase{Size: 1024, Publishers: 2, Msgs: 10, Warmup: 2, SyncAlways: true})
	if err == nil || errors.Is(err, ErrChild) || !strings.Contains(err.Error(), "the stream holds 0 messages, 12 were acknowledged") {
		t.Fatalf("err = %v, want the stored count refused", err)
	}
}

func TestChildFailure(t *testing.T) {
	s, err := Start(Config{Exe: "/bin/false"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	_, err = s.Latency(context.Background(), LatencyCase{Size: 1024, Publishers: 1, Samples: 1})
	if !errors.Is(err, ErrChild) {
		t.Fatalf("err = %v, want ErrChild", err)
	}
	if _, err := s.Latency(context.Background(), LatencyCase{Size: 4, Publishers: 1, Samples: 1}); err == nil || errors.Is(err, ErrChild) {
		t.Fatalf("a message too short for the stamp: err = %v", err)
	}
}

func TestParseJob(t *testing.T) {
	_, caPEM, err := selfSigned()
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := json.Marshal(string(caPEM))
	tests := map[string]struct {
		spec    string
		wantErr string
	}{
		"latency":         {spec: `{"mode":"latency","url":"nats://127.0.0.1:4222","size":1024,"workers":8,"count":10,"warmup":2}`},
		"throughput":      {spec: `{"mode":"throughput","url":"nats://x","size":1024,"workers":64,"count":10}`},
		"jetstream":       {spec: `{"mode":"jetstream","url":"nats://127.0.0.1:4222","size":1024,"workers":64,"count":313,"warmup":32}`},
		"js, no messages": {spec: `{"mode":"jetstream","url":"u","size":1024,"workers":64,"count":0}`, wantErr: "count"},
		"js, too many":    {spec: `{"mode":"jetstream","url":"u","size":1024,"workers":64,"count":200000}`, wantErr: "count"},
		"js, no url":      {spec: `{"mode":"jetstream","size":1024,"workers":64,"count":1}`, wantErr: "no url"},
		"js, too small":   {spec: `{"mode":"jetstream","url":"u","size":7,"workers":64,"count":1}`, wantErr: "size"},
		"js over tls":     {spec: `{"mode":"jetstream","url":"tls://127.0.0.1:4222","size":1024,"workers":1,"count":1,"ca":` + string(ca) + `}`},
		"JetStream mode":  {spec: `{"mode":"JetStream","url":"u","size":1024,"workers":1,"count":1}`, wantErr: "unknown mode"},
		"not json":        {spec: `latency`, wantErr: "child job"},
		"unknown mode":    {spec: `{"mode":"x","url":"u","size":1024,"workers":1,"count":1}`, wantErr: "unknown mode"},
		"no url":          {spec: `{"mode":"latency","size":1024,"workers":1,"count":1}`, wantErr: "no url"},
		"too small":       {spec: `{"mode":"latency","url":"u","size":7,"workers":1,"count":1}`, wantErr: "size"},
		"no workers":      {spec: `{"mode":"latency","url":"u","size":1024,"workers":0,"count":1}`, wantErr: "workers"},
		"no messages":     {spec: `{"mode":"latency","url":"u","size":1024,"workers":1,"count":0}`, wantErr: "count"},
		"far too many":    {spec: `{"mode":"latency","url":"u","size":1024,"workers":100,"count":1000000}`, wantErr: "count"},
		"negative warmup": {spec: `{"mode":"latency","url":"u","size":1024,"workers":1,"count":1,"warmup":-1}`, wantErr: "warm-up"},
		"tls":             {spec: `{"mode":"latency","url":"tls://127.0.0.1:4222","size":1024,"workers":1,"count":1,"ca":` + string(ca) + `}`},
		"tls without ca":  {spec: `{"mode":"latency","url":"tls://127.0.0.1:4222","size":1024,"workers":1,"count":1}`, wantErr: "needs a CA"},
		"ca without tls":  {spec: `{"mode":"latency","url":"nats://127.0.0.1:4222","size":1024,"workers":1,"count":1,"ca":` + string(ca) + `}`, wantErr: "needs a CA"},
		"ca not pem":      {spec: `{"mode":"latency","url":"tls://127.0.0.1:4222","size":1024,"workers":1,"count":1,"ca":"x"}`, wantErr: "no certificate"},
		"paced":           {spec: `{"mode":"latency","url":"u","size":1024,"workers":1,"count":1,"pace_ns":500000}`},
		"negative pace":   {spec: `{"mode":"latency","url":"u","size":1024,"workers":1,"count":1,"pace_ns":-1}`, wantErr: "pace"},
		"pace over 1 s":   {spec: `{"mode":"latency","url":"u","size":1024,"workers":1,"count":1,"pace_ns":1000000001}`, wantErr: "pace"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			j, err := parseJob(tc.spec)
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("err = %v, want %q", err, tc.wantErr)
			}
			if err == nil && (j.tlsConf != nil) != (j.CA != "") {
				t.Fatalf("CA %q but TLS config %v", j.CA, j.tlsConf)
			}
		})
	}
}

func TestParseDone(t *testing.T) {
	tests := map[string]struct {
		out  string
		want time.Duration
		ok   bool
	}{
		"plain":          {out: "done 1500\n", want: 1500, ok: true},
		"noise first":    {out: "hello\ndone 7\n\n", want: 7, ok: true},
		"empty":          {out: ""},
		"not a number":   {out: "done x\n"},
		"negative":       {out: "done -5\n"},
		"extra field":    {out: "done 5 6\n"},
		"something else": {out: "finished 5\n"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := parseDone(tc.out)
			if (err == nil) != tc.ok || got != tc.want {
				t.Fatalf("parseDone(%q) = %v, %v", tc.out, got, err)
			}
		})
	}
}

func TestStats(t *testing.T) {
	ds := make([]time.Duration, 0, 100)
	for i := 100; i >= 1; i-- {
		ds = append(ds, time.Duration(i))
	}
	p50, p99, mean := stats(ds)
	if p50 != 50 || p99 != 99 || mean != 50 {
		t.Fatalf("stats = %v %v %v, want 50 99 50", p50, p99, mean)
	}
	if p50, p99, _ := stats([]time.Duration{7}); p50 != 7 || p99 != 7 {
		t.Fatalf("one sample: %v %v", p50, p99)
	}
	if p50, _, _ := stats(nil); p50 != 0 {
		t.Fatalf("no samples: %v", p50)
	}
}

func TestNames(t *testing.T) {
	lat, tput := Cases(false)
	qlat, qtput := Cases(true)
	want := []string{"OneWay/1KiB/publishers-1", "OneWay/64KiB/publishers-1", "OneWay/1KiB/publishers-1/tls", "OneWay/64KiB/publishers-1/tls",
		"OneWay/1KiB/publishers-1/paced-500us", "OneWay/64KiB/publishers-1/paced-500us",
		"OneWay/1KiB/publishers-1/paced-500us/tls", "OneWay/64KiB/publishers-1/paced-500us/tls",
		"OneWay/1KiB/publishers-8", "OneWay/1KiB/publishers-64"}
	if len(lat) != len(want) || len(qlat) != len(want) {
		t.Fatalf("%d latency cases (quick %d), want %d", len(lat), len(qlat), len(want))
	}
	for i, c := range lat {
		if c.Name() != want[i] || qlat[i].Name() != want[i] {
			t.Errorf("case %d named %q (quick %q), want %q", i, c.Name(), qlat[i].Name(), want[i])
		}
		if qlat[i].Samples*10 != c.Samples || qlat[i].Samples < c.Publishers {
			t.Errorf("%s: quick %d samples, full %d", c.Name(), qlat[i].Samples, c.Samples)
		}
	}
	if lat[0].Samples != 10000 {
		t.Errorf("1 KiB one publisher: %d samples, want 10000", lat[0].Samples)
	}
	for _, base := range []int{0, 4} { // back to back, then paced
		for i, plain := range lat[base : base+2] {
			if sec := lat[base+2+i]; !sec.TLS || plain.TLS || sec.Samples != plain.Samples || sec.Warmup != plain.Warmup || sec.Size != plain.Size || sec.Pace != plain.Pace {
				t.Errorf("TLS case %+v is not the twin of %+v", sec, plain)
			}
		}
	}
	for _, c := range lat[4:8] {
		if c.Pace != PaceFair {
			t.Errorf("%s: pace %v, want %v", c.Name(), c.Pace, PaceFair)
		}
	}
	if tput[0].Name() != "RequestReply/1KiB/requesters-64" || qtput[0].Msgs*10 != tput[0].Msgs {
		t.Errorf("throughput cases %+v %+v", tput, qtput)
	}
	js, qjs := JetStreamCases(false), JetStreamCases(true)
	wantJS := []string{"JetStreamPublish/1KiB/publishers-64/sync-always", "JetStreamPublish/1KiB/publishers-64/sync-default"}
	if len(js) != len(wantJS) || len(qjs) != len(wantJS) {
		t.Fatalf("%d JetStream cases (quick %d), want %d", len(js), len(qjs), len(wantJS))
	}
	for i, c := range js {
		if c.Name() != wantJS[i] || qjs[i].Name() != wantJS[i] {
			t.Errorf("JetStream case %d named %q (quick %q), want %q", i, c.Name(), qjs[i].Name(), wantJS[i])
		}
		if qjs[i].Msgs*10 != c.Msgs || qjs[i].Warmup*10 != c.Warmup || qjs[i].Msgs < c.Publishers || c.Warmup < c.Publishers {
			t.Errorf("%s: quick %d+%d messages, full %d+%d", c.Name(), qjs[i].Msgs, qjs[i].Warmup, c.Msgs, c.Warmup)
		}
	}
	// The default-sync case sends as many messages as the request-reply case it sits beside.
	if d := js[1]; d.Size != tput[0].Size || d.Publishers != tput[0].Requesters || d.Msgs != tput[0].Msgs || d.Warmup != tput[0].Warmup {
		t.Errorf("JetStream default sync %+v is not the twin of request-reply %+v", d, tput[0])
	}
	if a := js[0]; a.Size != 1<<10 || a.Publishers != 64 || !a.SyncAlways || js[1].SyncAlways {
		t.Errorf("JetStream cases %+v", js)
	}
	for n, want := range map[int]string{1024: "1KiB", 65536: "64KiB", 1 << 20: "1MiB", 100: "100B", 1500: "1500B"} {
		if got := SizeName(n); got != want {
			t.Errorf("SizeName(%d) = %q, want %q", n, got, want)
		}
	}
}

// FuzzParseJob: the job comes from the parent process's environment; a garbled one must be
// refused, never accepted out of range, never panic.
func FuzzParseJob(f *testing.F) {
	f.Add(`{"mode":"latency","url":"nats://127.0.0.1:4222","size":1024,"workers":8,"count":10,"warmup":2}`)
	f.Add(`{"mode":"throughput","url":"u","size":8,"workers":4096,"count":2441}`)
	f.Add(`{"mode":"jetstream","url":"nats://127.0.0.1:4222","size":1024,"workers":64,"count":313,"warmup":32}`)
	f.Add(`{"mode":"jetstream","url":"u","size":1024,"workers":64,"count":156251}`)
	f.Add(`{"mode":"jetstream","url":"u","size":7,"workers":64,"count":1}`)
	f.Add(`{"mode":"latency","url":"u","size":1024,"workers":1,"count":-1}`)
	f.Add(`null`)
	f.Add(`{"mode":"latency","url":"u","size":1024,"workers":1,"count":1,"pace_ns":500000}`)
	f.Add(`{"mode":"latency","url":"u","size":1024,"workers":1,"count":1,"pace_ns":-500000}`)
	if _, caPEM, err := selfSigned(); err == nil {
		ca, _ := json.Marshal(string(caPEM))
		f.Add(`{"mode":"latency","url":"tls://127.0.0.1:4222","size":1024,"workers":1,"count":1,"ca":` + string(ca) + `}`)
		f.Add(`{"mode":"latency","url":"nats://127.0.0.1:4222","size":1024,"workers":1,"count":1,"ca":` + string(ca) + `}`)
	}
	f.Add(`{"mode":"latency","url":"tls://127.0.0.1:4222","size":1024,"workers":1,"count":1,"ca":"-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n"}`)
	f.Fuzz(func(t *testing.T, spec string) {
		j, err := parseJob(spec)
		if err != nil {
			return
		}
		if j.Mode != modeLatency && j.Mode != modeThroughput && j.Mode != modeJetStream {
			t.Fatalf("accepted a job of unknown mode %+v", j)
		}
		if j.Size < stampLen || j.Workers < 1 || j.Count < 1 || j.Warmup < 0 ||
			j.Workers*j.Count > maxJobMsgs || j.Workers*j.Warmup > maxJobMsgs || j.URL == "" ||
			j.PaceNS < 0 || j.PaceNS > int64(time.Second) {
			t.Fatalf("accepted an out-of-range job %+v", j)
		}
		if (j.CA != "") != (j.tlsConf != nil) || (j.CA != "") != strings.HasPrefix(j.URL, "tls://") ||
			j.tlsConf != nil && (j.tlsConf.InsecureSkipVerify || j.tlsConf.RootCAs == nil || j.tlsConf.MinVersion != tls.VersionTLS13) {
			t.Fatalf("accepted a job with an inconsistent TLS setup %+v", j)
		}
	})
}
