package store

import (
	"github.com/paf-mesh/paf-mesh/relay/wire"

	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/paf-mesh/paf-mesh/internal/testutil"
)

// BenchmarkInboxThroughput: one inbox fed by 64 goroutines in this process, 1 KiB messages,
// each waiting for its acknowledgement (on disk) before adding the next: what the receiving
// side of the relay can store when no network or sender is in the way. 140,000 / 14,000
// messages (full / quick): more than maxNewIDs, so the full run includes copying the received
// ids into bbolt, which the writer does between two batches, holding up the acknowledgements
// meanwhile: the max-ack figure shows it.
func BenchmarkInboxThroughput(b *testing.B) {
	const workers = 64
	total := testutil.BenchCount(140000, 14000)
	body := string(benchText(1 << 10))
	for range b.N {
		b.StopTimer()
		ib, err := OpenInbox(Config{Root: b.TempDir(), LargeBody: 10 << 10}, "bob")
		if err != nil {
			b.Fatal(err)
		}
		acks := make([]time.Duration, total)
		var wg sync.WaitGroup
		sem := make(chan struct{}, workers)
		b.StartTimer()
		for i := range total {
			sem <- struct{}{}
			wg.Add(1)
			m := &wire.Message{ID: ulid.Make().String(), From: "alice", To: "bob", Kind: wire.KindMessage, Body: body, SentAt: time.Now()}
			start := time.Now()
			ib.Add(m, nil, false, func(err error) {
				if err != nil {
					b.Error(err)
				}
				acks[i] = time.Since(start)
				<-sem
				wg.Done()
			})
		}
		wg.Wait()
		b.StopTimer()
		if err := ib.Close(); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(total*b.N)/b.Elapsed().Seconds(), "msgs/s")
		b.ReportMetric(us(testutil.Percentile(acks, 0.50)), "p50-ack-us")
		b.ReportMetric(us(testutil.Percentile(acks, 0.99)), "p99-ack-us")
		b.ReportMetric(us(slices.Max(acks)), "max-ack-us")
	}
}

// BenchmarkInboxSyncFloor: the disk work of one inbox commit alone, an overwrite of 29 KiB
// (about 26 messages of 1 KiB, a typical batch under load) into a preallocated file followed
// by fdatasync, one at a time ("serial") and two at once ("2-concurrent", what overlapping
// commits could gain). 2,000 / 300 syncs.
func BenchmarkInboxSyncFloor(b *testing.B) {
	batch := benchText(29 << 10)
	const fileSize = 64 << 20
	for _, par := range []int{1, 2} {
		name := "serial"
		if par == 2 {
			name = "2-concurrent"
		}
		b.Run(name, func(b *testing.B) {
			f, err := os.Create(filepath.Join(b.TempDir(), "log"))
			if err != nil {
				b.Fatal(err)
			}
			defer f.Close()
			if _, err := f.WriteAt(make([]byte, fileSize), 0); err != nil {
				b.Fatal(err)
			}
			if err := fdatasync(f); err != nil {
				b.Fatal(err)
			}
			n := testutil.BenchCount(2000, 300)
			var (
				mu  sync.Mutex
				off int64
			)
			b.ResetTimer()
			for range b.N {
				var wg sync.WaitGroup
				for range par {
					wg.Go(func() {
						for range n / par {
							mu.Lock()
							at := off % (fileSize - int64(len(batch)))
							off += int64(len(batch))
							mu.Unlock()
							if _, err := f.WriteAt(batch, at); err != nil {
								b.Error(err)
								return
							}
							if err := fdatasync(f); err != nil {
								b.Error(err)
								return
							}
						}
					})
				}
				wg.Wait()
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "syncs/s")
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*n), "us-per-sync")
		})
	}
}

// us is d in microseconds.
func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

// benchText is n bytes of printable text.
func benchText(n int) []byte {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789 "
	b := make([]byte, n)
	for i := range b {
		b[i] = alphabet[i%len(alphabet)]
	}
	return b
}
