package procs

import (
	"bufio"
	"cmp"
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// convergeTimeout bounds how long the scenario waits for all to see all; a run that does not
// get there reports how many did, as a failure.
const convergeTimeout = 90 * time.Second

// runMesh starts n `paf-peer mcp` sessions back to back (each with its name, all in one run
// dir), and times until every one lists all the others (paf_list_sessions, polled by each
// session's own goroutine every pollEvery), from the start of the last process. Then one
// session renames itself (a claim of a new name) and the scenario times until all the others
// list the new name. With idle, it then lets them settle and measures each process's CPU
// (schedstat of every thread: nanoseconds on a CPU) and RSS over a window, beside an idle Python process (the
// hub of the baseline, an asyncio server with nothing to do). Then the same with n stock
// memberlist nodes (memberlist.DefaultLocalConfig, each joining the ones started before it).
func runMesh(ctx context.Context, cfg Config, n int, idle bool) []Result {
	all, stock := AllSee20, StockAllSee20
	if n == 50 {
		all, stock = AllSee50, StockAllSee50
	}
	names := []string{all, stock}
	if idle {
		names = append(names, Idle20, IdlePython, IdleStock20)
	}
	results := map[string]*Result{}
	for _, nm := range names {
		results[nm] = &Result{Name: nm}
	}
	pafMesh(ctx, cfg, n, idle, results[all], results[Idle20], results[IdlePython], results[IdleStock20])
	stockMesh(ctx, cfg, n, results[stock])
	out := make([]Result, 0, len(names))
	for _, nm := range names {
		out = append(out, *results[nm])
	}
	return out
}

const pollEvery = 50 * time.Millisecond

func pafMesh(ctx context.Context, cfg Config, n int, idle bool, res, idleRes, pyRes, stockRes *Result) {
	fail := func(err error) { // the idle window needs the peers: its baselines fail with them
		for _, r := range []*Result{res, idleRes, pyRes, stockRes} {
			if r != nil {
				r.Err = err
			}
		}
	}
	w, err := newWorld()
	if err != nil {
		fail(err)
		return
	}
	defer w.close()
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("peer-%02d", i)
	}
	var peers []*mcpPeer
	defer func() { closeAll(peers) }()
	for _, nm := range names {
		p, err := startMCP(cfg.Bin, w.env(nm), nm, "--name", nm)
		if err != nil {
			fail(err)
			return
		}
		peers = append(peers, p)
	}
	last := peers[len(peers)-1].start
	first := peers[0].start
	cctx, cancel := context.WithTimeout(ctx, convergeTimeout)
	defer cancel()
	seen := make([]time.Time, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i, p := range peers {
		wg.Go(func() {
			if errs[i] = p.initialize(cctx); errs[i] != nil {
				return
			}
			for {
				got, err := p.sessions(cctx)
				if err != nil {
					errs[i] = err
					return
				}
				if countOthers(got, names, p.name) == n-1 {
					seen[i] = time.Now()
					return
				}
				select {
				case <-cctx.Done():
					errs[i] = fmt.Errorf("%s sees %d of the %d others after %s", p.name, countOthers(got, names, p.name), n-1, convergeTimeout)
					return
				case <-time.After(pollEvery):
				}
			}
		})
	}
	wg.Wait()
	done := 0
	for i := range seen {
		if errs[i] == nil {
			done++
		}
	}
	if done < n {
		fail(fmt.Errorf("%d of %d sessions saw all the others within %s; first error: %v", done, n, convergeTimeout, firstErr(errs)))
		return
	}
	lastSeen := slices.MaxFunc(seen, func(a, b time.Time) int { return a.Compare(b) })
	res.Metrics = []Metric{
		{ms(lastSeen.Sub(last)), "ms/after-last-start"},
		{ms(lastSeen.Sub(first)), "ms/after-first-start"},
		{ms(last.Sub(first)), "ms/starting"},
	}
	// The CPU the sessions had used by then (every thread of each; sampled just after, so a
	// little more): with the cores' time since the first start, it says whether the row is
	// CPU-bound.
	var used []float64
	for _, p := range peers {
		if s, err := sampleProc(p.pid()); err == nil {
			used = append(used, float64(s.cpuNS)/1e6)
		}
	}
	if len(used) == n {
		res.Metrics = append(res.Metrics, Metric{sum(used), "cpu-ms/all"}, Metric{median(used), "cpu-ms/median"},
			Metric{float64(runtime.NumCPU()), "cpus"})
	}

	// A claim seen by all: peer 0 renames itself.
	newName := "renamed-00"
	claimAt := time.Now()
	if _, err := peers[0].tool(ctx, "paf_rename", map[string]any{"new_name": newName}); err != nil {
		res.Err = fmt.Errorf("paf_rename: %w", err)
		return
	}
	var claimSeen []time.Duration
	var cmu sync.Mutex
	for i, p := range peers[1:] {
		wg.Go(func() {
			for {
				got, err := p.sessions(cctx)
				if err != nil {
					errs[i] = err
					return
				}
				if slices.Contains(got, newName) {
					cmu.Lock()
					claimSeen = append(claimSeen, time.Since(claimAt))
					cmu.Unlock()
					return
				}
				select {
				case <-cctx.Done():
					errs[i] = fmt.Errorf("%s did not see the claim of %s", p.name, newName)
					return
				case <-time.After(pollEvery / 2):
				}
			}
		})
	}
	wg.Wait()
	if len(claimSeen) == n-1 {
		res.Metrics = append(res.Metrics, Metric{ms(slices.Max(claimSeen)), "ms/claim-seen-by-all"}, Metric{ms(pct(claimSeen, 50)), "ms/claim-seen-p50"})
	}
	if !idle {
		return
	}

	// Idle: settle, then a window. The stock nodes of its second baseline start now and
	// converge while the peers settle, so that all are measured in the same window.
	py, _, err := startHub(cfg)
	if err != nil {
		pyRes.Err = err
	} else {
		defer func() { _ = py.Process.Kill(); _ = py.Wait() }()
	}
	stockIdle, err := startIdleStock(cfg, n)
	defer func() { stopStock(stockIdle) }()
	if err != nil {
		stockRes.Err = err
		stockIdle = nil
	}
	settle := time.Duration(count(cfg, 10, 3)) * time.Second
	window := time.Duration(count(cfg, 60, 10)) * time.Second
	select {
	case <-time.After(settle): // a measurement window, not synchronisation
	case <-ctx.Done():
		return
	}
	pids := make([]int, 0, n+1)
	for _, p := range peers {
		pids = append(pids, p.pid())
	}
	if py != nil {
		pids = append(pids, py.Process.Pid)
	}
	for _, nd := range stockIdle {
		pids = append(pids, nd.cmd.Process.Pid)
	}
	before := make([]procSample, len(pids))
	for i, pid := range pids {
		if before[i], err = sampleProc(pid); err != nil {
			idleRes.Err = err
			return
		}
	}
	select {
	case <-time.After(window):
	case <-ctx.Done():
		return
	}
	var cpu, rss, stockCPU []float64
	var pyCPU, pyRSS float64
	for i, pid := range pids {
		after, err := sampleProc(pid)
		if err != nil {
			idleRes.Err = err
			return
		}
		c := 100 * float64(after.cpuNS-before[i].cpuNS) / float64(after.at.Sub(before[i].at).Nanoseconds())
		r := float64(after.rssKB) / 1024
		switch {
		case i < len(peers):
			cpu, rss = append(cpu, c), append(rss, r)
		case py != nil && i == len(peers):
			pyCPU, pyRSS = c, r
		default:
			stockCPU = append(stockCPU, c)
		}
	}
	if len(stockIdle) > 0 {
		stockRes.Metrics = []Metric{{median(stockCPU), "cpu-median-%"}, {slices.Max(stockCPU), "cpu-max-%"}}
	}
	idleRes.Metrics = []Metric{
		{median(cpu), "cpu-median-%"}, {slices.Max(cpu), "cpu-max-%"}, {sum(cpu), "cpu-total-%"},
		{median(rss), "rss-median-MB"}, {slices.Max(rss), "rss-max-MB"}, {window.Seconds(), "window-s"},
	}
	if py != nil {
		pyRes.Metrics = []Metric{{pyCPU, "cpu-%"}, {pyRSS, "rss-MB"}}
	}
}

func countOthers(got, names []string, self string) int {
	c := 0
	for _, nm := range names {
		if nm != self && slices.Contains(got, nm) {
			c++
		}
	}
	return c
}

func firstErr(errs []error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func sum(v []float64) float64 {
	t := 0.0
	for _, x := range v {
		t += x
	}
	return t
}

// procSample is a process's CPU time so far and its RSS, from /proc.
type procSample struct {
	at    time.Time
	cpuNS int64
	rssKB int64
}

func sampleProc(pid int) (procSample, error) {
	s := procSample{at: time.Now()}
	// /proc/PID/schedstat is the main thread's alone: sum every thread's (a Go process
	// keeps its threads, so none that ran in the window is missing).
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return s, fmt.Errorf("idle: %w", err)
	}
	for _, t := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/schedstat", pid, t.Name()))
		if err != nil {
			continue // the thread exited meanwhile
		}
		f := strings.Fields(string(b))
		if len(f) < 1 {
			return s, fmt.Errorf("idle: /proc/%d/task/%s/schedstat: %q", pid, t.Name(), b)
		}
		ns, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return s, err
		}
		s.cpuNS += ns
	}
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return s, err
	}
	for _, line := range strings.Split(string(st), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			fs := strings.Fields(v)
			if len(fs) > 0 {
				s.rssKB, _ = strconv.ParseInt(fs[0], 10, 64)
			}
		}
	}
	return s, nil
}

// stockNode is one stock memberlist child.
type stockNode struct {
	cmd   *exec.Cmd
	stdin interface{ Close() error }
	write func(string) error
	addr  string
	start time.Time

	mu      sync.Mutex
	allAt   time.Time // first time it had every member
	metaAt  map[string]time.Time
	members int
}

func stockMesh(ctx context.Context, cfg Config, n int, res *Result) {
	var nodes []*stockNode
	defer func() { stopStock(nodes) }()
	var addrs []string
	for i := range n {
		nd, err := startStock(cfg, fmt.Sprintf("stock-%02d", i), addrs, n)
		if err != nil {
			res.Err = err
			return
		}
		nodes = append(nodes, nd)
		addrs = append(addrs, nd.addr)
	}
	last, first := nodes[n-1].start, nodes[0].start
	deadline := time.Now().Add(convergeTimeout)
	allSeen := func() (time.Time, int) {
		var latest time.Time
		c := 0
		for _, nd := range nodes {
			nd.mu.Lock()
			at := nd.allAt
			nd.mu.Unlock()
			if !at.IsZero() {
				c++
				latest = later(latest, at)
			}
		}
		return latest, c
	}
	for {
		at, c := allSeen()
		if c == n {
			res.Metrics = []Metric{
				{ms(at.Sub(last)), "ms/after-last-start"}, {ms(at.Sub(first)), "ms/after-first-start"}, {ms(last.Sub(first)), "ms/starting"},
			}
			break
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			res.Err = fmt.Errorf("stock memberlist: %d of %d nodes saw all within %s (not capped: this is a failure to converge)", c, n, convergeTimeout)
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	// A meta update (the stock form of a claim) seen by all.
	claimAt := time.Now()
	if err := nodes[0].write("meta renamed\n"); err != nil {
		res.Err = err
		return
	}
	for {
		var worst time.Duration
		c := 0
		var seen []time.Duration
		for _, nd := range nodes[1:] {
			nd.mu.Lock()
			at, ok := nd.metaAt["stock-00"]
			nd.mu.Unlock()
			if ok && at.After(claimAt) {
				c++
				seen = append(seen, at.Sub(claimAt))
				worst = max(worst, at.Sub(claimAt))
			}
		}
		if c == n-1 {
			res.Metrics = append(res.Metrics, Metric{ms(worst), "ms/claim-seen-by-all"}, Metric{ms(pct(seen, 50)), "ms/claim-seen-p50"})
			return
		}
		if time.Since(claimAt) > convergeTimeout || ctx.Err() != nil {
			return // the convergence figure stands; the claim row says missing
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// stopStock ends the stock nodes: end of input makes each leave and exit; one that takes
// longer than stopTimeout is killed.
func stopStock(nodes []*stockNode) {
	for _, nd := range nodes {
		nd.stdin.Close()
	}
	for _, nd := range nodes {
		done := make(chan struct{})
		go func() { _ = nd.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(stopTimeout):
			_ = nd.cmd.Process.Kill()
			<-done
		}
	}
}

func startStock(cfg Config, name string, join []string, n int, env ...string) (*stockNode, error) {
	cmd := exec.Command(cmp.Or(cfg.Stock, cfg.Exe))
	cmd.Env = append(os.Environ(), StockChildEnv+"="+name, stockJoinEnv+"="+strings.Join(join, ","))
	cmd.Env = append(cmd.Env, env...)
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	nd := &stockNode{cmd: cmd, stdin: in, metaAt: map[string]time.Time{}, start: time.Now()}
	nd.write = func(s string) error { _, err := in.Write([]byte(s)); return err }
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start a stock memberlist node: %w", err)
	}
	sc := bufio.NewScanner(out)
	// Its count of itself alone ("members 1", from memberlist's join event for the local
	// node) may come before "ready".
	for {
		if !sc.Scan() {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			return nil, fmt.Errorf("stock memberlist node %s exited before saying it was ready", name)
		}
		if addr, ok := strings.CutPrefix(sc.Text(), "ready "); ok {
			nd.addr = addr
			break
		}
		if !strings.HasPrefix(sc.Text(), "members ") {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			return nil, fmt.Errorf("stock memberlist node %s said %q", name, sc.Text())
		}
	}
	go func() {
		for sc.Scan() {
			now := time.Now()
			line := sc.Text()
			nd.mu.Lock()
			if v, ok := strings.CutPrefix(line, "members "); ok {
				nd.members, _ = strconv.Atoi(v)
				if nd.members == n && nd.allAt.IsZero() {
					nd.allAt = now
				}
			} else if v, ok := strings.CutPrefix(line, "meta "); ok {
				node, meta, _ := strings.Cut(v, " ")
				if meta == "renamed" {
					if _, seen := nd.metaAt[node]; !seen {
						nd.metaAt[node] = now
					}
				}
			}
			nd.mu.Unlock()
		}
	}()
	return nd, nil
}
