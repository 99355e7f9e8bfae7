package testutil

import (
	"math"
	"os"
	"runtime/debug"
	"slices"
	"time"
)

// BenchQuick reports whether PAF_BENCH_QUICK=1 asks for the quick run (make bench --quick):
// benchmarks then take fewer samples or sizes, as each one's comment says.
func BenchQuick() bool { return os.Getenv("PAF_BENCH_QUICK") == "1" }

// BenchCount is full, or quick in the quick run (see [BenchQuick]).
func BenchCount[T any](full, quick T) T {
	if BenchQuick() {
		return quick
	}
	return full
}

// RaceEnabled reports whether the running binary was built with -race, for tests whose
// budgets or whose children's builds depend on it.
func RaceEnabled() bool {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, s := range bi.Settings {
		if s.Key == "-race" {
			return s.Value == "true"
		}
	}
	return false
}

// Percentile returns the p-th percentile (0 < p <= 1) of ds by nearest rank: the smallest
// sample that at least a share p of the samples are at or below, so p = 1 is the maximum and
// every result is a time that was measured. It sorts ds in place. With no samples it is 0.
func Percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	slices.Sort(ds)
	i := int(math.Ceil(p*float64(len(ds)))) - 1
	return ds[max(0, min(i, len(ds)-1))]
}

// Millis is d in milliseconds, with the fraction: the unit benchmarks report times in.
func Millis(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
