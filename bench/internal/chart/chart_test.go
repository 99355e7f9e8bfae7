package chart

import (
	"errors"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gonum.org/v1/plot"

	"github.com/paf-mesh/paf-mesh/bench/internal/report"
)

func series(name string, chart bool, pts ...float64) report.Series {
	s := report.Series{Name: name, Chart: chart}
	for i := 0; i+1 < len(pts); i += 2 {
		s.Points = append(s.Points, report.Point{X: pts[i], Y: pts[i+1]})
	}
	return s
}

func TestWrite(t *testing.T) {
	tests := map[string]struct {
		curve   report.Curve
		wantErr error
		logY    bool
	}{
		"membership with target": {curve: report.Curve{
			Key: "membership", Title: "Membership convergence", XLabel: "peers", YLabel: "time", Unit: "ms",
			Xs: []float64{10, 50, 100, 200}, Chart: "membership.png", Target: 3000, TargetLabel: "target 3 s",
			Series: []report.Series{series("paf-mesh", true, 10, 120, 50, 700, 100, 1800, 200, 4000), series("stock", true, 10, 100, 100, 1500)},
		}},
		"latency spread: log y": {curve: report.Curve{
			Key: "relay-concurrency", Title: "Relay latency", XLabel: "senders", YLabel: "one-way", Unit: "us",
			Xs: []float64{1, 8, 64}, Chart: "relay-latency.png", LogX: true, LogY: true,
			Series: []report.Series{series("relay p50", true, 1, 40, 8, 90, 64, 700), series("NATS p99", true, 1, 100, 64, 9000), series("ack", false, 1, 1e6)},
		}, logY: true},
		"one point": {curve: report.Curve{
			Key: "handover", Title: "Handover", XLabel: "stored", YLabel: "handover", Unit: "ms",
			Xs: []float64{1}, Chart: "handover.png", Target: 500, TargetLabel: "target",
			Series: []report.Series{series("p99", true, 1, 140)},
		}},
		"nothing charted": {curve: report.Curve{
			Key: "names", Xs: []float64{10}, Chart: "names.png",
			Series: []report.Series{series("mean", true), series("table only", false, 10, 5)},
		}, wantErr: ErrNoData},
		"baselines alone": {curve: report.Curve{
			Key: "relay-concurrency", Xs: []float64{1}, Chart: "relay-latency.png",
			Series: []report.Series{series("relay p50", true), {Name: "NATS p50", Chart: true, Baseline: true, Points: []report.Point{{X: 1, Y: 30}}}},
		}, wantErr: ErrNoData},
		"no chart file": {curve: report.Curve{Key: "relay-sizes", Xs: []float64{1}}, wantErr: errAny},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "charts")
			path, err := Write(dir, tc.curve)
			if tc.wantErr != nil {
				if err == nil || tc.wantErr != errAny && !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
				if _, err := os.Stat(filepath.Join(dir, tc.curve.Chart)); tc.curve.Chart != "" && err == nil {
					t.Fatal("a chart without data was written")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			f, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			cfg, err := png.DecodeConfig(f)
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Width != Width || cfg.Height != Height {
				t.Errorf("%dx%d, want %dx%d", cfg.Width, cfg.Height, Width, Height)
			}
			p, err := build(tc.curve)
			if err != nil {
				t.Fatal(err)
			}
			if _, isLog := p.Y.Scale.(plot.LogScale); isLog != tc.logY {
				t.Errorf("log y = %v, want %v", isLog, tc.logY)
			}
			if tc.curve.Target > 0 && p.Y.Max < tc.curve.Target {
				t.Errorf("y axis ends at %v, below the target %v", p.Y.Max, tc.curve.Target)
			}
		})
	}
}

// errAny stands for "some error" in the table.
var errAny = errors.New("any error")

func TestNiceTicks(t *testing.T) {
	tests := map[string]struct {
		lo, hi float64
		labels []string
	}{
		"ms up to 2800": {0, 2800, []string{"0", "500", "1000", "1500", "2000", "2500"}},
		"small":         {0, 0.7, []string{"0", "0.2", "0.4", "0.6"}},
		"one value":     {3, 3, []string{"3"}},
		"not from zero": {95, 130, []string{"100", "110", "120", "130"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			var got []string
			for _, tk := range (niceTicks{}).Ticks(tc.lo, tc.hi) {
				if tk.Label != "" {
					got = append(got, tk.Label)
				}
			}
			if strings.Join(got, " ") != strings.Join(tc.labels, " ") {
				t.Fatalf("labels %q, want %q", got, tc.labels)
			}
		})
	}
}
