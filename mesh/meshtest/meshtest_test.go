package meshtest_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/paf-mesh/paf-mesh/internal/testutil"
	"github.com/paf-mesh/paf-mesh/mesh"
	"github.com/paf-mesh/paf-mesh/mesh/meshtest"
)

// A crashed peer is seen failed (dead), never as having left, and its name
// is freed after NameGrace: what a SIGKILLed process looks like.
func TestCrashIsAFailureNotALeave(t *testing.T) {
	a, err := mesh.New(meshtest.Config(t))
	testutil.Must(t, err)
	t.Cleanup(func() { a.Close() })
	b, err := mesh.New(meshtest.Config(t))
	testutil.Must(t, err)
	t.Cleanup(func() { b.Close() })
	if _, err := b.Join(a.Addr()); err != nil {
		t.Fatal(err)
	}
	testutil.Must(t, b.Claim(t.Context(), "bee"))
	testutil.WaitFor(t, 10*time.Second, "a to see bee online", func() bool {
		r, _ := a.Resolve("bee")
		return r.Online
	})

	meshtest.Crash(b)
	// Failure detection: suspicion, then dead; 20 s for a loaded machine.
	testutil.WaitFor(t, 20*time.Second, "a to declare b dead", func() bool {
		m, ok := a.Member(b.ID())
		if ok && m.State == mesh.MemberLeft {
			t.Fatalf("a crashed peer was seen leaving: %+v", m)
		}
		return ok && m.State == mesh.MemberDead
	})
	testutil.WaitFor(t, 10*time.Second, "bee's name to be freed", func() bool {
		r, _ := a.Resolve("bee")
		return !r.Online
	})
	testutil.Must(t, b.Close()) // a no-op after Crash
}

// mesh.CrashForTest is exported only so that meshtest can reach it: nothing
// but tests and this package may call it.
func TestCrashOnlyFromTests(t *testing.T) {
	root, err := filepath.Abs(filepath.Join("..", ".."))
	testutil.Must(t, err)
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("module root not found at %s: %v", root, err)
	}
	allowed := map[string]bool{
		filepath.Join("mesh", "crash.go"):                true, // where it is defined
		filepath.Join("mesh", "meshtest", "meshtest.go"): true,
	}
	checked := 0
	err = filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name := d.Name(); path != root && (strings.HasPrefix(name, ".") || name == "testdata" || name == "node_modules") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		rel, _ := filepath.Rel(root, path)
		checked++
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if strings.Contains(string(b), "CrashForTest") && !allowed[rel] {
			t.Errorf("%s uses mesh.CrashForTest: only tests may crash a peer; product code uses Close", rel)
		}
		return nil
	})
	testutil.Must(t, err)
	if checked < 50 {
		t.Fatalf("only %d Go files checked under %s: the walk missed the module", checked, root)
	}
}
