package store

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/paf-mesh/paf-mesh/relay/wire"
)

// killRootEnv, when set, makes TestInboxKill9Child the receiving process of
// TestInboxShownOnceAcrossKill9, with its inbox under that root.
const killRootEnv = "PAF_STORE_KILL_ROOT"

// TestInboxShownOnceAcrossKill9: a receiving process (this test binary, run
// as TestInboxKill9Child) accepts a stream of messages into its inbox and
// reads every other batch of them (Take: read records are written without a
// sync of their own), and is SIGKILLed in the middle of the stream. Opened
// again, the inbox must hold every accepted message that was not shown, and
// none that was: each accepted message is shown exactly once. The only ones
// allowed to be in neither are those of a Take the kill interrupted before
// the process could say what it had shown.
//
// With one processor, as in paf-peer mcp, the receiver's log syncs through
// Linux AIO (datasyncer); with two, through fdatasync: both are tried.
func TestInboxShownOnceAcrossKill9(t *testing.T) {
	for _, procs := range []string{"1", "2"} {
		t.Run("GOMAXPROCS="+procs, func(t *testing.T) { inboxShownOnceAcrossKill9(t, procs) })
	}
}

func inboxShownOnceAcrossKill9(t *testing.T, procs string) {
	root := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run", "^TestInboxKill9Child$", "-test.count", "1")
	cmd.Env = append(os.Environ(), killRootEnv+"="+root, "GOMAXPROCS="+procs)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var accepted []string
	shown := map[string]int{}
	lastShownAt := 0 // accepted[:lastShownAt] were all offered to a finished Take
	sc := bufio.NewScanner(out)
	deadline := time.Now().Add(time.Minute)
	for len(accepted) < 400 && sc.Scan() {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) == 2 && f[0] == "accepted":
			accepted = append(accepted, f[1])
		case len(f) >= 1 && f[0] == "shown":
			for _, id := range f[1:] {
				shown[id]++
			}
			lastShownAt = len(accepted)
		}
		if time.Now().After(deadline) {
			break
		}
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for sc.Scan() { // what it wrote before the kill
		f := strings.Fields(sc.Text())
		switch {
		case len(f) == 2 && f[0] == "accepted":
			accepted = append(accepted, f[1])
		case len(f) >= 1 && f[0] == "shown":
			for _, id := range f[1:] {
				shown[id]++
			}
			lastShownAt = len(accepted)
		}
	}
	_ = cmd.Wait()
	if len(accepted) < 100 || len(shown) == 0 {
		t.Fatalf("the receiver accepted %d messages and showed %d before the kill; want a stream", len(accepted), len(shown))
	}

	ib := openTestInbox(t, root)
	defer ib.Close()
	left, err := ib.Take()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range left {
		shown[m.ID]++
	}
	missing := 0
	for i, id := range accepted {
		switch n := shown[id]; {
		case n > 1:
			t.Errorf("message %d (%s) shown %d times, want once", i, id, n)
		case n == 0 && i < lastShownAt:
			t.Errorf("message %d (%s) accepted and never shown", i, id)
		case n == 0:
			missing++ // in the Take the kill interrupted
		}
	}
	t.Logf("%d accepted, %d shown before the kill, %d unread after it, %d in the interrupted Take",
		len(accepted), len(shown)-len(left), len(left), missing)
}

// TestInboxKill9Child is the receiver of TestInboxShownOnceAcrossKill9; it
// does nothing unless run by it. It runs until killed.
func TestInboxKill9Child(t *testing.T) {
	root := os.Getenv(killRootEnv)
	if root == "" {
		t.Skip("the receiving process of TestInboxShownOnceAcrossKill9")
	}
	ib := openTestInbox(t, root)
	w := bufio.NewWriter(os.Stdout)
	for i := 0; ; i++ {
		m := &wire.Message{ID: ulid.Make().String(), From: "alice", To: "bob", Body: fmt.Sprintf("message %d", i), Kind: wire.KindMessage}
		if err := addSync(ib, m); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(w, "accepted %s\n", m.ID)
		if i%2 == 1 {
			w.Flush()
			got, err := ib.Take()
			if err != nil {
				t.Fatal(err)
			}
			w.WriteString("shown")
			for _, g := range got {
				w.WriteString(" " + g.ID)
			}
			w.WriteString("\n")
		}
		w.Flush()
	}
}
