package statedir

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/paf-mesh/paf-mesh/internal/testutil"
)

func TestWriteFileAtomic(t *testing.T) {
	tests := map[string]struct {
		existing *string // content before the write; nil means no file
		data     string
		perm     os.FileMode
	}{
		"new file":          {data: "hello", perm: 0o600},
		"replaces content":  {existing: ptr("a much longer old content"), data: "new", perm: 0o600},
		"empty data":        {existing: ptr("old"), data: "", perm: 0o600},
		"perm beyond umask": {data: "x", perm: 0o664},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "f")
			if tc.existing != nil {
				if err := os.WriteFile(path, []byte(*tc.existing), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			if err := WriteFileAtomic(path, []byte(tc.data), tc.perm); err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(path)
			if err != nil || string(got) != tc.data {
				t.Fatalf("content = %q, %v; want %q", got, err, tc.data)
			}
			if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != tc.perm {
				t.Fatalf("mode = %v, %v; want %v", fi.Mode().Perm(), err, tc.perm)
			}
			if names := testutil.DirNames(t, dir); !slices.Equal(names, []string{"f"}) {
				t.Fatalf("dir holds %q; want only f, no temp file", names)
			}
		})
	}
}

func TestWriteFileAtomicFailureLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	// The target is a non-empty directory, so the final rename fails after the temp file was
	// written: it must be cleaned up and the directory left as it was.
	path := filepath.Join(dir, "target")
	if err := os.MkdirAll(filepath.Join(path, "child"), 0o700); err != nil {
		t.Fatal(err)
	}
	err := WriteFileAtomic(path, []byte("x"), 0o600)
	if err == nil {
		t.Fatal("WriteFileAtomic over a non-empty directory succeeded")
	}
	if names := testutil.DirNames(t, dir); !slices.Equal(names, []string{"target"}) {
		t.Fatalf("dir holds %q after a failed write; want only target", names)
	}
	if _, err := os.Stat(filepath.Join(path, "child")); err != nil {
		t.Fatalf("failed write damaged the target: %v", err)
	}

	if err := WriteFileAtomic(filepath.Join(dir, "missing", "f"), nil, 0o600); err == nil {
		t.Fatal("WriteFileAtomic into a missing directory succeeded")
	}
}

func ptr(s string) *string { return &s }
