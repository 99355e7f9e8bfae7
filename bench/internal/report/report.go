package report

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"
)

// FormatVersion is the version of the JSON layout, bumped on incompatible changes.
const FormatVersion = 1

// Machine describes where a run happened.
type Machine struct {
	NProc      int    `json:"nproc"`
	GOMAXPROCS int    `json:"gomaxprocs"`
	CPU        string `json:"cpu"`
	Kernel     string `json:"kernel"`
	GoVersion  string `json:"go_version"`
}

// Process is one benchmark process the runner ran.
type Process struct {
	Pkg      string  `json:"pkg"`
	Bench    string  `json:"bench"` // the -test.bench regex, or the NATS case
	Seconds  float64 `json:"seconds"`
	ExitCode int     `json:"exit_code"`
	Error    string  `json:"error,omitempty"`
}

// Report is a whole run: what the JSON file holds, and what the text and markdown show.
type Report struct {
	Format     int        `json:"format"`
	Date       time.Time  `json:"date"`
	Commit     string     `json:"commit"`
	Mode       string     `json:"mode"` // "full" or "quick"
	Only       string     `json:"only,omitempty"`
	Machine    Machine    `json:"machine"`
	LoadStart  [3]float64 `json:"load_start"` // 1, 5 and 15 minute load averages
	LoadEnd    [3]float64 `json:"load_end"`
	Seconds    float64    `json:"run_seconds"`
	Rows       []Row      `json:"rows"`
	Curves     []Curve    `json:"curves"`
	Benchmarks []Bench    `json:"benchmarks"` // every parsed benchmark, NATS included
	Processes  []Process  `json:"processes,omitempty"`
}

// ErrFormat is wrapped when a JSON file is not a report this version can read.
var ErrFormat = errors.New("report: not a pafbench report")

// WriteFile writes r as indented JSON.
func (r *Report) WriteFile(path string) error {
	b, err := r.Encode()
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		return fmt.Errorf("report: write %s: %w", path, err)
	}
	return nil
}

// Encode returns r as indented JSON, text left readable ("<", not "\u003c").
func (r *Report) Encode() ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(r); err != nil {
		return nil, fmt.Errorf("report: encode: %w", err)
	}
	return buf.Bytes(), nil
}

// Decode reads a JSON report.
func Decode(b []byte) (*Report, error) {
	var r Report
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrFormat, err)
	}
	if r.Format != FormatVersion {
		return nil, fmt.Errorf("%w: format %d, want %d", ErrFormat, r.Format, FormatVersion)
	}
	return &r, nil
}

// ReadFile reads a JSON report written by WriteFile.
func ReadFile(path string) (*Report, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("report: read %s: %w", path, err)
	}
	r, err := Decode(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return r, nil
}
