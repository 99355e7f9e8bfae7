package relay

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/paf-mesh/paf-mesh/internal/testutil"
	"github.com/paf-mesh/paf-mesh/mesh"
)

// The receiver of TestReceiverSIGKILLedDuringStream runs in a child process (the "crashrx" role
// of the cross-process harness, xproc_child_test.go) so that it can be SIGKILLed: a crash in
// the middle of a group commit, a read, a de-duplication, with nothing flushed or closed.

// crashJoinEnv is the gossip address a crashrx child joins (the parent's).
const crashJoinEnv = "PAF_BENCH_JOIN"

// crashServeReceiver is the crashrx role: a peer holding bench-rx with its state under
// PAF_BENCH_STATE, joined to PAF_BENCH_JOIN, that claims its name as soon as the mesh releases
// it from its killed predecessor. Command "check" answers "check <json bodies>": the unread
// messages, oldest first, then marked read.
func crashServeReceiver(log *slog.Logger, in io.Reader, out io.Writer) error {
	root := os.Getenv(xprocStateEnv)
	if root == "" {
		return fmt.Errorf("%s is not set", xprocStateEnv)
	}
	n, err := xprocStartNode(log, root, true, nil)
	if err != nil {
		return err
	}
	defer n.close()
	if _, err := n.peer.Join(os.Getenv(crashJoinEnv)); err != nil {
		return err
	}
	deadline := time.Now().Add(time.Minute)
	for {
		err := n.peer.Claim(context.Background(), xprocRxName)
		if err == nil {
			break
		}
		if !errors.Is(err, mesh.ErrNameTaken) || time.Now().After(deadline) {
			return err
		}
		time.Sleep(50 * time.Millisecond) // the killed peer's name is released after its grace period
	}
	if _, err := fmt.Fprintf(out, "ready %s\n", n.peer.Addr()); err != nil {
		return err
	}
	sc := bufio.NewScanner(in)
	for sc.Scan() {
		if sc.Text() != "check" {
			return fmt.Errorf("unknown command %q", sc.Text())
		}
		ms, err := n.relay.Check(xprocRxName)
		if err != nil {
			return err
		}
		bodies := []string{}
		for _, m := range ms {
			bodies = append(bodies, m.Body)
		}
		b, _ := json.Marshal(bodies)
		if _, err := fmt.Fprintf(out, "check %s\n", b); err != nil {
			return err
		}
	}
	return sc.Err()
}

// check reads the unread messages of a crashrx child.
func (c *xprocChild) check(tb testing.TB) []string {
	tb.Helper()
	if _, err := io.WriteString(c.stdin, "check\n"); err != nil {
		tb.Fatalf("crashrx child: %v", err)
	}
	var bodies []string
	if err := json.Unmarshal([]byte(c.expect(tb, "check", xprocReadyTimeout)), &bodies); err != nil {
		tb.Fatalf("crashrx child: bad check answer: %v", err)
	}
	return bodies
}

// kill SIGKILLs the child and waits for it to be gone.
func (c *xprocChild) kill() {
	c.stopOnce.Do(func() {
		_ = c.cmd.Process.Kill()
		for range c.lines {
		}
		_ = c.cmd.Wait()
	})
}

// A receiver SIGKILLed and restarted 10 times during a 2,000-message stream (issue 17): every
// send is answered delivered, stored or queued, or is an error that was never shown; every
// accepted message is shown exactly once, in send order, to a reader that reads between the
// crashes. The sender holds messages itself (a holder), so that while the receiver is down a
// message is stored rather than queued once the mesh declares it gone.
func TestReceiverSIGKILLedDuringStream(t *testing.T) {
	if testing.Short() {
		t.Skip("SIGKILLs a child process 10 times")
	}
	const total, kills = 2000, 10
	rxState := t.TempDir() // before the children, so removed after they exit
	n, err := xprocStartNode(testutil.QuietLogger(t, slog.LevelWarn), t.TempDir(), true, nil, func(c *Config) {
		c.HolderDir = filepath.Join(c.StateRoot, "slot")
		c.DeliverTimeout = time.Second
		c.OutboxRetry = 50 * time.Millisecond
		c.HandoverStagger = 50 * time.Millisecond
		c.HoldInterval = 50 * time.Millisecond
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(waitMemberlistProbes)
	t.Cleanup(n.close)
	if err := n.peer.Claim(context.Background(), xprocTxName); err != nil {
		t.Fatal(err)
	}
	spawn := func() *xprocChild {
		// One processor, as paf-peer mcp runs with: the receiver's inbox
		// syncs through Linux AIO (store's datasyncer), the path users meet.
		c, _ := xprocSpawn(t, "crashrx", xprocStateEnv+"="+rxState, crashJoinEnv+"="+n.peer.Addr(), "GOMAXPROCS=1")
		return c
	}
	child := spawn()
	testutil.WaitFor(t, 20*time.Second, xprocRxName+" to be online", func() bool {
		r, _ := n.peer.Resolve(xprocRxName)
		return r.Online && MetaAddr(r.Owner.Meta) != ""
	})

	// The stream is cut into kills+1 segments. In each but the last, the receiver is killed
	// halfway (deliveries in flight), the rest of the segment is sent while it is down (stored
	// or queued), and the next segment waits until it is back: so every crash falls in the
	// middle of the stream, with messages before, during and after it.
	seg := total / (kills + 1)
	restarted := make([]chan struct{}, kills)
	for k := range restarted {
		restarted[k] = make(chan struct{})
	}
	var (
		mu         sync.Mutex
		accepted   []string
		refused    []string
		statuses   = map[string]int{}
		sent       atomic.Int64
		lastStatus string
	)
	streamDone := make(chan struct{})
	go func() {
		defer close(streamDone)
		for i := range total {
			if k := i/seg - 1; i%seg == 0 && k >= 0 && k < kills {
				<-restarted[k]
			}
			body := fmt.Sprintf("m%04d", i)
			res, err := n.relay.Send(context.Background(), Outgoing{From: xprocTxName, To: xprocRxName, Body: body})
			mu.Lock()
			if err != nil {
				refused = append(refused, body)
			} else {
				if len(accepted) == 0 || res.Status != lastStatus { // the story, shown on failure
					t.Logf("%s: %s %s", body, res.Status, res.Reason)
				}
				lastStatus = res.Status
				accepted = append(accepted, body)
				statuses[res.Status]++
			}
			mu.Unlock()
			sent.Store(int64(i + 1))
		}
	}()
	var shown []string
	for k := range kills {
		at := int64(k*seg + seg/2)
		testutil.WaitFor(t, 2*time.Minute, fmt.Sprintf("%d messages sent", at), func() bool { return sent.Load() >= at })
		shown = append(shown, child.check(t)...)
		child.kill()
		child = spawn()
		testutil.WaitFor(t, 30*time.Second, xprocRxName+" to be back online", func() bool {
			r, _ := n.peer.Resolve(xprocRxName)
			return r.Online && MetaAddr(r.Owner.Meta) != ""
		})
		close(restarted[k])
	}
	<-streamDone
	testutil.WaitFor(t, 2*time.Minute, "the sender's outbox and held messages to empty, and every accepted message shown", func() bool {
		shown = append(shown, child.check(t)...)
		mu.Lock()
		defer mu.Unlock()
		return n.relay.Queued() == 0 && n.relay.HeldCount(xprocRxName) == 0 && len(shown) >= len(accepted)
	})
	shown = append(shown, child.check(t)...) // a late duplicate would show here
	mu.Lock()
	defer mu.Unlock()
	t.Logf("statuses %v, refused %d, shown %d", statuses, len(refused), len(shown))
	for _, b := range refused {
		if slices.Contains(shown, b) {
			t.Errorf("%s was reported as an error and shown", b)
		}
	}
	if !slices.Equal(shown, accepted) {
		firstDiff := 0
		for firstDiff < min(len(shown), len(accepted)) && shown[firstDiff] == accepted[firstDiff] {
			firstDiff++
		}
		t.Fatalf("shown %d, accepted %d: not each once in order; they differ from index %d: shown %v..., accepted %v...",
			len(shown), len(accepted), firstDiff, shown[firstDiff:min(len(shown), firstDiff+10)], accepted[firstDiff:min(len(accepted), firstDiff+10)])
	}
}
