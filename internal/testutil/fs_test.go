package testutil

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestDirNames(t *testing.T) {
	full := t.TempDir()
	for _, name := range []string{"b", "a"} {
		if err := os.WriteFile(filepath.Join(full, name), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(full, "c"), 0o700); err != nil {
		t.Fatal(err)
	}
	tests := map[string]struct {
		dir   string
		want  []string
		fails bool
	}{
		"files and a dir, sorted": {dir: full, want: []string{"a", "b", "c"}},
		"empty":                   {dir: t.TempDir(), want: nil},
		"missing":                 {dir: filepath.Join(full, "nope"), fails: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			tb := &fakeTB{}
			got := DirNames(tb, tc.dir)
			if f := tb.failures(); (len(f) != 0) != tc.fails {
				t.Fatalf("failures %q; want a failure: %v", f, tc.fails)
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("DirNames = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestMust(t *testing.T) {
	tb := &fakeTB{}
	Must(tb, nil)
	if f := tb.failures(); len(f) != 0 {
		t.Fatalf("Must(nil) failed: %q", f)
	}
	Must(tb, errors.New("the disk is on fire"))
	if f := tb.failures(); len(f) != 1 || !strings.Contains(f[0], "the disk is on fire") {
		t.Fatalf("Must(err) failures %q; want one saying the error", f)
	}
}
