package chart

import (
	"errors"
	"fmt"
	"image/color"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"

	"github.com/paf-mesh/paf-mesh/bench/internal/report"
)

// Size of a chart in pixels, at DPI.
const (
	Width  = 700
	Height = 450
	DPI    = 96
)

// logYSpread is the ratio of largest to smallest value above which the y axis is logarithmic.
const logYSpread = 30

// ErrNoData is returned for a curve whose charted series have no point.
var ErrNoData = errors.New("chart: no data")

// Write draws curve c into dir/c.Chart and returns the file's path.
func Write(dir string, c report.Curve) (string, error) {
	if c.Chart == "" {
		return "", fmt.Errorf("chart: curve %s has no chart file", c.Key)
	}
	p, err := build(c)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("chart: %w", err)
	}
	path := filepath.Join(dir, c.Chart)
	canvas := vgimg.NewWith(vgimg.UseWH(px(Width), px(Height)), vgimg.UseDPI(DPI))
	p.Draw(draw.New(canvas))
	f, err := os.Create(path)
	if err != nil {
		return "", fmt.Errorf("chart: %w", err)
	}
	if _, err := (vgimg.PngCanvas{Canvas: canvas}).WriteTo(f); err != nil {
		f.Close()
		return "", fmt.Errorf("chart: write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return "", fmt.Errorf("chart: write %s: %w", path, err)
	}
	return path, nil
}

func px(n int) vg.Length { return vg.Length(n) * vg.Inch / DPI }

// build lays the plot out.
func build(c report.Curve) (*plot.Plot, error) {
	var drawn []report.Series
	measured := false
	for _, s := range c.Series {
		if s.Chart && len(s.Points) > 0 {
			drawn = append(drawn, s)
			measured = measured || !s.Baseline
		}
	}
	if !measured {
		return nil, fmt.Errorf("%w: %s", ErrNoData, c.Key)
	}
	p := plot.New()
	p.Title.Text = c.Title
	p.X.Label.Text = c.XLabel
	unit := c.Unit
	if unit == "us" {
		unit = "µs"
	}
	p.Y.Label.Text = fmt.Sprintf("%s (%s)", c.YLabel, unit)
	// Top left, inside the data area; the y axis leaves headroom for it (below).
	p.Legend.Top = true
	p.Legend.Left = true
	p.Legend.XOffs = vg.Points(12)
	p.Legend.YOffs = vg.Points(-8)
	p.Add(plotter.NewGrid())

	lo, hi := math.Inf(1), math.Inf(-1)
	for i, s := range drawn {
		xys := make(plotter.XYs, len(s.Points))
		for j, pt := range s.Points {
			xys[j] = plotter.XY{X: pt.X, Y: pt.Y}
			lo, hi = math.Min(lo, pt.Y), math.Max(hi, pt.Y)
		}
		line, points, err := plotter.NewLinePoints(xys)
		if err != nil {
			return nil, fmt.Errorf("chart: %s: %w", c.Key, err)
		}
		line.Color = plotutil.Color(i)
		line.Width = vg.Points(1.5)
		points.Color = plotutil.Color(i)
		points.Shape = plotutil.Shape(i)
		p.Add(line, points)
		p.Legend.Add(s.Name, line, points)
	}
	if c.Target > 0 {
		lo, hi = math.Min(lo, c.Target), math.Max(hi, c.Target)
		target, err := plotter.NewLine(plotter.XYs{{X: c.Xs[0], Y: c.Target}, {X: c.Xs[len(c.Xs)-1], Y: c.Target}})
		if err != nil {
			return nil, fmt.Errorf("chart: %s: %w", c.Key, err)
		}
		target.Color = color.RGBA{R: 200, A: 255}
		target.Dashes = []vg.Length{vg.Points(6), vg.Points(4)}
		p.Add(target)
		p.Legend.Add(c.TargetLabel, target)
	}
	ticks := make(plot.ConstantTicks, 0, len(c.Xs))
	for _, x := range c.Xs {
		ticks = append(ticks, plot.Tick{Value: x, Label: strconv.FormatFloat(x, 'f', -1, 64)})
	}
	p.X.Tick.Marker = ticks
	p.X.Min, p.X.Max = c.Xs[0], c.Xs[len(c.Xs)-1]
	if c.LogX && c.Xs[0] > 0 {
		p.X.Scale = plot.LogScale{}
		p.X.Min, p.X.Max = c.Xs[0]*0.8, c.Xs[len(c.Xs)-1]*1.25
	} else {
		pad := (p.X.Max - p.X.Min) * 0.05
		if pad == 0 { // a single x
			pad = math.Max(1, math.Abs(p.X.Min)*0.1)
		}
		p.X.Min, p.X.Max = p.X.Min-pad, p.X.Max+pad
	}
	if c.LogY && lo > 0 && hi/lo > logYSpread {
		p.Y.Scale = plot.LogScale{}
		p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
		p.Y.Min, p.Y.Max = lo/1.5, hi*8
	} else {
		p.Y.Min, p.Y.Max = math.Min(0, lo*1.4), math.Max(hi*1.4, 1e-9)
		p.Y.Tick.Marker = niceTicks{}
	}
	return p, nil
}

// niceTicks labels a linear axis every 1, 2 or 5 times a power of ten, about five labels in
// all, written without trailing zeros (gonum's default may label only two ticks, as "2500.00").
type niceTicks struct{}

func (niceTicks) Ticks(lo, hi float64) []plot.Tick {
	if !(hi > lo) {
		return []plot.Tick{{Value: lo, Label: strconv.FormatFloat(lo, 'f', -1, 64)}}
	}
	raw := (hi - lo) / 5
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	step := mag
	for _, m := range []float64{2, 5, 10} {
		if step >= raw*0.8 {
			break
		}
		step = m * mag
	}
	prec := max(0, -int(math.Floor(math.Log10(step))))
	var ticks []plot.Tick
	for i := math.Ceil(lo / step); i*step <= hi+step*1e-9; i++ {
		v := i * step
		label := strconv.FormatFloat(v, 'f', prec, 64)
		if strings.Contains(label, ".") {
			label = strings.TrimRight(strings.TrimRight(label, "0"), ".")
		}
		ticks = append(ticks, plot.Tick{Value: v, Label: label})
		if minor := v + step/2; minor < hi {
			ticks = append(ticks, plot.Tick{Value: minor})
		}
	}
	return ticks
}
