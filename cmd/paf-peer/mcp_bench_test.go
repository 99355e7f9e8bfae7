package main

// Benchmarks of `paf-peer mcp` as an agent sees it (SPEC section 10): start
// to initialize result, an idle peer's memory and CPU, paf_send on one peer
// until paf_listen returns on another, and the size of tools/list. Each
// figure comes with a baseline measured in the same run, because absolute
// times on a shared machine drift. The figures are reported with
// b.ReportMetric; nothing here passes or fails on a timing.
//
//	go test -run '^$' -bench MCP -benchtime 1x -timeout 10m ./cmd/paf-peer/
//
// `make bench` (bench/cmd/pafbench) parses the metric names: they are a
// contract. PAF_BENCH_QUICK=1 (its quick mode) takes fewer samples, as each
// benchmark's comment says.
//
// Run without -race: the race detector multiplies CPU, memory and latency.
// Should the test binary have been built with -race all the same, the
// benchmarks build and measure a paf-peer without it.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"
	"go.etcd.io/bbolt"

	"github.com/paf-mesh/paf-mesh/internal/testutil"
	"github.com/paf-mesh/paf-mesh/internal/testutil/mcptest"
)

const (
	// benchWarmup rounds run first and are not counted: the first messages
	// also open the relay's connection between the peers.
	benchWarmup = 10
	// listenHeadStart is how long B's paf_listen gets to reach B's server
	// and block before A sends. The request is one write on a pipe and a
	// dispatch; if it ever took longer, B's listen would find the message
	// already there and return at once, which shows as a lower figure, so
	// this is generous.
	listenHeadStart = 20 * time.Millisecond
	// clockTicks is USER_HZ, the unit of utime and stime in /proc/PID/stat:
	// 100 on every Linux configuration Go supports (the stdlib has no
	// sysconf(_SC_CLK_TCK) to ask).
	clockTicks = 100
)

var (
	// benchStarts is how many process starts BenchmarkMCPStartToInitialize
	// times per iteration: 20, quick 5.
	benchStarts = testutil.BenchCount(20, 5)
	// benchRounds is how many send-to-listen round trips
	// BenchmarkMCPSendToListen times per iteration (and trivial calls for
	// its baseline): 200, quick 50.
	benchRounds = testutil.BenchCount(200, 50)
	// idleSettle and idleWindow: an idle peer is measured after it has
	// settled (joined, gossip steady), over a window long enough for
	// memberlist's periodic probes and gossip to be counted: 5 s and 10 s,
	// quick 1 s and 3 s (the CPU figure is then coarse: /proc counts CPU
	// time in 10 ms ticks, 0.33% of a 3 s window).
	idleSettle = testutil.BenchCount(5*time.Second, time.Second)
	idleWindow = testutil.BenchCount(10*time.Second, 3*time.Second)
)

var (
	benchBinOnce sync.Once
	benchBinPath string
	benchBinErr  error
)

// benchBinary returns the paf-peer to measure: the one TestMain built, or,
// when that one has the race detector in it, one built without.
func benchBinary(b *testing.B) string {
	b.Helper()
	if !testutil.RaceEnabled() {
		return pafPeer
	}
	benchBinOnce.Do(func() {
		// Next to pafPeer, so that TestMain's cleanup removes it too.
		benchBinPath = filepath.Join(filepath.Dir(pafPeer), "paf-peer-norace")
		out, err := exec.Command("go", "build", "-o", benchBinPath, ".").CombinedOutput()
		if err != nil {
			benchBinErr = fmt.Errorf("go build (without -race): %w\n%s", err, out)
		}
	})
	if benchBinErr != nil {
		b.Fatal(benchBinErr)
	}
	b.Log("the test binary has -race; measuring a paf-peer built without it")
	return benchBinPath
}

// benchRoot is a fresh directory for run and state dirs, short enough for
// the control sockets' 107-byte path limit (as newTestMesh).
func benchRoot(b *testing.B) string {
	b.Helper()
	root, err := os.MkdirTemp("", "pafb")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(root) })
	return root
}

// benchEnv is a peer's whole environment: nothing leaks in from the
// benchmark's own (no PAF_SECRET, no XDG_*).
func benchEnv(root, runDir, who string) []string {
	return []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + root,
		"PAF_RUN_DIR=" + runDir,
		"PAF_STATE_DIR=" + filepath.Join(root, "state-"+who),
	}
}

// benchPeer is one `paf-peer mcp` process and an mcp-go client on its stdio.
// The pipes are plain os.Pipes, with no copying goroutine in between, so
// that what is timed is the product and the client, nothing else.
type benchPeer struct {
	b      *testing.B
	who    string
	cmd    *exec.Cmd
	c      *client.Client
	stdout *os.File // the client's end of the process's stdout
	sizer  *lineSizer
	stderr testutil.SyncBuffer
	done   chan struct{} // closed when the process has exited and been reaped
}

// startBenchPeer starts `paf-peer mcp` and initializes a client with it; it
// returns the peer and the time from exec to the initialize result.
func startBenchPeer(b *testing.B, bin string, env []string, who string) (*benchPeer, time.Duration) {
	b.Helper()
	p := &benchPeer{b: b, who: who, done: make(chan struct{})}
	inR, inW, err := os.Pipe()
	if err != nil {
		b.Fatal(err)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		b.Fatal(err)
	}
	p.stdout = outR
	p.cmd = exec.Command(bin, "mcp")
	p.cmd.Env = env
	p.cmd.Dir = os.TempDir()
	p.cmd.Stdin, p.cmd.Stdout, p.cmd.Stderr = inR, outW, &p.stderr
	p.sizer = &lineSizer{r: outR}
	p.c = client.NewClient(transport.NewIO(p.sizer, inW, io.NopCloser(strings.NewReader(""))), client.WithProtocolVersion(mcptest.ProtocolVersion))

	start := time.Now()
	if err := p.cmd.Start(); err != nil {
		b.Fatalf("start paf-peer mcp: %v", err)
	}
	// The child has its own copies of these ends now.
	inR.Close()
	outW.Close()
	go func() {
		_ = p.cmd.Wait()
		close(p.done)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), mcpCallTimeout)
	defer cancel()
	if err := p.c.Start(context.Background()); err != nil {
		p.close()
		b.Fatalf("start client: %v", err)
	}
	if _, err := mcptest.Initialize(ctx, p.c, "paf-bench"); err != nil {
		p.close()
		b.Fatalf("initialize paf-peer mcp (%s): %v\nstderr:\n%s", who, err, p.stderr.String())
	}
	return p, time.Since(start)
}

// close closes the process's stdin (the end of its input: it leaves the
// mesh and exits) and waits for it; one that hangs is killed, by its PID.
func (p *benchPeer) close() {
	p.b.Helper()
	p.c.Close()
	select {
	case <-p.done:
	case <-time.After(stopTimeout):
		p.b.Errorf("paf-peer mcp (%s) did not exit within %s of its stdin closing; killing it", p.who, stopTimeout)
		_ = p.cmd.Process.Kill()
		<-p.done
	}
	p.stdout.Close()
	if code := p.cmd.ProcessState.ExitCode(); code != 0 {
		p.b.Errorf("paf-peer mcp (%s) exited %d; want 0\nstderr:\n%s", p.who, code, p.stderr.String())
	}
	if s := p.stderr.String(); strings.Contains(s, "panic:") || strings.Contains(s, "fatal error:") {
		p.b.Errorf("paf-peer mcp (%s) panicked:\n%s", p.who, s)
	}
}

// call calls a tool that must succeed and returns its structured content.
func (p *benchPeer) call(tool string, args map[string]any) map[string]any {
	p.b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), mcpCallTimeout)
	defer cancel()
	res, err := mcptest.Call(ctx, p.c, tool, args, nil)
	if err == nil {
		err = resultErr(res)
	}
	if err != nil {
		p.b.Fatalf("%s: %s: %v\nstderr:\n%s", p.who, tool, err, p.stderr.String())
	}
	d, _ := res.StructuredContent.(map[string]any)
	return d
}

// resultErr turns an error result into an error.
func resultErr(res *mcp.CallToolResult) error {
	if res.IsError {
		return fmt.Errorf("error result: %s", mcptest.Text(res))
	}
	if _, ok := res.StructuredContent.(map[string]any); !ok {
		return fmt.Errorf("structuredContent is %T, want an object", res.StructuredContent)
	}
	return nil
}

// waitToSee polls p's paf_list_sessions until it lists name.
func (p *benchPeer) waitToSee(name string) {
	p.b.Helper()
	deadline := time.Now().Add(seeDeadline)
	for {
		var list []struct {
			Name string `json:"name"`
		}
		raw, _ := json.Marshal(p.call("paf_list_sessions", nil)["sessions"])
		if err := json.Unmarshal(raw, &list); err != nil {
			p.b.Fatalf("%s: paf_list_sessions: sessions: %v", p.who, err)
		}
		if slices.ContainsFunc(list, func(s struct {
			Name string `json:"name"`
		}) bool {
			return s.Name == name
		}) {
			return
		}
		if time.Now().After(deadline) {
			p.b.Fatalf("%s did not see %s within %s", p.who, name, seeDeadline)
		}
		time.Sleep(pollEvery)
	}
}

// lineSizer passes the process's stdout through to the client unchanged
// and, while capturing, records the size of each complete line: the size
// of a response as it travels on the wire.
type lineSizer struct {
	r       io.Reader
	capture atomic.Bool
	mu      sync.Mutex
	cur     int
	lines   []int
}

func (l *lineSizer) Read(p []byte) (int, error) {
	n, err := l.r.Read(p)
	if n > 0 && l.capture.Load() {
		l.mu.Lock()
		for _, c := range p[:n] {
			l.cur++
			if c == '\n' {
				l.lines = append(l.lines, l.cur)
				l.cur = 0
			}
		}
		l.mu.Unlock()
	}
	return n, err
}

// longest returns the longest line captured so far and resets.
func (l *lineSizer) longest() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	m := slices.Max(append(l.lines, 0))
	l.lines, l.cur = nil, 0
	return m
}

// timeRun times exec to exit of one short command.
func timeRun(b *testing.B, env []string, name string, args ...string) time.Duration {
	b.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = env
	start := time.Now()
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return time.Since(start)
}

// BenchmarkMCPStartToInitialize: exec of `paf-peer mcp` (fresh state and run
// dirs each time) until the client has the initialize result; median and
// p90 of benchStarts starts. Baselines: exec to exit of `paf-peer version`
// (the cost of starting this binary at all) and of /bin/true (of starting
// any process). Also the size of the tools/list response on the wire.
// Target (SPEC 10): median <= 20 ms.
func BenchmarkMCPStartToInitialize(b *testing.B) {
	bin := benchBinary(b)
	var inits, versions, trues []time.Duration
	toolsList := 0
	for range b.N {
		for i := range benchStarts {
			root := benchRoot(b)
			env := benchEnv(root, filepath.Join(root, "run"), "x")
			versions = append(versions, timeRun(b, env, bin, "version"))
			if _, err := os.Stat("/bin/true"); err == nil {
				trues = append(trues, timeRun(b, env, "/bin/true"))
			}
			p, d := startBenchPeer(b, bin, env, "x")
			inits = append(inits, d)
			if i == 0 {
				p.sizer.capture.Store(true)
				tools, err := p.c.ListTools(context.Background(), mcp.ListToolsRequest{})
				if err != nil || len(tools.Tools) != 12 {
					b.Fatalf("tools/list: %d tools, %v", len(tools.Tools), err)
				}
				toolsList = p.sizer.longest()
				p.sizer.capture.Store(false)
			}
			p.close()
		}
	}
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(testutil.Millis(testutil.Percentile(inits, 0.5)), "init-p50-ms")
	b.ReportMetric(testutil.Millis(testutil.Percentile(inits, 0.9)), "init-p90-ms")
	b.ReportMetric(testutil.Millis(testutil.Percentile(versions, 0.5)), "version-p50-ms")
	if len(trues) > 0 {
		b.ReportMetric(testutil.Millis(testutil.Percentile(trues, 0.5)), "bintrue-p50-ms")
	}
	b.ReportMetric(float64(toolsList), "tools-list-bytes")
	b.Logf("start to initialize: min %.1f ms, max %.1f ms over %d starts", testutil.Millis(inits[0]), testutil.Millis(inits[len(inits)-1]), len(inits))
}

// procSample is what /proc says about one process at one moment.
type procSample struct {
	at       time.Time
	rssKB    int64 // VmRSS
	hwmKB    int64 // VmHWM, the peak RSS
	cpuTicks int64 // utime + stime, in clockTicks
}

func sampleProc(b *testing.B, pid int) procSample {
	b.Helper()
	s := procSample{at: time.Now()}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	sc := bufio.NewScanner(bytes.NewReader(status))
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), ":")
		f := strings.Fields(v) // "12345 kB"
		if len(f) == 0 {
			continue
		}
		switch k {
		case "VmRSS":
			s.rssKB, _ = strconv.ParseInt(f[0], 10, 64)
		case "VmHWM":
			s.hwmKB, _ = strconv.ParseInt(f[0], 10, 64)
		}
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	// The command name, field 2, is in parentheses and may hold spaces:
	// count fields from after its closing parenthesis (field 3 is state).
	i := bytes.LastIndexByte(stat, ')')
	f := strings.Fields(string(stat[i+1:]))
	if i < 0 || len(f) < 13 {
		b.Fatalf("/proc/%d/stat: unexpected format: %q", pid, stat)
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64) // field 14
	stime, err2 := strconv.ParseInt(f[12], 10, 64) // field 15
	if err1 != nil || err2 != nil {
		b.Fatalf("/proc/%d/stat: utime %q, stime %q", pid, f[11], f[12])
	}
	s.cpuTicks = utime + stime
	if s.rssKB == 0 {
		b.Fatalf("/proc/%d/status: no VmRSS", pid)
	}
	return s
}

// BenchmarkMCPIdle: two named `paf-peer mcp` peers joined to each other,
// left idle: after idleSettle, the RSS of each, and the CPU each uses over
// idleWindow (percent of one core). Targets (SPEC 10): RSS <= 30 MB, CPU
// <= 0.5%.
func BenchmarkMCPIdle(b *testing.B) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		b.Skip("needs /proc")
	}
	bin := benchBinary(b)
	var rss, hwm, cpu [2][]float64
	for range b.N {
		root := benchRoot(b)
		runDir := filepath.Join(root, "run")
		peers := [2]*benchPeer{}
		for i, who := range []string{"idle-a", "idle-b"} {
			peers[i], _ = startBenchPeer(b, bin, benchEnv(root, runDir, who), who)
			peers[i].call("paf_register", map[string]any{"name": who, "description": "an idle session"})
		}
		peers[0].waitToSee("idle-b")
		peers[1].waitToSee("idle-a")

		time.Sleep(idleSettle) // a measurement window, not synchronisation
		var before [2]procSample
		for i, p := range peers {
			before[i] = sampleProc(b, p.cmd.Process.Pid)
		}
		time.Sleep(idleWindow)
		for i, p := range peers {
			after := sampleProc(b, p.cmd.Process.Pid)
			secs := after.at.Sub(before[i].at).Seconds()
			rss[i] = append(rss[i], float64(after.rssKB)/1024)
			hwm[i] = append(hwm[i], float64(after.hwmKB)/1024)
			cpu[i] = append(cpu[i], 100*float64(after.cpuTicks-before[i].cpuTicks)/clockTicks/secs)
		}
		for _, p := range peers {
			p.close()
		}
	}
	b.ReportMetric(0, "ns/op")
	for i, who := range []string{"a", "b"} {
		b.ReportMetric(slices.Max(rss[i]), "rss-"+who+"-MB")
		b.ReportMetric(slices.Max(cpu[i]), "cpu-"+who+"-%")
		b.Logf("peer %s: RSS %.1f MB (peak %.1f MB), CPU %.2f%% of a core over %s",
			who, slices.Max(rss[i]), slices.Max(hwm[i]), slices.Max(cpu[i]), idleWindow)
	}
}

// listenResult is B's paf_listen result and when it arrived.
type listenResult struct {
	res *mcp.CallToolResult
	err error
	at  time.Time
}

// BenchmarkMCPSendToListen: peer B blocks in paf_listen; peer A calls
// paf_send; the time from the start of A's call until B's paf_listen
// returns, p50 and p99 over benchRounds rounds. Also the duration of A's
// paf_send call itself (it returns once B's peer has acknowledged), and, as
// the baseline, the round trip of a trivial tool call (paf_check on B): what
// the MCP stdio transport and mcp-go cost on their own. Target (SPEC 10):
// p50 <= 2 ms.
func BenchmarkMCPSendToListen(b *testing.B) {
	bin := benchBinary(b)
	var lat, sendCall, check, commits []time.Duration
	for range b.N {
		root := benchRoot(b)
		runDir := filepath.Join(root, "run")
		a, _ := startBenchPeer(b, bin, benchEnv(root, runDir, "lat-a"), "lat-a")
		bb, _ := startBenchPeer(b, bin, benchEnv(root, runDir, "lat-b"), "lat-b")
		a.call("paf_register", map[string]any{"name": "lat-a"})
		bb.call("paf_register", map[string]any{"name": "lat-b"})
		a.waitToSee("lat-b")

		for i := range benchWarmup + benchRounds {
			body := fmt.Sprintf("round %d", i)
			ch := make(chan listenResult, 1)
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), mcpCallTimeout)
				defer cancel()
				res, err := mcptest.Call(ctx, bb.c, "paf_listen", map[string]any{"timeout_seconds": 20}, nil)
				ch <- listenResult{res, err, time.Now()}
			}()
			time.Sleep(listenHeadStart) // see listenHeadStart
			start := time.Now()
			sent := a.call("paf_send", map[string]any{"to": "lat-b", "message": body})
			sendDur := time.Since(start)
			r := <-ch // bounded by the call's own timeout
			if r.err == nil {
				r.err = resultErr(r.res)
			}
			if r.err != nil {
				b.Fatalf("lat-b: paf_listen: %v\nstderr:\n%s", r.err, bb.stderr.String())
			}
			var got struct {
				Messages []struct {
					Body string `json:"body"`
				} `json:"messages"`
			}
			raw, _ := json.Marshal(r.res.StructuredContent)
			if err := json.Unmarshal(raw, &got); err != nil || len(got.Messages) != 1 || got.Messages[0].Body != body || sent["status"] != "delivered" {
				b.Fatalf("round %d: send %v; listen returned %s (%v); want the one message %q, delivered", i, sent, raw, err, body)
			}
			if i >= benchWarmup {
				lat = append(lat, r.at.Sub(start))
				sendCall = append(sendCall, sendDur)
			}
		}
		for i := range benchWarmup + benchRounds {
			start := time.Now()
			bb.call("paf_check", nil)
			if i >= benchWarmup {
				check = append(check, time.Since(start))
			}
		}
		a.close()
		bb.close()
		commits = append(commits, timeCommits(b, root)...)
	}
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(testutil.Millis(testutil.Percentile(lat, 0.5)), "send-to-listen-p50-ms")
	b.ReportMetric(testutil.Millis(testutil.Percentile(lat, 0.99)), "send-to-listen-p99-ms")
	b.ReportMetric(testutil.Millis(testutil.Percentile(sendCall, 0.5)), "send-call-p50-ms")
	b.ReportMetric(testutil.Millis(testutil.Percentile(check, 0.5)), "check-rtt-p50-ms")
	b.ReportMetric(testutil.Millis(testutil.Percentile(check, 0.99)), "check-rtt-p99-ms")
	b.ReportMetric(testutil.Millis(testutil.Percentile(commits, 0.5)), "bbolt-commit-p50-ms")
}

// timeCommits times benchRounds bbolt commits of one 1 KiB value in a
// database under dir, opened with the options of the relay's inbox.
func timeCommits(b *testing.B, dir string) []time.Duration {
	b.Helper()
	db, err := bbolt.Open(filepath.Join(dir, "baseline.db"), 0o600, &bbolt.Options{
		Timeout: time.Second, NoFreelistSync: true, FreelistType: bbolt.FreelistMapType,
	})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	val := bytes.Repeat([]byte("x"), 1<<10)
	var ds []time.Duration
	for i := range benchWarmup + benchRounds {
		start := time.Now()
		err := db.Update(func(tx *bbolt.Tx) error {
			bk, err := tx.CreateBucketIfNotExists([]byte("inbox"))
			if err != nil {
				return err
			}
			return bk.Put([]byte(fmt.Sprintf("%08d", i)), val)
		})
		if err != nil {
			b.Fatal(err)
		}
		if i >= benchWarmup {
			ds = append(ds, time.Since(start))
		}
	}
	return ds
}
