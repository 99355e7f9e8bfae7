package relay

// The parent side of the cross-process benchmarks: starting a child (xproc_child_test.go),
// talking to it, and reporting percentiles.

import (
	"github.com/paf-mesh/paf-mesh/relay/wire"

	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/paf-mesh/paf-mesh/internal/testutil"
)

const (
	// xprocReadyTimeout bounds a child's start (a receiver starts gossip and claims its name).
	xprocReadyTimeout = 20 * time.Second
	// xprocExitTimeout is how long a child has to exit after its stdin closed before it is
	// killed.
	xprocExitTimeout = 10 * time.Second
)

// xprocChild is a child process running one role.
type xprocChild struct {
	role   string
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	lines  chan string          // the child's stdout, line by line; closed at EOF
	stderr *testutil.SyncBuffer // written by exec's copying goroutine

	stopOnce sync.Once
}

// xprocSpawn starts this test binary as a child in role, with env added to this process's
// environment, and returns it with the fields of its "ready" line. Cleanup closes its stdin,
// waits for it to exit, and kills it (by its PID) if it does not within xprocExitTimeout.
func xprocSpawn(tb testing.TB, role string, env ...string) (*xprocChild, []string) {
	tb.Helper()
	// -test.run/-test.bench keep a child that somehow misses its role from running anything.
	cmd := exec.Command(os.Args[0], "-test.run=^$", "-test.bench=^$")
	cmd.Env = append(append(os.Environ(), xprocChildEnv+"="+role), env...)
	if base := os.Getenv(xprocProfileEnv); base != "" {
		name := strings.NewReplacer("/", "_", " ", "_").Replace(tb.Name())
		cmd.Env = append(cmd.Env, xprocProfileOutEnv+"="+base+"."+name)
	}
	c := &xprocChild{role: role, cmd: cmd, lines: make(chan string, 16), stderr: &testutil.SyncBuffer{}}
	cmd.Stderr = c.stderr
	var err error
	if c.stdin, err = cmd.StdinPipe(); err != nil {
		tb.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatalf("start bench child %s: %v", role, err)
	}
	go func() {
		defer close(c.lines)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 64<<20) // reports carry every sample
		for sc.Scan() {
			c.lines <- sc.Text()
		}
	}()
	tb.Cleanup(func() { c.stop(tb) })
	return c, strings.Fields(c.expect(tb, "ready", xprocReadyTimeout))
}

// stop closes the child's stdin (it exits on EOF), waits for it, and kills it if it lingers.
// Only the first call does anything.
func (c *xprocChild) stop(tb testing.TB) {
	c.stopOnce.Do(func() { c.stopNow(tb) })
}

func (c *xprocChild) stopNow(tb testing.TB) {
	c.stdin.Close()
	exited := make(chan error, 1)
	go func() {
		for range c.lines { // unblock the reader so that it reaches EOF
		}
		exited <- c.cmd.Wait() // after the reader is done, as exec requires
	}()
	timer := time.NewTimer(xprocExitTimeout)
	defer timer.Stop()
	var err error
	select {
	case err = <-exited:
	case <-timer.C:
		tb.Errorf("bench child %s (pid %d) did not exit within %v of its stdin closing; killing it",
			c.role, c.cmd.Process.Pid, xprocExitTimeout)
		_ = c.cmd.Process.Kill()
		err = <-exited
	}
	if err != nil {
		tb.Errorf("bench child %s (pid %d): %v; its stderr:\n%s", c.role, c.cmd.Process.Pid, err, c.stderr)
	} else if s := c.stderr.String(); s != "" {
		tb.Logf("bench child %s stderr:\n%s", c.role, s)
	}
}

// expect returns the rest of the child's next line that starts with word, failing after
// timeout or if the child exits first. Other lines are logged and skipped.
func (c *xprocChild) expect(tb testing.TB, word string, timeout time.Duration) string {
	tb.Helper()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		select {
		case line, ok := <-c.lines:
			if !ok {
				tb.Fatalf("bench child %s exited while we waited for %q; its stderr:\n%s", c.role, word, c.stderr)
			}
			if rest, found := strings.CutPrefix(line, word+" "); found {
				return rest
			}
			tb.Logf("bench child %s said: %s", c.role, line)
		case <-timer.C:
			tb.Fatalf("bench child %s: no %q within %v; its stderr:\n%s", c.role, word, timeout, c.stderr)
		}
	}
}

// report asks the child for its timings since the last report.
func (c *xprocChild) report(tb testing.TB) xprocReport {
	tb.Helper()
	if _, err := io.WriteString(c.stdin, "report\n"); err != nil {
		tb.Fatalf("bench child %s: %v", c.role, err)
	}
	var r xprocReport
	if err := json.Unmarshal([]byte(c.expect(tb, "report", xprocReadyTimeout)), &r); err != nil {
		tb.Fatalf("bench child %s: bad report: %v", c.role, err)
	}
	return r
}

// xprocRelayPair starts a receiver child holding bench-rx and, in this process, a peer holding
// bench-tx joined to it. It returns once a message goes through (the child has learnt that
// this peer holds bench-tx), with the child's timings so far discarded.
//
// lifted turns the receiver's per-source rate limit off; otherwise it has the default
// (DefaultRate, DefaultBurst). childEnv is added to the child's environment (GOMAXPROCS=1: a
// receiver with one processor, as a session runs).
func xprocRelayPair(tb testing.TB, lifted bool, childEnv ...string) (*xprocNode, *xprocChild) {
	tb.Helper()
	rxState := tb.TempDir() // before the child, so removed after it exits
	env := append([]string{xprocStateEnv + "=" + rxState}, childEnv...)
	if lifted {
		env = append(env, xprocRateLiftedEnv+"=1")
	}
	child, ready := xprocSpawn(tb, "receiver", env...)
	if len(ready) != 1 {
		tb.Fatalf("receiver said ready %q, want its gossip address", ready)
	}
	n, err := xprocStartNode(testutil.QuietLogger(tb, slog.LevelWarn), tb.TempDir(), false, nil)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(waitMemberlistProbes) // after n.close: cleanups run last in, first out
	tb.Cleanup(n.close)
	if _, err := n.peer.Join(ready[0]); err != nil {
		tb.Fatal(err)
	}
	if err := n.peer.Claim(context.Background(), xprocTxName); err != nil {
		tb.Fatal(err)
	}
	testutil.WaitFor(tb, 10*time.Second, xprocRxName+" to be online", func() bool {
		r, _ := n.peer.Resolve(xprocRxName)
		return r.Online && MetaAddr(r.Owner.Meta) != ""
	})
	// The first send retries (as Send does) until the receiver's view of the mesh binds
	// bench-tx to this peer.
	if _, err := n.relay.Send(context.Background(), Outgoing{From: xprocTxName, To: xprocRxName, Body: "hello"}); err != nil {
		tb.Fatalf("first send: %v", err)
	}
	child.report(tb)
	return n, child
}

// memberlistProbe is the top frame of the goroutine of a memberlist probe in flight.
const memberlistProbe = "github.com/hashicorp/memberlist.(*Memberlist).probeNode("

// waitMemberlistProbes waits (up to 10 s) until no memberlist probe is in flight. Shutdown does
// not wait for one: it ends on its own once its probe interval is over (scaled up by Lifeguard
// on a busy machine). Benchmarks that close peers call it last, so that the leak check of
// TestMain does not take a probe still running for a leaked goroutine.
func waitMemberlistProbes() {
	deadline := time.Now().Add(10 * time.Second)
	buf := make([]byte, 1<<20)
	for time.Now().Before(deadline) {
		n := runtime.Stack(buf, true)
		if n == len(buf) {
			buf = make([]byte, 2*len(buf)) // truncated: look again with room
			continue
		}
		if !bytes.Contains(buf[:n], []byte(memberlistProbe)) {
			return
		}
		time.Sleep(20 * time.Millisecond) // polling interval, not synchronisation
	}
}

// xprocTransportPair starts a transport child and a Transport in this process, connected.
func xprocTransportPair(tb testing.TB) (tr *wire.Transport, id, addr string, child *xprocChild) {
	tb.Helper()
	child, ready := xprocSpawn(tb, "transport")
	if len(ready) != 2 {
		tb.Fatalf("transport child said ready %q, want its address and id", ready)
	}
	addr, id = ready[0], ready[1]
	k, err := xprocKeys()
	if err != nil {
		tb.Fatal(err)
	}
	tr, err = wire.NewTransport(wire.Config{
		ID: xprocIdentity(xprocTxTransport).NewPeerID(), Identity: xprocIdentity(xprocTxTransport), Key: k.Relay, MaxPayload: xprocMaxPayload, Logger: testutil.QuietLogger(tb, slog.LevelWarn),
	})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { tr.Close() })
	if _, err := tr.Request(context.Background(), id, addr, nil); err != nil { // connect
		tb.Fatal(err)
	}
	return tr, id, addr, child
}

// xprocPct returns the p-th percentile (0..1) of sorted ds, nearest rank.
func xprocPct(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[int(p*float64(len(sorted)-1)+0.5)]
}

// xprocUS converts d to microseconds.
func xprocUS(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

// xprocReportPcts sorts ds and reports its p50 and p99, divided by div (2 turns a round trip
// into a one-way time), in microseconds, as p50-<name>-us and p99-<name>-us. It returns them.
func xprocReportPcts(b *testing.B, name string, ds []time.Duration, div int) (p50, p99 float64) {
	slices.Sort(ds)
	p50 = xprocUS(xprocPct(ds, 0.50)) / float64(div)
	p99 = xprocUS(xprocPct(ds, 0.99)) / float64(div)
	b.ReportMetric(p50, "p50-"+name+"-us")
	b.ReportMetric(p99, "p99-"+name+"-us")
	return p50, p99
}

// xprocDurations converts nanosecond counts to durations.
func xprocDurations(ns []int64) []time.Duration {
	ds := make([]time.Duration, len(ns))
	for i, n := range ns {
		ds[i] = time.Duration(n)
	}
	return ds
}

// xprocRun calls fn for i in [0, total) from workers goroutines, each taking the next i, and
// returns the first error.
func xprocRun(workers, total int, fn func(i int) error) error {
	var (
		mu    sync.Mutex
		next  int
		first error
		wg    sync.WaitGroup
	)
	for range workers {
		wg.Go(func() {
			for {
				mu.Lock()
				i := next
				next++
				stop := i >= total || first != nil
				mu.Unlock()
				if stop {
					return
				}
				if err := fn(i); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
					return
				}
			}
		})
	}
	wg.Wait()
	return first
}

// xprocText returns n bytes of ASCII text: a valid message body.
func xprocText(n int) []byte {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789 "
	b := make([]byte, n)
	for i := range b {
		b[i] = alphabet[i%len(alphabet)]
	}
	return b
}
