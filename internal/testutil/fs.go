package testutil

import (
	"os"
	"testing"
)

// DirNames returns the names in dir, sorted (as os.ReadDir sorts them), or nil if it is empty;
// it fails tb if dir cannot be read.
func DirNames(tb testing.TB, dir string) []string {
	tb.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		tb.Fatal(err)
	}
	var names []string
	for _, de := range des {
		names = append(names, de.Name())
	}
	return names
}

// Must fails tb with err unless err is nil.
func Must(tb testing.TB, err error) {
	tb.Helper()
	if err != nil {
		tb.Fatal(err)
	}
}
