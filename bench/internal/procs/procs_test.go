package procs

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestStraceCalls(t *testing.T) {
	text := `% time     seconds  usecs/call     calls    errors syscall
------ ----------- ----------- --------- --------- ----------------
 98.12    0.051234         426       120           fdatasync
  1.88    0.000981          81        12         2 fsync
------ ----------- ----------- --------- --------- ----------------
100.00    0.052215         395       132         2 total
`
	got := straceCalls(text)
	if got["fdatasync"] != 120 || got["fsync"] != 12 || len(got) != 2 {
		t.Errorf("straceCalls = %v, want fdatasync 120, fsync 12", got)
	}
	if got := straceCalls("strace: Process 12 attached\n\n"); len(got) != 0 {
		t.Errorf("no table: %v", got)
	}
}

func TestPctMedian(t *testing.T) {
	ds := []time.Duration{5, 1, 4, 2, 3}
	if p := pct(ds, 50); p != 3 {
		t.Errorf("p50 = %v", p)
	}
	if p := pct(ds, 100); p != 5 {
		t.Errorf("p100 = %v", p)
	}
	if p := pct(nil, 50); p != 0 {
		t.Errorf("p50 of nothing = %v", p)
	}
	if m := median([]float64{4, 1, 3, 2}); m != 2.5 {
		t.Errorf("median = %v", m)
	}
}

// TestHub runs the Python hub baseline for a few question-and-answer rounds.
func TestHub(t *testing.T) {
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skip("no python3")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	h, err := newHubPair(ctx, Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer h.close()
	for range 5 {
		if _, err := h.round(); err != nil {
			t.Fatal(err)
		}
	}
	// Sending to a name nobody registered is an error, not a hang.
	if _, err := h.a.do(map[string]any{"op": "send", "to": "nobody", "body": "x"}); err == nil {
		t.Error("send to an unknown session succeeded")
	}
}

func TestDiskProbe(t *testing.T) {
	d, err := newDiskProbe(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer d.close()
	d.off = diskProbeSize - 10 // wraps instead of growing the file
	for range 3 {
		if _, err := d.sample(); err != nil {
			t.Fatal(err)
		}
	}
	if d.off != 3*int64(len(d.buf)) {
		t.Errorf("offset %d after wrapping, want %d", d.off, 3*len(d.buf))
	}
}

func TestAllListsEveryScenario(t *testing.T) {
	for _, n := range []string{QA, Hub, Fsync, FsyncCount, AllSee20, AllSee50, StockAllSee20, StockAllSee50, Idle20, IdlePython, OneShot, MCPStart, CrashReclaim} {
		if !slices.Contains(All, n) {
			t.Errorf("All lacks %s", n)
		}
	}
}

// The idle row's stock baseline runs memberlist at the local preset's intervals: the constants here
// must say what mesh/config.go says (the benchmark module does not import the product's).
func TestIdleStockIntervals(t *testing.T) {
	src, err := os.ReadFile(filepath.Join("..", "..", "..", "mesh", "config.go"))
	if err != nil {
		t.Fatal(err)
	}
	consts := map[string]string{}
	for _, m := range regexp.MustCompile(`(?m)^\s*(?:const\s+)?(local\w+Interval)\s*=\s*(.+?)\s*$`).FindAllStringSubmatch(string(src), -1) {
		consts[m[1]] = m[2]
	}
	for name, want := range map[string]time.Duration{
		"localProbeInterval":    idleStockProbe,
		"localGossipInterval":   idleStockGossip,
		"localPushPullInterval": idleStockPushPull,
	} {
		expr, ok := consts[name]
		for i := 0; ok && i < 3; i++ { // a constant defined as another one
			if next, isName := consts[expr]; isName {
				expr = next
			}
		}
		if !ok {
			t.Fatalf("mesh/config.go defines no %s (found %v)", name, consts)
		}
		d, err := time.ParseDuration(strings.NewReplacer("*time.Second", "s", "*time.Millisecond", "ms").Replace(strings.ReplaceAll(expr, " ", "")))
		if err != nil {
			t.Fatalf("%s = %s: cannot read it as a duration: %v", name, expr, err)
		}
		if d != want {
			t.Errorf("mesh/config.go's %s is %s; the idle row's stock baseline uses %s", name, d, want)
		}
	}
}

// TestDirectPeer: callers of a direct peer read its stdout themselves; each gets its own
// response when they wait at once and the server answers out of order, with notifications
// between; a call after the process ended fails instead of hanging.
func TestDirectPeer(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("no python3")
	}
	// A server that holds "hold" requests and answers everything held, newest first, each
	// behind a notification, when a request that is not "hold" comes.
	script := filepath.Join(t.TempDir(), "fake")
	src := "#!" + py + `
import json, sys
held = []
for line in sys.stdin:
    m = json.loads(line)
    if "id" not in m:
        continue
    held.append(m)
    if m["method"] == "hold":
        continue
    for r in reversed(held):
        print(json.dumps({"jsonrpc": "2.0", "method": "notifications/x", "params": {}}))
        print(json.dumps({"jsonrpc": "2.0", "id": r["id"], "result": {"method": r["method"]}}))
    held = []
    sys.stdout.flush()
`
	if err := os.WriteFile(script, []byte(src), 0o755); err != nil {
		t.Fatal(err)
	}
	p, err := startMCPMode(true, script, nil, "fake")
	if err != nil {
		t.Fatal(err)
	}
	defer p.close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	method := func(raw []byte, err error) string {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		var r struct{ Method string }
		if err := json.Unmarshal(raw, &r); err != nil {
			t.Fatal(err)
		}
		return r.Method
	}
	for range 3 {
		held, err := p.send("hold", nil)
		if err != nil {
			t.Fatal(err)
		}
		got := make(chan string, 1)
		go func() {
			raw, err := p.wait(ctx, "hold", held)
			var r struct{ Method string }
			if err == nil {
				err = json.Unmarshal(raw, &r)
			}
			if err != nil {
				got <- err.Error()
				return
			}
			got <- r.Method // t.Fatal only on the test's goroutine
		}()
		if m := method(p.call(ctx, "go", nil)); m != "go" {
			t.Errorf("the second call got the result of %q", m)
		}
		if m := <-got; m != "hold" {
			t.Errorf("the held call got %q", m)
		}
	}

	// A call whose context ends while it waits fails (its process is killed) instead of
	// hanging: "hold" is never answered.
	short, cancelShort := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancelShort()
	if _, err := p.call(short, "hold", nil); err == nil {
		t.Error("a call past its context succeeded")
	}
	p.close()
	if _, err := p.call(ctx, "go", nil); err == nil {
		t.Error("a call after the process ended succeeded")
	}
}
