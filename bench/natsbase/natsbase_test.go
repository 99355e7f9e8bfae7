package natsbase

import (
	"context"
	"errors"
	"os"
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
	} {
		t.Run(name, func(t *testing.T) {
			r, err := s.Latency(ctx, c)
			if err != nil {
				t.Fatal(err)
			}
			if want := perWorker(c.Samples, c.Publishers) * c.Publishers; r.Samples != want {
				t.Errorf("samples %d, want %d", r.Samples, want)
			}
			if r.P50 <= 0 || r.P99 < r.P50 || r.Mean <= 0 || r.P99 > time.Minute {
				t.Errorf("implausible result %+v", r)
			}
		})
	}
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
	tests := map[string]struct {
		spec    string
		wantErr string
	}{
		"latency":         {spec: `{"mode":"latency","url":"nats://127.0.0.1:4222","size":1024,"workers":8,"count":10,"warmup":2}`},
		"throughput":      {spec: `{"mode":"throughput","url":"nats://x","size":1024,"workers":64,"count":10}`},
		"not json":        {spec: `latency`, wantErr: "child job"},
		"unknown mode":    {spec: `{"mode":"x","url":"u","size":1024,"workers":1,"count":1}`, wantErr: "unknown mode"},
		"no url":          {spec: `{"mode":"latency","size":1024,"workers":1,"count":1}`, wantErr: "no url"},
		"too small":       {spec: `{"mode":"latency","url":"u","size":7,"workers":1,"count":1}`, wantErr: "size"},
		"no workers":      {spec: `{"mode":"latency","url":"u","size":1024,"workers":0,"count":1}`, wantErr: "workers"},
		"no messages":     {spec: `{"mode":"latency","url":"u","size":1024,"workers":1,"count":0}`, wantErr: "count"},
		"far too many":    {spec: `{"mode":"latency","url":"u","size":1024,"workers":100,"count":1000000}`, wantErr: "count"},
		"negative warmup": {spec: `{"mode":"latency","url":"u","size":1024,"workers":1,"count":1,"warmup":-1}`, wantErr: "warm-up"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := parseJob(tc.spec)
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("err = %v, want %q", err, tc.wantErr)
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
	want := []string{"OneWay/1KiB/publishers-1", "OneWay/64KiB/publishers-1", "OneWay/1KiB/publishers-8", "OneWay/1KiB/publishers-64"}
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
	if tput[0].Name() != "RequestReply/1KiB/requesters-64" || qtput[0].Msgs*10 != tput[0].Msgs {
		t.Errorf("throughput cases %+v %+v", tput, qtput)
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
	f.Add(`{"mode":"latency","url":"u","size":1024,"workers":1,"count":-1}`)
	f.Add(`null`)
	f.Fuzz(func(t *testing.T, spec string) {
		j, err := parseJob(spec)
		if err != nil {
			return
		}
		if j.Size < stampLen || j.Workers < 1 || j.Count < 1 || j.Warmup < 0 ||
			j.Workers*j.Count > maxJobMsgs || j.Workers*j.Warmup > maxJobMsgs || j.URL == "" {
			t.Fatalf("accepted an out-of-range job %+v", j)
		}
	})
}
