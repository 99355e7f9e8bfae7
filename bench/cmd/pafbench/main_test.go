package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/paf-mesh/paf-mesh/bench/internal/report"
)

func TestOutPath(t *testing.T) {
	tests := map[string]struct {
		flag       string
		useDefault bool
		want       string
	}{
		"default":            {useDefault: true, want: "/def"},
		"no default":         {useDefault: false, want: ""},
		"given":              {flag: "x.json", useDefault: false, want: "x.json"},
		"off beats default":  {flag: off, useDefault: true, want: ""},
		"given over default": {flag: "y", useDefault: true, want: "y"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := outPath(tc.flag, tc.useDefault, "/def"); got != tc.want {
				t.Fatalf("outPath = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestUsage(t *testing.T) {
	tests := map[string]struct {
		args []string
		code int
	}{
		"help":                     {args: []string{"-h"}, code: 0},
		"unknown flag":             {args: []string{"--nope"}, code: 2},
		"argument without compare": {args: []string{"x.json"}, code: 2},
		"two arguments":            {args: []string{"--compare", "a.json", "b.json", "c.json"}, code: 2},
		"compare missing files":    {args: []string{"--compare", "/nonexistent/a.json", "/nonexistent/b.json"}, code: 1},
		"bad --only":               {args: []string{"--only", "(", "--repo", "/nonexistent"}, code: 1},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := run(tc.args, &stdout, &stderr); code != tc.code {
				t.Fatalf("exit %d, want %d; stderr:\n%s", code, tc.code, stderr.String())
			}
		})
	}
}

func TestCompareFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, p50 float64) string {
		r := &report.Report{Format: report.FormatVersion, Date: time.Now(), Commit: name, Mode: "full",
			Rows: []report.Row{{Key: "mcp-start", Verdict: report.Met, Measured: []report.Value{{Name: "median", Value: p50, Unit: "ms", Source: "s"}}}}}
		path := filepath.Join(dir, name+".json")
		if err := r.WriteFile(path); err != nil {
			t.Fatal(err)
		}
		return path
	}
	oldPath, newPath := write("old", 20), write("new", 15)
	var stdout, stderr bytes.Buffer
	if code := run([]string{"--compare", oldPath, newPath}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	for _, want := range []string{"old: old", "new: new", "| mcp-start median | 20.0 ms | 15.0 ms | -25.0% |"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, stdout.String())
		}
	}
	if err := os.WriteFile(newPath, []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code := run([]string{"--compare", oldPath, newPath}, &stdout, &stderr); code != 1 {
		t.Fatalf("a file that is no report: exit %d", code)
	}
}
