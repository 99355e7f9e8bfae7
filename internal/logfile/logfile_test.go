package logfile

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Open creates the file (0600) and its directory (0700), and appends.
func TestOpen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "new", "dir", "paf.log")
	for _, line := range []string{"one\n", "two\n"} {
		f, err := Open(path)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteString(line); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	b, err := os.ReadFile(path)
	if err != nil || string(b) != "one\ntwo\n" {
		t.Fatalf("file holds %q (%v), want both lines appended", b, err)
	}
	st, _ := os.Stat(path)
	dst, _ := os.Stat(filepath.Dir(path))
	if st.Mode().Perm() != 0o600 || dst.Mode().Perm() != 0o700 {
		t.Fatalf("modes %v and %v, want 0600 and 0700", st.Mode().Perm(), dst.Mode().Perm())
	}
	blocker := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(blocker, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(filepath.Join(blocker, "paf.log")); err == nil || !strings.Contains(err.Error(), "--log-file") {
		t.Fatalf("open under a file: %v, want an error saying how to choose another", err)
	}
}

type failing struct{}

func (failing) Write([]byte) (int, error) { return 0, errors.New("closed") }

// One failing writer does not keep a record from the other.
func TestTee(t *testing.T) {
	var a, b bytes.Buffer
	if n, err := Tee(&a, &b).Write([]byte("x")); n != 1 || err != nil || a.String() != "x" || b.String() != "x" {
		t.Fatalf("tee: %d %v %q %q", n, err, a.String(), b.String())
	}
	if _, err := Tee(failing{}, &b).Write([]byte("y")); err != nil || b.String() != "xy" {
		t.Fatalf("tee with a failing first writer: %v %q", err, b.String())
	}
	if _, err := Tee(failing{}, failing{}).Write([]byte("z")); err == nil {
		t.Fatal("tee with both failing reported no error")
	}
}
