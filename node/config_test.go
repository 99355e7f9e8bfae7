package node

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// The default run dir depends on the user id alone: the system's per-user runtime dir when
// there is one of ours, else /tmp/paf-<uid>; no environment variable changes it.
func TestDefaultRunDirFromUserID(t *testing.T) {
	uid := strconv.Itoa(os.Geteuid())
	base := t.TempDir()
	old := userRuntimeBase
	t.Cleanup(func() { userRuntimeBase = old })
	userRuntimeBase = base
	if got, want := DefaultRunDir(), filepath.Join("/tmp", "paf-"+uid); got != want {
		t.Fatalf("no runtime dir: %s, want %s", got, want)
	}
	if err := os.Mkdir(filepath.Join(base, uid), 0o700); err != nil {
		t.Fatal(err)
	}
	t.Setenv("XDG_RUNTIME_DIR", "/elsewhere")
	if got, want := DefaultRunDir(), filepath.Join(base, uid, "paf"); got != want {
		t.Fatalf("with a runtime dir: %s, want %s", got, want)
	}
}
