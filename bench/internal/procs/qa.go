package procs

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"
)

// qaBlocks: the question-and-answer rounds, the hub's rounds and the fsync samples are taken
// in this many interleaved blocks, so that all three come from the same minutes.
const qaBlocks = 3

// body1K is a 1 KiB message body, tagged so that each round's answer is recognised.
func body1K(tag string) string {
	return tag + " " + strings.Repeat("x", 1024-len(tag)-1)
}

// runQA measures a question and its answer between two agent sessions, as an agent meets
// it: A calls paf_send to B, whose paf_listen (called before, blocked) returns the question;
// B calls paf_send with the answer, A's paf_listen (called as soon as its paf_send returned)
// returns it. Timed from the start of A's paf_send to the end of A's paf_listen; 1 KiB each
// way. B calls paf_listen again as soon as its paf_send returns, as an agent that serves
// questions does: no head start is given beyond what that loop gives. Beside it, in the same
// minutes (interleaved blocks): the same exchange through a non-durable hub in Python, and
// the disk's 1 KiB write+fdatasync.
func runQA(ctx context.Context, cfg Config) []Result {
	rounds := count(cfg, 300, 60)
	syncs := count(cfg, 1500, 300)
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	w, err := newWorld()
	if err != nil {
		return failAll(err, QA, Hub, Fsync)
	}
	defer w.close()

	var qa, sendCalls, hub, disk, paced, paces []time.Duration
	// CPU of each session's process (every thread) over the timed rounds alone.
	var cpuA, cpuB int64
	cpuOK := true
	qaRes, hubRes, diskRes := Result{Name: QA}, Result{Name: Hub}, Result{Name: Fsync}

	pair, err := newPafPair(ctx, cfg, w, true)
	if err != nil {
		qaRes.Err = err
	}
	hp, err := newHubPair(ctx, cfg)
	if err != nil {
		hubRes.Err = err
	}
	dk, err := newDiskProbe(w.root)
	if err != nil {
		diskRes.Err = err
	}
	// Warm-up, untimed: connections, buffers, the inbox logs.
	for range 10 {
		if qaRes.Err == nil {
			if _, _, err := pair.round(ctx); err != nil {
				qaRes.Err = err
			}
		}
		if hubRes.Err == nil {
			if _, err := hp.round(); err != nil {
				hubRes.Err = err
			}
		}
	}
	for b := range qaBlocks {
		n := rounds / qaBlocks
		if b == qaBlocks-1 {
			n = rounds - n*(qaBlocks-1)
		}
		var before [2]procSample
		if qaRes.Err == nil {
			before, cpuOK = pair.cpu(cpuOK)
		}
		for range n {
			if qaRes.Err != nil {
				break
			}
			d, s, err := pair.round(ctx)
			if err != nil {
				qaRes.Err = err
				break
			}
			qa, sendCalls = append(qa, d), append(sendCalls, s)
		}
		if qaRes.Err == nil {
			var after [2]procSample
			after, cpuOK = pair.cpu(cpuOK)
			cpuA += after[0].cpuNS - before[0].cpuNS
			cpuB += after[1].cpuNS - before[1].cpuNS
		}
		for range n {
			if hubRes.Err != nil {
				break
			}
			d, err := hp.round()
			if err != nil {
				hubRes.Err = err
				break
			}
			hub = append(hub, d)
		}
		for range syncs / qaBlocks {
			if diskRes.Err != nil {
				break
			}
			d, err := dk.sample()
			if err != nil {
				diskRes.Err = err
				break
			}
			disk = append(disk, d)
		}
		// Paced like the round trip: each session makes one fdatasync per round, so one
		// sample per round's p50 of this block (the sample itself included). On this VM a
		// sync after an idle spell costs more than one right after another.
		pace := time.Millisecond
		if len(qa) > 0 {
			pace = pct(qa[len(qa)-min(n, len(qa)):], 50)
		}
		paces = append(paces, pace)
		for range n {
			if diskRes.Err != nil {
				break
			}
			d, err := dk.pacedSample(ctx, pace)
			if err != nil {
				diskRes.Err = err
				break
			}
			paced = append(paced, d)
		}
	}
	if pair != nil {
		if err := pair.close(); err != nil && qaRes.Err == nil {
			qaRes.Err = err
		}
	}
	if hp != nil {
		hp.close()
	}
	if dk != nil {
		dk.close()
	}
	if qaRes.Err == nil {
		qaRes.Metrics = []Metric{
			{ms(pct(qa, 50)), "p50-rtt-ms"}, {ms(pct(qa, 99)), "p99-rtt-ms"},
			{ms(pct(sendCalls, 50)), "p50-send-ms"}, {float64(len(qa)), "rounds"},
		}
		if cpuOK && len(qa) > 0 {
			qaRes.Metrics = append(qaRes.Metrics,
				Metric{float64(cpuA) / 1e3 / float64(len(qa)), "cpu-us-per-round-a"},
				Metric{float64(cpuB) / 1e3 / float64(len(qa)), "cpu-us-per-round-b"})
		}
	}
	if hubRes.Err == nil {
		hubRes.Metrics = []Metric{{ms(pct(hub, 50)), "p50-rtt-ms"}, {ms(pct(hub, 99)), "p99-rtt-ms"}, {float64(len(hub)), "rounds"}}
	}
	if diskRes.Err == nil {
		diskRes.Metrics = []Metric{
			{ms(pct(disk, 50)), "p50-ms"}, {ms(pct(disk, 99)), "p99-ms"}, {float64(len(disk)), "samples"},
			{ms(pct(paced, 50)), "paced-p50-ms"}, {ms(pct(paced, 99)), "paced-p99-ms"}, {ms(pct(paces, 50)), "pace-ms"},
		}
	}
	return []Result{qaRes, hubRes, diskRes}
}

// pafPair is two `paf-peer mcp` sessions, a and b, with b answering every question in a
// goroutine of its own.
type pafPair struct {
	a, b    *mcpPeer
	answers chan error // b's loop: nil per answer sent, or the error that stopped it
	seq     int
	stopped atomic.Bool
}

// newPafPair starts the two sessions; direct: the agents read their sessions' stdout
// themselves (mcpPeer.direct), as the hub's clients do.
func newPafPair(ctx context.Context, cfg Config, w *world, direct bool) (*pafPair, error) {
	peers, err := startPeers(ctx, cfg, w, direct, "qa-a", "qa-b")
	if err != nil {
		return nil, err
	}
	p := &pafPair{a: peers[0], b: peers[1], answers: make(chan error, 1)}
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for _, q := range peers {
		if err := waitSee(sctx, q, []string{"qa-a", "qa-b"}); err != nil {
			closeAll(peers)
			return nil, err
		}
	}
	go p.serve(ctx)
	return p, nil
}

// serve is b: listen, answer, listen again.
func (p *pafPair) serve(ctx context.Context) {
	for {
		res, err := p.b.tool(ctx, "paf_listen", map[string]any{"timeout_seconds": 600})
		if err == nil {
			var tag string
			tag, err = firstTag(res)
			if err == nil {
				_, err = p.b.tool(ctx, "paf_send", map[string]any{"to": "qa-a", "message": body1K("answer-to-" + tag)})
			}
		}
		if p.stopped.Load() {
			return
		}
		select {
		case p.answers <- err:
		case <-ctx.Done():
			return
		}
		if err != nil {
			return
		}
	}
}

// cpu samples both processes' CPU time; ok stays false once a sample failed (no /proc).
func (p *pafPair) cpu(ok bool) (s [2]procSample, stillOK bool) {
	if !ok {
		return s, false
	}
	var errA, errB error
	s[0], errA = sampleProc(p.a.pid())
	s[1], errB = sampleProc(p.b.pid())
	return s, errA == nil && errB == nil
}

// firstTag returns the tag (first word) of the first message of a listen result.
func firstTag(res map[string]any) (string, error) {
	msgs, _ := res["messages"].([]any)
	if len(msgs) == 0 {
		b, _ := json.Marshal(res)
		return "", fmt.Errorf("paf_listen returned no message: %.300s", b)
	}
	m, _ := msgs[0].(map[string]any)
	body, _ := m["body"].(string)
	tag, _, _ := strings.Cut(body, " ")
	return tag, nil
}

// round is one question and its answer; it returns the whole time and A's paf_send's.
func (p *pafPair) round(ctx context.Context) (total, send time.Duration, err error) {
	p.seq++
	tag := fmt.Sprintf("q%d", p.seq)
	start := time.Now()
	if _, err := p.a.tool(ctx, "paf_send", map[string]any{"to": "qa-b", "message": body1K(tag)}); err != nil {
		return 0, 0, err
	}
	send = time.Since(start)
	res, err := p.a.tool(ctx, "paf_listen", map[string]any{"timeout_seconds": 60})
	if err != nil {
		return 0, 0, err
	}
	total = time.Since(start)
	got, err := firstTag(res)
	if err != nil {
		return 0, 0, err
	}
	if got != "answer-to-"+tag {
		return 0, 0, fmt.Errorf("session A got %q, want the answer to %s", got, tag)
	}
	select {
	case err := <-p.answers:
		if err != nil {
			return 0, 0, fmt.Errorf("session B: %w", err)
		}
	case <-ctx.Done():
		return 0, 0, ctx.Err()
	}
	return total, send, nil
}

// close stops both sessions; b's blocked listen ends with its process.
func (p *pafPair) close() error {
	p.stopped.Store(true)
	closeAll([]*mcpPeer{p.a, p.b})
	return nil
}

// hubPair is the Python hub and two sessions connected to it, as in the seed: each agent's
// MCP server keeps a TCP connection to the hub. Here the sessions are this process (the
// hub's clients do no more than forward a tool call as one line), so the baseline is the
// hub's path alone, with no MCP layer: kind to the baseline.
type hubPair struct {
	cmd     *exec.Cmd
	a, b    *hubConn
	answers chan error
	seq     int
}

type hubConn struct {
	c  net.Conn
	br *bufio.Reader
}

func (h *hubConn) do(req map[string]any) (map[string]any, error) {
	b, _ := json.Marshal(req)
	if _, err := h.c.Write(append(b, '\n')); err != nil {
		return nil, err
	}
	line, err := h.br.ReadBytes('\n')
	if err != nil {
		return nil, err
	}
	var resp map[string]any
	if err := json.Unmarshal(line, &resp); err != nil {
		return nil, err
	}
	if ok, _ := resp["ok"].(bool); !ok {
		return nil, fmt.Errorf("hub: %v", resp["error"])
	}
	return resp, nil
}

// startHub starts the Python hub and returns it and its address.
func startHub(cfg Config) (*exec.Cmd, string, error) {
	py := lookPath(cfg.Python, "python3")
	if py == "" {
		return nil, "", errNoPython
	}
	dir, err := os.MkdirTemp("", "pafhub")
	if err != nil {
		return nil, "", err
	}
	script := filepath.Join(dir, "hub.py")
	if err := os.WriteFile(script, hubPy, 0o600); err != nil {
		os.RemoveAll(dir)
		return nil, "", err
	}
	cmd := exec.Command(py, script)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err == nil {
		err = cmd.Start()
	}
	if err != nil {
		os.RemoveAll(dir)
		return nil, "", fmt.Errorf("start the Python hub: %w", err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	os.RemoveAll(dir) // python has read it
	port, ok := strings.CutPrefix(strings.TrimSpace(line), "listening ")
	if err != nil || !ok {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return nil, "", fmt.Errorf("the Python hub said %q: %v", line, err)
	}
	return cmd, net.JoinHostPort("127.0.0.1", port), nil
}

func newHubPair(ctx context.Context, cfg Config) (*hubPair, error) {
	cmd, addr, err := startHub(cfg)
	if err != nil {
		return nil, err
	}
	h := &hubPair{cmd: cmd, answers: make(chan error, 1)}
	dial := func(name string) (*hubConn, error) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return nil, err
		}
		hc := &hubConn{c: c, br: bufio.NewReader(c)}
		_, err = hc.do(map[string]any{"op": "register", "name": name})
		return hc, err
	}
	if h.a, err = dial("qa-a"); err == nil {
		h.b, err = dial("qa-b")
	}
	if err != nil {
		h.close()
		return nil, err
	}
	go func() {
		for {
			resp, err := h.b.do(map[string]any{"op": "listen"})
			if err == nil {
				msgs, _ := resp["messages"].([]any)
				m, _ := msgs[0].(map[string]any)
				body, _ := m["body"].(string)
				tag, _, _ := strings.Cut(body, " ")
				_, err = h.b.do(map[string]any{"op": "send", "to": "qa-a", "body": body1K("answer-to-" + tag)})
			}
			select {
			case h.answers <- err:
			case <-ctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()
	return h, nil
}

func (h *hubPair) round() (time.Duration, error) {
	h.seq++
	tag := fmt.Sprintf("q%d", h.seq)
	start := time.Now()
	if _, err := h.a.do(map[string]any{"op": "send", "to": "qa-b", "body": body1K(tag)}); err != nil {
		return 0, err
	}
	resp, err := h.a.do(map[string]any{"op": "listen"})
	if err != nil {
		return 0, err
	}
	d := time.Since(start)
	msgs, _ := resp["messages"].([]any)
	if len(msgs) != 1 {
		return 0, fmt.Errorf("hub: A got %d messages, want 1", len(msgs))
	}
	if err := <-h.answers; err != nil {
		return 0, err
	}
	return d, nil
}

func (h *hubPair) close() {
	for _, c := range []*hubConn{h.a, h.b} {
		if c != nil {
			c.c.Close()
		}
	}
	if h.cmd != nil {
		_ = h.cmd.Process.Kill()
		_ = h.cmd.Wait()
	}
}

// diskProbe times 1 KiB writes, each followed by fdatasync, into a file whose space was
// written and synced beforehand (as the inbox log keeps zeros ahead of its records): the
// least one durable write of a message costs on this disk.
type diskProbe struct {
	f    *os.File
	off  int64
	buf  []byte
	last time.Time // when the last sample began
}

const diskProbeSize = 8 << 20

func newDiskProbe(dir string) (*diskProbe, error) {
	f, err := os.Create(filepath.Join(dir, "fsync-probe.dat"))
	if err != nil {
		return nil, err
	}
	if _, err = f.Write(make([]byte, diskProbeSize)); err == nil {
		err = f.Sync()
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return &diskProbe{f: f, buf: []byte(body1K("fsync"))}, nil
}

func (d *diskProbe) sample() (time.Duration, error) {
	if d.off+int64(len(d.buf)) > diskProbeSize {
		d.off = 0
	}
	start := time.Now()
	d.last = start
	if _, err := d.f.WriteAt(d.buf, d.off); err != nil {
		return 0, err
	}
	if err := fdatasync(d.f); err != nil {
		return 0, err
	}
	d.off += int64(len(d.buf))
	return time.Since(start), nil
}

// pacedSample is a sample taken pace after the previous one began: the disk and the
// machine have been idle for most of pace, as between two round trips' syncs.
func (d *diskProbe) pacedSample(ctx context.Context, pace time.Duration) (time.Duration, error) {
	if wait := pace - time.Since(d.last); wait > 0 {
		select {
		case <-time.After(wait): // think time, as between two rounds; not a synchronisation
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
	return d.sample()
}

func (d *diskProbe) close() { d.f.Close() }

var errNoStrace = errors.New("not measured: strace is not installed (apt-get install strace)")
