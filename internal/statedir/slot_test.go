package statedir

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/paf-mesh/paf-mesh/internal/testutil"
)

func open(t *testing.T, root string) *Slot {
	t.Helper()
	s, err := Open(root)
	if err != nil {
		t.Fatalf("Open(%s): %v", root, err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func closeSlot(t *testing.T, s *Slot) {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

func TestOpenGivesLiveSlotsDifferentDirs(t *testing.T) {
	root := filepath.Join(t.TempDir(), "state")
	a, b := open(t, root), open(t, root)
	if a.Dir() == b.Dir() {
		t.Fatalf("two live slots share %s", a.Dir())
	}
	for _, s := range []*Slot{a, b} {
		if s.Adopted() || s.Root() != root || filepath.Dir(s.Dir()) != filepath.Join(root, "peers") {
			t.Errorf("slot %s: adopted=%v root=%s; want a new slot under %s/peers", s.Dir(), s.Adopted(), s.Root(), root)
		}
		if fi, err := os.Stat(s.Dir()); err != nil || fi.Mode().Perm() != 0o700 {
			t.Errorf("slot dir mode = %v, %v; want 0700", fi.Mode().Perm(), err)
		}
	}
	if fi, err := os.Stat(root); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("root mode = %v, %v; want 0700", fi.Mode().Perm(), err)
	}
	if names := testutil.DirNames(t, filepath.Join(root, "peers")); len(names) != 2 {
		t.Errorf("peers/ holds %q; want just the two slots, no temp or probe files", names)
	}
}

func TestOpenAdoptsClosedSlot(t *testing.T) {
	root := t.TempDir()
	a := open(t, root)
	if err := WriteFileAtomic(filepath.Join(a.Dir(), "held"), []byte("message"), 0o600); err != nil {
		t.Fatal(err)
	}
	closeSlot(t, a)
	closeSlot(t, a) // idempotent

	b := open(t, root)
	if !b.Adopted() || b.Dir() != a.Dir() {
		t.Fatalf("after Close, Open gave %s (adopted=%v); want to adopt %s", b.Dir(), b.Adopted(), a.Dir())
	}
	if data, err := os.ReadFile(filepath.Join(b.Dir(), "held")); err != nil || string(data) != "message" {
		t.Fatalf("adopted slot lost its contents: %q, %v", data, err)
	}
	// A third peer must not get the adopted slot while b holds it.
	if c := open(t, root); c.Dir() == b.Dir() || c.Adopted() {
		t.Fatalf("Open gave the held slot %s (adopted=%v)", c.Dir(), c.Adopted())
	}
}

func TestOpenSkipsWhatIsNotASlot(t *testing.T) {
	root := t.TempDir()
	peers := filepath.Join(root, "peers")
	for _, d := range []string{"nolock", ".new-123", ".hidden"} {
		if err := os.MkdirAll(filepath.Join(peers, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	// A dot directory with a free lock (a slot under construction, or the leftovers of one).
	if err := os.WriteFile(filepath.Join(peers, ".new-123", "lock"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(peers, "file"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	// A symlinked lock is not trusted.
	if err := os.MkdirAll(filepath.Join(peers, "symlinked"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(peers, "file"), filepath.Join(peers, "symlinked", "lock")); err != nil {
		t.Fatal(err)
	}

	s := open(t, root)
	if s.Adopted() {
		t.Fatalf("Open adopted %s, which is not a slot", s.Dir())
	}
	if _, err := os.Stat(filepath.Join(peers, "nolock", "lock")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Open created a lock in a directory that is not a slot: %v", err)
	}
	orphans, err := Orphans(root)
	if err != nil || len(orphans) != 0 {
		t.Fatalf("Orphans = %q, %v; want none", orphans, err)
	}
}

func TestOrphans(t *testing.T) {
	root := t.TempDir()
	if got, err := Orphans(filepath.Join(root, "missing")); err != nil || got != nil {
		t.Fatalf("Orphans of a missing root = %q, %v; want nothing", got, err)
	}

	live := open(t, root)
	dead1 := open(t, root)
	dead2 := open(t, root)
	closeSlot(t, dead1)
	closeSlot(t, dead2)

	got, err := Orphans(root)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{dead1.Dir(), dead2.Dir()}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("Orphans = %q, want %q (not the live %s)", got, want, live.Dir())
	}

	// Adopting one: it is then busy for everyone else and no longer an orphan.
	s, err := LockOrphan(dead1.Dir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	if !s.Adopted() || s.Dir() != dead1.Dir() || s.Root() != root {
		t.Fatalf("LockOrphan gave dir=%s root=%s adopted=%v", s.Dir(), s.Root(), s.Adopted())
	}
	if got, err := Orphans(root); err != nil || !slices.Equal(got, []string{dead2.Dir()}) {
		t.Fatalf("Orphans after LockOrphan = %q, %v; want [%s]", got, err, dead2.Dir())
	}

	busy := map[string]string{"adopted orphan": dead1.Dir(), "live slot": live.Dir()}
	for name, dir := range busy {
		t.Run(name, func(t *testing.T) {
			if _, err := LockOrphan(dir); !errors.Is(err, ErrBusy) {
				t.Fatalf("LockOrphan(%s) = %v, want ErrBusy", dir, err)
			}
		})
	}
	if _, err := LockOrphan(filepath.Join(root, "peers", "nope")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("LockOrphan of a missing slot = %v, want ErrNotExist", err)
	}
}

func TestLockOrphanRejectsDeletedSlot(t *testing.T) {
	root := t.TempDir()
	s := open(t, root)
	closeSlot(t, s)
	// Hold the lock file open, then delete the slot the documented way: a lock taken on the
	// unlinked file must not count.
	f, err := os.Open(filepath.Join(s.Dir(), "lock"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := os.RemoveAll(s.Dir()); err != nil {
		t.Fatal(err)
	}
	if ok, err := tryLock(f); err != nil || !ok {
		t.Fatalf("tryLock on unlinked file: %v, %v", ok, err)
	}
	if _, err := LockOrphan(s.Dir()); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("LockOrphan of a deleted slot = %v, want ErrNotExist", err)
	}
}

func TestOpenUnwritableRoot(t *testing.T) {
	// chmod would not stop root, who ignores permission bits; a path below a regular file
	// fails for everyone.
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(file, "state")
	_, err := Open(root)
	if err == nil {
		t.Fatal("Open succeeded below a regular file")
	}
	msg := err.Error()
	for _, want := range []string{root, "fix its permissions", "--state-dir", "PAF_STATE_DIR"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not mention %q", msg, want)
		}
	}
	if strings.Contains(msg, "\n") || !errors.Is(err, unix.ENOTDIR) {
		t.Errorf("error %q: want one line wrapping ENOTDIR", msg)
	}
}

// TestConcurrentOpens races many peers starting at once over a mix of orphan and live slots:
// every one must end up with a distinct slot, and every orphan is adopted at most once.
func TestConcurrentOpens(t *testing.T) {
	root := t.TempDir()
	for range 4 {
		closeSlot(t, open(t, root))
	}
	open(t, root) // one live slot, which adopted one of the four orphans

	const n = 16
	slots := make([]*Slot, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { slots[i], errs[i] = Open(root) })
	}
	wg.Wait()
	seen := make(map[string]bool)
	adopted := 0
	for i, s := range slots {
		if errs[i] != nil {
			t.Fatalf("Open #%d: %v", i, errs[i])
		}
		t.Cleanup(func() { _ = s.Close() })
		if seen[s.Dir()] {
			t.Fatalf("slot %s handed out twice", s.Dir())
		}
		seen[s.Dir()] = true
		if s.Adopted() {
			adopted++
		}
	}
	if adopted > 3 {
		t.Fatalf("%d adoptions, but only 3 orphans existed", adopted)
	}
}
