package report

import (
	"fmt"
	"slices"
	"strings"
)

// Value is one number with its name and display unit.
type Value struct {
	Name  string  `json:"name"`
	Value float64 `json:"value"`
	Unit  string  `json:"unit"`
	// Source is the benchmark metric the value is ("relay:BenchmarkX/1KiB p50-deliver-us"):
	// what --compare pairs values by.
	Source string `json:"source,omitempty"`
}

// Row is a computed line of the summary table.
type Row struct {
	Key          string  `json:"key"`
	Title        string  `json:"title"`
	Target       string  `json:"target"`
	Measured     []Value `json:"measured,omitempty"`
	BaselineName string  `json:"baseline_name,omitempty"`
	Baseline     []Value `json:"baseline,omitempty"`
	Ratios       []Value `json:"ratios,omitempty"` // measured / baseline, unit "x"
	Verdict      string  `json:"verdict"`
	Note         string  `json:"note,omitempty"`
}

// Point is one point of a series.
type Point struct {
	X      float64 `json:"x"`
	Y      float64 `json:"y"`
	Source string  `json:"source,omitempty"` // as Value.Source
}

// Series is one computed line of a curve; points whose benchmark has no value are absent.
type Series struct {
	Name     string  `json:"name"`
	Chart    bool    `json:"chart,omitempty"`
	Baseline bool    `json:"baseline,omitempty"`
	Points   []Point `json:"points"`
}

// Curve is a computed scaling curve.
type Curve struct {
	Key         string    `json:"key"`
	Title       string    `json:"title"`
	XLabel      string    `json:"x_label"`
	YLabel      string    `json:"y_label"`
	Unit        string    `json:"unit"`
	Xs          []float64 `json:"xs"`
	Series      []Series  `json:"series"`
	Target      float64   `json:"target,omitempty"`
	TargetLabel string    `json:"target_label,omitempty"`
	Chart       string    `json:"chart,omitempty"`
	LogX        bool      `json:"log_x,omitempty"`
	LogY        bool      `json:"log_y,omitempty"` // allowed when the values spread widely
}

// Empty reports whether no series has a point.
func (c Curve) Empty() bool {
	for _, s := range c.Series {
		if len(s.Points) > 0 {
			return false
		}
	}
	return true
}

// At returns series s's value at x.
func (s Series) At(x float64) (float64, bool) {
	for _, p := range s.Points {
		if p.X == x {
			return p.Y, true
		}
	}
	return 0, false
}

// Values are a row's numbers by label, handed to its Judge.
type Values struct {
	measured, baseline, ratios map[string]float64
}

// M is a measured value (0 if absent; Judge runs only when every required one is present).
func (v Values) M(label string) float64 { return v.measured[label] }

// B is a baseline value.
func (v Values) B(label string) (float64, bool) { x, ok := v.baseline[label]; return x, ok }

// R is a ratio, present when both its measured and baseline values are (and the baseline is
// not zero).
func (v Values) R(label string) (float64, bool) { x, ok := v.ratios[label]; return x, ok }

// BuildRow computes one row from the results.
func BuildRow(spec RowSpec, res *Results) Row {
	row := Row{Key: spec.Key, Title: spec.Title, Target: spec.Target, BaselineName: spec.BaselineName}
	v := Values{measured: map[string]float64{}, baseline: map[string]float64{}, ratios: map[string]float64{}}
	var absent []absence
	for _, mm := range spec.Measured {
		x, ok, status, reason := res.metric(mm.Ref, mm.Unit)
		if ok {
			v.measured[mm.Label] = x
			row.Measured = append(row.Measured, Value{Name: mm.Label, Value: x, Unit: mm.Show, Source: source(mm.Ref, mm.Unit)})
		} else if !mm.Optional {
			absent = append(absent, absence{mm, status, reason})
		}
	}
	for _, mm := range spec.Baseline {
		if x, ok, _, _ := res.metric(mm.Ref, mm.Unit); ok {
			v.baseline[mm.Label] = x
			row.Baseline = append(row.Baseline, Value{Name: mm.Label, Value: x, Unit: mm.Show, Source: source(mm.Ref, mm.Unit)})
		}
	}
	for _, d := range spec.Derived {
		if x, ok := d.F(v); ok {
			v.baseline[d.Label] = x
			row.Baseline = append(row.Baseline, Value{Name: d.Name, Value: x, Unit: d.Show})
		}
	}
	for _, label := range spec.Ratios {
		mx, mok := v.measured[label]
		bx, bok := v.baseline[label]
		if mok && bok && bx != 0 {
			v.ratios[label] = mx / bx
			row.Ratios = append(row.Ratios, Value{Name: label, Value: mx / bx, Unit: "x"})
		}
	}
	if len(absent) > 0 {
		row.Verdict, row.Note = explainAbsence(absent)
		return row
	}
	row.Verdict, row.Note = spec.Judge(v)
	n := 0
	for _, mm := range append(slices.Clone(spec.Measured), spec.Baseline...) {
		n = max(n, res.rounds(mm.Ref))
	}
	if n > 1 {
		row.Note = strings.TrimPrefix(row.Note+"; ", "; ") + fmt.Sprintf("medians of %d interleaved runs", n)
	}
	return row
}

// absence is a required metric that has no value, and why.
type absence struct {
	m              M
	status, reason string
}

// explainAbsence: skipped if the benchmark skipped itself, else missing, with what is missing.
func explainAbsence(abs []absence) (string, string) {
	for _, a := range abs {
		if a.status == StatusSkipped {
			reason := a.reason
			if reason == "" {
				reason = "skipped by the benchmark"
			}
			return Skipped, reason
		}
	}
	a := abs[0]
	switch a.status {
	case StatusFailed:
		return Missing, fmt.Sprintf("%s failed", a.m.Name)
	case StatusOK:
		return Missing, fmt.Sprintf("%s reported no %s", a.m.Name, a.m.Unit)
	}
	return Missing, fmt.Sprintf("no output from %s", a.m.Name)
}

// BuildCurve computes one curve from the results.
func BuildCurve(spec CurveSpec, res *Results) Curve {
	c := Curve{Key: spec.Key, Title: spec.Title, XLabel: spec.XLabel, YLabel: spec.YLabel, Unit: spec.Unit,
		Target: spec.Target, TargetLabel: spec.TargetLabel, Chart: spec.Chart, LogX: spec.LogX, LogY: spec.LogY}
	for _, x := range spec.Xs {
		c.Xs = append(c.Xs, x.X)
	}
	for _, s := range spec.Series {
		out := Series{Name: s.Name, Chart: s.Chart, Baseline: s.Baseline, Points: []Point{}}
		for _, x := range spec.Xs {
			ref := Ref{s.Pkg, fmt.Sprintf(s.NameFmt, x.Tag)}
			if y, ok, _, _ := res.metric(ref, s.Unit); ok {
				out.Points = append(out.Points, Point{X: x.X, Y: y, Source: source(ref, s.Unit)})
			}
		}
		c.Series = append(c.Series, out)
	}
	return c
}

// Build computes every row and curve.
func Build(rows []RowSpec, curves []CurveSpec, res *Results) ([]Row, []Curve) {
	var rs []Row
	var cs []Curve
	for _, r := range rows {
		rs = append(rs, BuildRow(r, res))
	}
	for _, c := range curves {
		cs = append(cs, BuildCurve(c, res))
	}
	return rs, cs
}

// source names a benchmark metric.
func source(ref Ref, unit string) string { return ref.String() + " " + unit }
