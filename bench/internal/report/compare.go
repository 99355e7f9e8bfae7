package report

import (
	"fmt"
	"io"
	"strconv"
	"strings"
)

// flatValue is one comparable number of a report: id pairs it with the other report's
// (its source metric), label names it for people.
type flatValue struct {
	id, label string
	v         Value
}

// flatten lists a report's numbers: every row's measured and baseline values, then every
// curve point, each benchmark metric once (a "vs NATS" line repeats its relay figures, a
// curve its row's), named after its first appearance.
func (r *Report) flatten() []flatValue {
	var out []flatValue
	seen := map[string]bool{}
	add := func(label string, v Value) {
		id := v.Source
		if id == "" {
			id = label
		}
		if !seen[id] {
			seen[id] = true
			out = append(out, flatValue{id: id, label: label, v: v})
		}
	}
	for _, row := range r.Rows {
		for _, v := range row.Measured {
			add(joinKey(row.Key, v.Name), v)
		}
		for _, v := range row.Baseline {
			add(joinKey(row.Key, "baseline", row.BaselineName, v.Name), v)
		}
	}
	for _, c := range r.Curves {
		for _, s := range c.Series {
			for _, p := range s.Points {
				add(fmt.Sprintf("%s: %s @ %s %s", c.Key, s.Name, strconv.FormatFloat(p.X, 'f', -1, 64), c.XLabel), Value{Value: p.Y, Unit: c.Unit, Source: p.Source})
			}
		}
	}
	return out
}

func joinKey(parts ...string) string {
	var keep []string
	for _, p := range parts {
		if p != "" {
			keep = append(keep, p)
		}
	}
	return strings.Join(keep, " ")
}

// Change is one number compared between two reports.
type Change struct {
	Key      string
	Old, New *Value
	// Percent is (new - old) / old * 100; valid when both are there and old is not 0.
	Percent float64
	HasPct  bool
}

// Compare pairs the numbers of old and new by key, in new's order, then those only old has.
func Compare(old, cur *Report) []Change {
	oldVals := map[string]flatValue{}
	var oldOrder []string
	for _, f := range old.flatten() {
		oldOrder = append(oldOrder, f.id)
		oldVals[f.id] = f
	}
	seen := map[string]bool{}
	var out []Change
	for _, f := range cur.flatten() {
		seen[f.id] = true
		nv := f.v
		c := Change{Key: f.label, New: &nv}
		if of, ok := oldVals[f.id]; ok {
			ov := of.v
			c.Old = &ov
			if ov.Value != 0 {
				c.Percent, c.HasPct = (nv.Value-ov.Value)/ov.Value*100, true
			}
		}
		out = append(out, c)
	}
	for _, id := range oldOrder {
		if !seen[id] {
			of := oldVals[id]
			out = append(out, Change{Key: of.label, Old: &of.v})
		}
	}
	return out
}

// WriteComparison writes old against new: both headers, verdict changes, and every number
// with its change in percent.
func WriteComparison(w io.Writer, old, cur *Report) {
	describe := func(r *Report) string {
		return fmt.Sprintf("%s, %s, %s run, load %.2f→%.2f", r.Commit, r.Date.UTC().Format("2006-01-02 15:04 UTC"), r.Mode, r.LoadStart[0], r.LoadEnd[0])
	}
	fmt.Fprintln(w, "comparison")
	fmt.Fprintln(w, "  old: "+describe(old))
	fmt.Fprintln(w, "  new: "+describe(cur))
	if old.Mode != cur.Mode {
		fmt.Fprintln(w, "  note: the runs are of different modes; sample counts differ")
	}
	oldVerdict := map[string]string{}
	for _, r := range old.Rows {
		oldVerdict[r.Key] = r.Verdict
	}
	var vrows [][]string
	for _, r := range cur.Rows {
		if ov, ok := oldVerdict[r.Key]; ok && ov != r.Verdict {
			vrows = append(vrows, []string{r.Key, ov, r.Verdict})
		}
	}
	if len(vrows) > 0 {
		fmt.Fprintln(w)
		writeTable(w, []string{"row", "old verdict", "new verdict"}, vrows)
	}
	var rows [][]string
	for _, c := range Compare(old, cur) {
		o, n, pct := "—", "—", "—"
		if c.Old != nil {
			o = FormatValue(*c.Old)
		}
		if c.New != nil {
			n = FormatValue(*c.New)
		}
		if c.HasPct {
			pct = fmt.Sprintf("%+.1f%%", c.Percent)
		}
		rows = append(rows, []string{c.Key, o, n, pct})
	}
	fmt.Fprintln(w)
	if len(rows) == 0 {
		fmt.Fprintln(w, "(no numbers in either report)")
		return
	}
	writeTable(w, []string{"what", "old", "new", "change"}, rows)
}
