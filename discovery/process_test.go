package discovery

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/paf-mesh/paf-mesh/internal/testutil"
)

// childEnv makes the test binary act as a peer in another process that advertises itself in
// the named run dir, prints "ready", and lives until killed or until its stdin closes.
const childEnv = "PAF_DISCOVERY_TEST_CHILD_DIR"

func runChildAdvertiser(dir string) int {
	l, err := NewLocal(dir, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	a, err := l.Advertise(Entry{ID: "child", Addr: "127.0.0.1:7946"})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println("ready")
	_, _ = io.Copy(io.Discard, os.Stdin)
	_ = a.Close()
	return 0
}

// TestDeadProcessEntryIsRemoved runs the advertiser in a real second process and kills it with
// SIGKILL, which gives it no chance to clean up: only the kernel's release of the flock tells
// the reader that the peer is gone.
func TestDeadProcessEntryIsRemoved(t *testing.T) {
	dir := t.TempDir()
	cmd, line := testutil.StartSelf(t, testutil.LogWriter(t), childEnv+"="+dir)
	if line != "ready" {
		t.Fatalf("child said %q", line)
	}

	l, err := NewLocal(dir, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	defer close(stop)
	w, err := l.Watch(stop)
	if err != nil && !errors.Is(err, ErrWatchUnsupported) {
		t.Fatal(err)
	}
	es, err := l.Entries()
	if err != nil || len(es) != 1 || es[0].ID != "child" || es[0].PID != cmd.Process.Pid {
		t.Fatalf("Entries = %+v, %v; want the child's entry with its pid", es, err)
	}

	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait() // "signal: killed" is expected
	if w != nil {
		// The kernel closed the dead owner's descriptor: the watch names its entry, so the
		// peers that watch the run dir check that peer (and no other).
		waitClosed(t, w, "child")
	}
	path := filepath.Join(dir, "child.json")
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("a killed peer's file should still be there before a scan: %v", err)
	}
	if got := entryIDs(t, l); !slices.Equal(got, nil) {
		t.Fatalf("Entries after kill = %q, want none", got)
	}
	if exists(path) {
		t.Fatal("the dead peer's entry was not removed")
	}
}

// waitClosed waits (up to 10 s) for the watch to name id among the closed entries; the wake
// that tells of it may come after the one the caller waited for (the kernel's events of one
// change can come in two reads).
func waitClosed(t *testing.T, w *Watcher, id string) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		ids, all := w.Closed()
		if all {
			t.Fatalf("Closed said all (an overflow?) while waiting for %s", id)
		}
		if slices.Contains(ids, id) {
			return
		}
		select {
		case <-w.C:
		case <-deadline:
			t.Fatalf("the watch did not name %s's entry as closed within 10 s", id)
		}
	}
}
