package benchout

import (
	"bufio"
	"io"
	"math"
	"regexp"
	"strconv"
	"strings"
)

// Metric is one value a benchmark reported, with its unit as written ("ns/op", "msgs/s",
// "p50-deliver-us").
type Metric struct {
	Value float64 `json:"value"`
	Unit  string  `json:"unit"`
}

// Result is one benchmark result line.
type Result struct {
	Name       string   `json:"name"`
	Iterations int      `json:"iterations"`
	Metrics    []Metric `json:"metrics"`
}

// Metric returns the value reported with unit, if any (the last one when a unit repeats).
func (r Result) Metric(unit string) (float64, bool) {
	for i := len(r.Metrics) - 1; i >= 0; i-- {
		if r.Metrics[i].Unit == unit {
			return r.Metrics[i].Value, true
		}
	}
	return 0, false
}

// Output is what one benchmark process printed.
type Output struct {
	// Results in the order they were printed; a benchmark printed twice keeps both.
	Results []Result
	// Skipped maps a skipped benchmark's name to its reason (its log lines, joined).
	Skipped map[string]string
	// Failed maps a failed benchmark's name to its log lines, joined.
	Failed map[string]string
}

// Lookup returns the last result named name.
func (o Output) Lookup(name string) (Result, bool) {
	for i := len(o.Results) - 1; i >= 0; i-- {
		if o.Results[i].Name == name {
			return o.Results[i], true
		}
	}
	return Result{}, false
}

// Options tell Parse how the process ran.
type Options struct {
	// Procs is the GOMAXPROCS the benchmarks ran with (-test.cpu). The testing package appends
	// "-Procs" to every result name when Procs is not 1; that suffix is stripped. 0 or 1: no
	// suffix is stripped.
	Procs int
}

// elapsed is the duration a test's verdict line ends with (benchmarks' have none).
var elapsed = regexp.MustCompile(` \(\d+(\.\d+)?s\)$`)

// maxLine bounds one output line; longer lines (a runaway log) are cut, never fatal.
const maxLine = 1 << 20

// Parse reads a benchmark process's standard output.
func Parse(r io.Reader, opt Options) Output {
	out := Output{Skipped: map[string]string{}, Failed: map[string]string{}}
	p := parser{opt: opt, out: &out}
	br := bufio.NewReaderSize(r, 64<<10)
	for {
		line, err := readLine(br)
		if line != "" || err == nil {
			p.line(line)
		}
		if err != nil {
			break
		}
	}
	p.flush()
	return out
}

// readLine returns the next line without its line ending, cut at maxLine.
func readLine(br *bufio.Reader) (string, error) {
	var sb strings.Builder
	for {
		chunk, isPrefix, err := br.ReadLine()
		if sb.Len() < maxLine {
			sb.Write(chunk[:min(len(chunk), maxLine-sb.Len())])
		}
		if err != nil || !isPrefix {
			return sb.String(), err
		}
	}
}

// parser holds the state between lines: the log lines seen since the last benchmark line (in
// -test.v output a benchmark's log comes before its "--- SKIP:" line; without -v, after it),
// and the verdict block those lines may still belong to.
type parser struct {
	opt     Options
	out     *Output
	pending []string
	// open is the "--- SKIP:"/"--- FAIL:" entry that indented lines after it extend.
	open    map[string]string
	openKey string
}

func (p *parser) line(raw string) {
	line := strings.TrimRight(raw, " \t\r")
	if strings.HasPrefix(line, "    ") || strings.HasPrefix(line, "\t") {
		text := strings.TrimSpace(line)
		if p.open != nil {
			if p.open[p.openKey] == "" {
				p.open[p.openKey] = text
			} else {
				p.open[p.openKey] += "\n" + text
			}
			return
		}
		p.pending = append(p.pending, text)
		return
	}
	switch {
	case strings.HasPrefix(line, "--- SKIP: "):
		p.verdict(p.out.Skipped, strings.TrimPrefix(line, "--- SKIP: "))
	case strings.HasPrefix(line, "--- FAIL: "):
		p.verdict(p.out.Failed, strings.TrimPrefix(line, "--- FAIL: "))
	case strings.HasPrefix(line, "--- "): // "--- BENCH:" (the logs of a result), "--- PASS:"
		p.flush()
		p.open, p.openKey = map[string]string{}, "" // its log lines follow: discard them
	case strings.HasPrefix(line, "Benchmark"):
		p.flush()
		if r, ok := p.result(line); ok {
			p.out.Results = append(p.out.Results, r)
		}
	default:
		// Anything else (PASS, FAIL, goos:, a stray print) ends a verdict block but not the
		// log lines a chatty run has collected for the benchmark still running.
		p.open = nil
	}
}

// verdict records name (a skip or a failure) with the log lines collected before it; the
// indented lines that follow are added to it too.
func (p *parser) verdict(into map[string]string, name string) {
	name = strings.TrimSpace(name)
	if m := elapsed.FindStringIndex(name); m != nil { // "--- FAIL: TestX (0.01s)"
		name = name[:m[0]]
	}
	into[name] = strings.Join(p.pending, "\n")
	p.pending = nil
	p.open, p.openKey = into, name
}

func (p *parser) flush() {
	p.pending = nil
	p.open = nil
}

// result parses "Name[-procs] iterations (value unit)*". A line that is only a name (the
// -test.v announcement of a benchmark starting) is not a result.
func (p *parser) result(line string) (Result, bool) {
	f := strings.Fields(line)
	if len(f) < 2 || len(f)%2 != 0 {
		return Result{}, false
	}
	iters, err := strconv.Atoi(f[1])
	if err != nil || iters < 0 {
		return Result{}, false
	}
	r := Result{Name: p.stripProcs(f[0]), Iterations: iters}
	for i := 2; i+1 < len(f); i += 2 {
		v, err := strconv.ParseFloat(f[i], 64)
		if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
			return Result{}, false
		}
		r.Metrics = append(r.Metrics, Metric{Value: v, Unit: f[i+1]})
	}
	return r, true
}

func (p *parser) stripProcs(name string) string {
	if p.opt.Procs > 1 {
		return strings.TrimSuffix(name, "-"+strconv.Itoa(p.opt.Procs))
	}
	return name
}
