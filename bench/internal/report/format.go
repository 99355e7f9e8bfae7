package report

import (
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// num writes a number with about three significant digits, thousands separated.
func num(v float64) string {
	a := math.Abs(v)
	switch {
	case a >= 1000:
		return thousands(int64(math.Round(v)))
	case a >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case a >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	case a >= 1:
		return strconv.FormatFloat(v, 'f', 2, 64)
	case a == 0:
		return "0"
	}
	return strconv.FormatFloat(v, 'g', 3, 64)
}

func thousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var sb strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			sb.WriteByte(',')
		}
		sb.WriteRune(c)
	}
	if neg {
		return "-" + sb.String()
	}
	return sb.String()
}

// FormatValue writes a value in its display unit.
func FormatValue(v Value) string {
	switch v.Unit {
	case "us":
		return num(v.Value) + " µs"
	case "ms":
		if math.Abs(v.Value) >= 1000 {
			return num(v.Value/1000) + " s"
		}
		return num(v.Value) + " ms"
	case "msgs/s":
		return num(v.Value) + " msg/s"
	case "%":
		return num(v.Value) + "%"
	case "x":
		return num(v.Value) + "×"
	case "":
		return num(v.Value)
	}
	return num(v.Value) + " " + v.Unit
}

func formatValues(vs []Value) string {
	parts := make([]string, 0, len(vs))
	for _, v := range vs {
		if v.Name == "" {
			parts = append(parts, FormatValue(v))
		} else {
			parts = append(parts, v.Name+" "+FormatValue(v))
		}
	}
	return strings.Join(parts, ", ")
}

// Cells returns the row's six table cells: SPEC row, target, measured, baseline, ratio,
// verdict.
func (r Row) Cells() []string {
	measured, baseline, ratio := "—", "—", "—"
	if len(r.Measured) > 0 {
		measured = formatValues(r.Measured)
	}
	switch {
	case r.BaselineName != "" && len(r.Baseline) > 0:
		baseline = r.BaselineName + ": " + formatValues(r.Baseline)
	case r.BaselineName != "":
		baseline = r.BaselineName + ": missing"
	}
	if len(r.Ratios) > 0 {
		ratio = formatValues(r.Ratios)
	}
	verdict := r.Verdict
	if r.Note != "" {
		verdict += " (" + r.Note + ")"
	}
	return []string{r.Title, r.Target, measured, baseline, ratio, verdict}
}

// RowHeader is the summary table's header.
var RowHeader = []string{"SPEC row", "target", "measured", "baseline (same run)", "ratio (measured/baseline)", "verdict"}

// writeTable writes an aligned table with pipes: readable as text and valid markdown.
func writeTable(w io.Writer, header []string, rows [][]string) {
	width := make([]int, len(header))
	for i, h := range header {
		width[i] = utf8.RuneCountInString(h)
	}
	for _, r := range rows {
		for i, c := range r {
			width[i] = max(width[i], utf8.RuneCountInString(c))
		}
	}
	line := func(cells []string) {
		var sb strings.Builder
		sb.WriteString("|")
		for i, c := range cells {
			sb.WriteString(" " + c + strings.Repeat(" ", width[i]-utf8.RuneCountInString(c)) + " |")
		}
		fmt.Fprintln(w, sb.String())
	}
	line(header)
	sep := make([]string, len(header))
	for i := range sep {
		sep[i] = strings.Repeat("-", width[i])
	}
	line(sep)
	for _, r := range rows {
		line(r)
	}
}

// unitName is a curve unit as a title shows it.
func unitName(u string) string {
	if u == "us" {
		return "µs"
	}
	return u
}

// CurveTable returns a curve's table: one line per x, one column per series.
func (c Curve) CurveTable() ([]string, [][]string) {
	header := []string{c.XLabel}
	for _, s := range c.Series {
		header = append(header, s.Name)
	}
	var rows [][]string
	for _, x := range c.Xs {
		row := []string{strconv.FormatFloat(x, 'f', -1, 64)}
		for _, s := range c.Series {
			if y, ok := s.At(x); ok {
				row = append(row, num(y))
			} else {
				row = append(row, "—")
			}
		}
		rows = append(rows, row)
	}
	return header, rows
}

func (r *Report) headerLines() []string {
	mode := r.Mode + " run"
	if r.Only != "" {
		mode += ", only rows matching " + strconv.Quote(r.Only)
	}
	m := r.Machine
	return []string{
		"date: " + r.Date.UTC().Format("2006-01-02 15:04:05 UTC"),
		"commit: " + r.Commit,
		"mode: " + mode,
		fmt.Sprintf("machine: %d CPUs (GOMAXPROCS %d), %s, Linux %s, %s", m.NProc, m.GOMAXPROCS, m.CPU, m.Kernel, m.GoVersion),
		fmt.Sprintf("load average (1, 5, 15 min): start %s, end %s", loads(r.LoadStart), loads(r.LoadEnd)),
		"run time: " + (time.Duration(r.Seconds * float64(time.Second))).Round(100*time.Millisecond).String(),
	}
}

func loads(l [3]float64) string {
	return fmt.Sprintf("%.2f %.2f %.2f", l[0], l[1], l[2])
}

// WriteText writes the report as the runner prints it: header, summary table, curves.
func (r *Report) WriteText(w io.Writer) {
	fmt.Fprintln(w, "paf-mesh benchmarks against SPEC section 10 (pafbench)")
	for _, l := range r.headerLines() {
		fmt.Fprintln(w, "  "+l)
	}
	fmt.Fprintln(w)
	r.writeSummary(w)
	for _, c := range r.Curves {
		fmt.Fprintf(w, "\n%s (%s)\n", c.Title, unitName(c.Unit))
		r.writeCurve(w, c)
	}
}

func (r *Report) writeSummary(w io.Writer) {
	rows := make([][]string, 0, len(r.Rows))
	for _, row := range r.Rows {
		rows = append(rows, row.Cells())
	}
	writeTable(w, RowHeader, rows)
}

func (r *Report) writeCurve(w io.Writer, c Curve) {
	if c.Empty() {
		fmt.Fprintln(w, "(no data: its benchmarks are missing)")
		return
	}
	h, rows := c.CurveTable()
	writeTable(w, h, rows)
}

// WriteMarkdown writes the summary and the curves for pasting into BENCHMARKS.md; charts
// maps a curve key to its chart's path relative to the markdown's reader (the repo root),
// for the curves whose chart was written.
func (r *Report) WriteMarkdown(w io.Writer, charts map[string]string) {
	fmt.Fprintln(w, "## Summary against SPEC section 10 (`make bench`)")
	fmt.Fprintln(w)
	for _, l := range r.headerLines() {
		fmt.Fprintln(w, "- "+l)
	}
	fmt.Fprintln(w)
	r.writeSummary(w)
	for _, c := range r.Curves {
		fmt.Fprintf(w, "\n### %s (%s)\n\n", c.Title, unitName(c.Unit))
		r.writeCurve(w, c)
		if p, ok := charts[c.Key]; ok {
			fmt.Fprintf(w, "\n![%s](%s)\n", c.Title, p)
		}
	}
}
