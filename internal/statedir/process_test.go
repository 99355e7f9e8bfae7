package statedir

import (
	"fmt"
	"io"
	"os"
	"testing"

	"github.com/paf-mesh/paf-mesh/internal/testutil"
)

// childEnv makes the test binary act as a peer in another process: it opens a slot under the
// named root, prints its directory, and lives until killed or until its stdin closes.
const childEnv = "PAF_STATEDIR_TEST_CHILD_ROOT"

func runChild(root string) int {
	s, err := Open(root)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println(s.Dir())
	_, _ = io.Copy(io.Discard, os.Stdin)
	_ = s.Close()
	return 0
}

// TestKilledPeersSlotIsAdopted kills a peer process with SIGKILL, which gives it no chance to
// release anything itself: the kernel's release of the flock alone lets the next peer adopt
// the slot.
func TestKilledPeersSlotIsAdopted(t *testing.T) {
	root := t.TempDir()
	cmd, childDir := testutil.StartSelf(t, os.Stderr, childEnv+"="+root)
	if childDir == "" {
		t.Fatal("child said nothing")
	}

	if orphans, err := Orphans(root); err != nil || len(orphans) != 0 {
		t.Fatalf("Orphans while the child lives = %q, %v; want none", orphans, err)
	}
	if s := open(t, root); s.Dir() == childDir {
		t.Fatal("Open took the live child's slot")
	} else {
		closeSlot(t, s) // leave an orphan of our own, to check the right one is adopted
	}

	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait() // "signal: killed" is expected

	orphans, err := Orphans(root)
	if err != nil || len(orphans) != 2 {
		t.Fatalf("Orphans after the kill = %q, %v; want the child's and ours", orphans, err)
	}
	s, err := LockOrphan(childDir)
	if err != nil {
		t.Fatalf("LockOrphan of the killed child's slot: %v", err)
	}
	closeSlot(t, s)
}
