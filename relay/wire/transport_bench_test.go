package wire

import (
	"context"
	"io"
	"log/slog"
	"net"
	"slices"
	"testing"
	"time"
)

// Benchmarks of the transport on loopback, in one process. SPEC section 10 asks for one-way
// latency beside raw TCP measured in the same run: BenchmarkRawTCPPingPong1K is that
// baseline, and each latency benchmark reports p50/p99 one-way (round trip / 2).

const benchBody = 1 << 10

// tpReportLatency reports the p50 and p99 of one-way times (half of each round trip).
func tpReportLatency(b *testing.B, rtts []time.Duration) {
	if len(rtts) == 0 {
		return
	}
	slices.Sort(rtts)
	pct := func(p float64) float64 {
		return float64(rtts[int(p*float64(len(rtts)-1))]) / 2 / float64(time.Microsecond)
	}
	b.ReportMetric(pct(0.50), "p50-oneway-us")
	b.ReportMetric(pct(0.99), "p99-oneway-us")
}

// tpBenchPair returns a sender and a receiver whose handler acknowledges each request with an
// empty response.
func tpBenchPair(b *testing.B) (a, srv *Transport) {
	quiet := func(c *Config) { c.Logger = slog.New(slog.DiscardHandler) }
	ack := tpFunc(func(_ string, _ []byte, respond func([]byte, error)) { respond(nil, nil) })
	a, srv = tpNew(b, "a", nil, quiet), tpNew(b, "b", ack, quiet)
	if _, err := a.Request(context.Background(), tid("b"), srv.Addr(), nil); err != nil { // connect
		b.Fatal(err)
	}
	return a, srv
}

// BenchmarkRawTCPPingPong1K is the baseline: 1 KiB written over plain loopback TCP and echoed
// back by a goroutine of the same process.
func BenchmarkRawTCPPingPong1K(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		defer nc.Close()
		buf := make([]byte, benchBody)
		for {
			if _, err := io.ReadFull(nc, buf); err != nil {
				return
			}
			if _, err := nc.Write(buf); err != nil {
				return
			}
		}
	}()
	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, benchBody)
	rtts := make([]time.Duration, 0, b.N)
	b.SetBytes(benchBody)
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		if _, err := nc.Write(buf); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(nc, buf); err != nil {
			b.Fatal(err)
		}
		rtts = append(rtts, time.Since(start))
	}
	b.StopTimer()
	tpReportLatency(b, rtts)
	nc.Close()
	ln.Close()
	<-done
}

// BenchmarkRequestLatency1K: sequential requests of 1 KiB, each acknowledged.
func BenchmarkRequestLatency1K(b *testing.B) {
	a, srv := tpBenchPair(b)
	ctx := context.Background()
	body := make([]byte, benchBody)
	rtts := make([]time.Duration, 0, b.N)
	b.SetBytes(benchBody)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		if _, err := a.Request(ctx, tid("b"), srv.Addr(), body); err != nil {
			b.Fatal(err)
		}
		rtts = append(rtts, time.Since(start))
	}
	b.StopTimer()
	tpReportLatency(b, rtts)
}

// BenchmarkRequestThroughput1K: one sender pipelining acknowledged 1 KiB requests.
func BenchmarkRequestThroughput1K(b *testing.B) {
	// window: requests in flight from one goroutine issuing without waiting (startRequest).
	b.Run("window-256", func(b *testing.B) {
		const window = 256
		a, srv := tpBenchPair(b)
		ctx := context.Background()
		body := make([]byte, benchBody)
		ring := make([]*Call, window)
		b.SetBytes(benchBody)
		b.ReportAllocs()
		b.ResetTimer()
		for i := range b.N {
			if cl := ring[i%window]; cl != nil {
				if _, err := cl.Wait(ctx); err != nil {
					b.Fatal(err)
				}
			}
			cl, err := a.StartRequest(ctx, tid("b"), srv.Addr(), body, nil)
			if err != nil {
				b.Fatal(err)
			}
			ring[i%window] = cl
		}
		for _, cl := range ring {
			if cl != nil {
				if _, err := cl.Wait(ctx); err != nil {
					b.Fatal(err)
				}
			}
		}
		b.StopTimer()
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	})
	// goroutines: concurrent blocking Requests, the way a caller without startRequest pipelines.
	b.Run("goroutines-64", func(b *testing.B) {
		a, srv := tpBenchPair(b)
		body := make([]byte, benchBody)
		b.SetBytes(benchBody)
		b.ReportAllocs()
		b.SetParallelism(64)
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			ctx := context.Background()
			for pb.Next() {
				if _, err := a.Request(ctx, tid("b"), srv.Addr(), body); err != nil {
					b.Error(err)
					return
				}
			}
		})
		b.StopTimer()
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	})
}

// BenchmarkNewConnection is what a connection to a peer not yet connected costs: the TCP
// connect, the Noise handshake (three messages, four X25519 operations and two identity
// checks a side) and a first empty request. BenchmarkRawTCPConnect is the same without the
// handshake: a TCP connect and one 1-byte round trip, the baseline in the same run.
func BenchmarkNewConnection(b *testing.B) {
	quiet := func(c *Config) { c.Logger = slog.New(slog.DiscardHandler) }
	ack := tpFunc(func(_ string, _ []byte, respond func([]byte, error)) { respond(nil, nil) })
	srv := tpNew(b, "b", ack, quiet)
	ctx := context.Background()
	for b.Loop() {
		// Making the client (a listener, an identity) is not part of a connection's cost.
		b.StopTimer()
		a := tpNew(b, "a", nil, quiet)
		b.StartTimer()
		if _, err := a.Request(ctx, tid("b"), srv.Addr(), nil); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		a.Close()
		b.StartTimer()
	}
}

func BenchmarkRawTCPConnect(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				var one [1]byte
				if _, err := io.ReadFull(c, one[:]); err == nil {
					_, _ = c.Write(one[:])
				}
			}()
		}
	}()
	for b.Loop() {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			b.Fatal(err)
		}
		var one [1]byte
		if _, err := c.Write(one[:]); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(c, one[:]); err != nil {
			b.Fatal(err)
		}
		c.Close()
	}
}
