package testutil

import (
	"slices"
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	ms := time.Millisecond
	samples := []time.Duration{5 * ms, 1 * ms, 4 * ms, 2 * ms, 3 * ms}
	tests := map[string]struct {
		ds   []time.Duration
		p    float64
		want time.Duration
	}{
		"median":                  {ds: samples, p: 0.5, want: 3 * ms},
		"maximum":                 {ds: samples, p: 1, want: 5 * ms},
		"p99 of 5 is the maximum": {ds: samples, p: 0.99, want: 5 * ms},
		"exactly one fifth":       {ds: samples, p: 0.2, want: 1 * ms},
		"just over one fifth":     {ds: samples, p: 0.21, want: 2 * ms},
		"p 0 is the minimum":      {ds: samples, p: 0, want: 1 * ms},
		"one sample":              {ds: []time.Duration{7 * ms}, p: 0.5, want: 7 * ms},
		"no samples":              {ds: nil, p: 0.5, want: 0},
		"ties":                    {ds: []time.Duration{2 * ms, 2 * ms, 1 * ms, 2 * ms}, p: 0.25, want: 1 * ms},
		"p over 1 is the maximum": {ds: samples, p: 1.5, want: 5 * ms},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			ds := slices.Clone(tc.ds)
			if got := Percentile(ds, tc.p); got != tc.want {
				t.Fatalf("Percentile(%v, %v) = %v, want %v", tc.ds, tc.p, got, tc.want)
			}
			if !slices.IsSorted(ds) {
				t.Fatalf("samples left unsorted: %v", ds)
			}
		})
	}
}

func TestMillis(t *testing.T) {
	if got := Millis(1500 * time.Microsecond); got != 1.5 {
		t.Fatalf("Millis(1.5ms) = %v", got)
	}
}

func TestBenchCount(t *testing.T) {
	tests := map[string]struct {
		env   string
		quick bool
	}{
		"unset":     {env: "", quick: false},
		"quick":     {env: "1", quick: true},
		"not a one": {env: "yes", quick: false},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Setenv("PAF_BENCH_QUICK", tc.env)
			if got := BenchQuick(); got != tc.quick {
				t.Fatalf("BenchQuick() = %v with PAF_BENCH_QUICK=%q", got, tc.env)
			}
			want, wantD := 100, time.Second
			if tc.quick {
				want, wantD = 10, time.Millisecond
			}
			if got := BenchCount(100, 10); got != want {
				t.Fatalf("BenchCount(100, 10) = %d, want %d", got, want)
			}
			if got := BenchCount(time.Second, time.Millisecond); got != wantD {
				t.Fatalf("BenchCount(1s, 1ms) = %v, want %v", got, wantD)
			}
		})
	}
}

func TestRaceEnabled(t *testing.T) {
	if got := RaceEnabled(); got != raceBuild {
		t.Fatalf("RaceEnabled() = %v in a build whose race tag says %v", got, raceBuild)
	}
}
