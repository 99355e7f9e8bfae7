package procs

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"sync"
	"time"
)

// protocolVersion is the MCP version the scenarios ask for (the one the product's own tests
// use).
const protocolVersion = "2025-06-18"

// stopTimeout bounds how long a process may take to exit once asked to.
const stopTimeout = 10 * time.Second

// mcpPeer is one `paf-peer mcp` process and a minimal MCP client on its stdio: requests are
// written as lines, responses matched by id, notifications dropped.
type mcpPeer struct {
	name  string
	cmd   *exec.Cmd
	in    io.WriteCloser
	wmu   sync.Mutex // serialises writes of requests
	start time.Time  // when the process was started

	mu      sync.Mutex
	next    int
	waiting map[int]chan rpcResponse
	readErr error

	// direct: no goroutine reads stdout; a caller waiting for a response reads it itself
	// (readUntil), as the hub baseline's client does, and as a client on one event loop
	// does: no hand-off from a reader goroutine to the caller's.
	direct bool
	out    *bufio.Reader // direct only: stdout, read under readMu
	readMu sync.Mutex

	stderr *tailBuffer
	done   chan struct{} // closed once the process has exited and been reaped
}

type rpcResponse struct {
	Result json.RawMessage `json:"result"`
	Error  *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// startMCP starts `bin mcp args...` with env; it does not initialize it. A goroutine reads
// its stdout and hands each response to the caller waiting for it.
func startMCP(bin string, env []string, name string, args ...string) (*mcpPeer, error) {
	return startMCPMode(false, bin, env, name, args...)
}

// startMCPMode is startMCP; direct: the callers read stdout themselves (mcpPeer.direct).
func startMCPMode(direct bool, bin string, env []string, name string, args ...string) (*mcpPeer, error) {
	p := &mcpPeer{name: name, waiting: map[int]chan rpcResponse{}, stderr: newTailBuffer(16 << 10), done: make(chan struct{}), direct: direct}
	p.cmd = exec.Command(bin, append([]string{"mcp"}, args...)...)
	p.cmd.Env = env
	p.cmd.Stderr = p.stderr
	in, err := p.cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := p.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	p.in = in
	p.start = time.Now()
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start paf-peer mcp (%s): %w", name, err)
	}
	if direct {
		p.out = bufio.NewReaderSize(out, 1<<20)
		return p, nil
	}
	go p.read(out)
	return p, nil
}

// read dispatches the responses on the process's stdout until it closes.
func (p *mcpPeer) read(out io.Reader) { p.drain(bufio.NewReaderSize(out, 1<<20)) }

// drain reads br to its end, handing responses to whoever waits, then reaps the process.
func (p *mcpPeer) drain(br *bufio.Reader) {
	var err error
	for err == nil {
		err = p.readLine(br)
	}
	p.finish(err)
}

// readLine reads one line of stdout and hands a response to whoever waits for it.
func (p *mcpPeer) readLine(br *bufio.Reader) error {
	line, err := br.ReadBytes('\n')
	if len(line) > 0 {
		var msg struct {
			ID *int `json:"id"`
			rpcResponse
		}
		if jerr := json.Unmarshal(line, &msg); jerr != nil {
			return fmt.Errorf("not JSON on stdout (%v): %.200q", jerr, line)
		}
		if msg.ID != nil {
			p.mu.Lock()
			ch := p.waiting[*msg.ID]
			delete(p.waiting, *msg.ID)
			p.mu.Unlock()
			if ch != nil {
				ch <- msg.rpcResponse
			}
		}
	}
	return err
}

// finish reaps the process once its stdout ended with err, and fails every waiting call.
func (p *mcpPeer) finish(err error) {
	_ = p.cmd.Wait()
	p.mu.Lock()
	if err == io.EOF {
		err = errors.New("the process closed its stdout")
	}
	p.readErr = err
	for id, ch := range p.waiting {
		close(ch)
		delete(p.waiting, id)
	}
	p.mu.Unlock()
	close(p.done)
}

// readUntil (direct) reads stdout until ch holds its response, or stdout ended. Another
// caller's response read on the way is handed to it, as read does.
func (p *mcpPeer) readUntil(ch chan rpcResponse) {
	p.readMu.Lock()
	defer p.readMu.Unlock()
	for len(ch) == 0 {
		select {
		case <-p.done:
			return
		default:
		}
		if err := p.readLine(p.out); err != nil {
			p.finish(err)
			return
		}
	}
}

// send writes one request (id > 0) or notification (id 0) and returns the channel its
// response arrives on (nil for a notification).
func (p *mcpPeer) send(method string, params any) (chan rpcResponse, error) {
	req := map[string]any{"jsonrpc": "2.0", "method": method}
	if params != nil {
		req["params"] = params
	}
	var ch chan rpcResponse
	if !strings.HasPrefix(method, "notifications/") {
		ch = make(chan rpcResponse, 1)
		p.mu.Lock()
		if p.readErr != nil {
			err := p.readErr
			p.mu.Unlock()
			return nil, err
		}
		p.next++
		req["id"] = p.next
		p.waiting[p.next] = ch
		p.mu.Unlock()
	}
	b, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	p.wmu.Lock()
	_, err = p.in.Write(append(b, '\n'))
	p.wmu.Unlock()
	return ch, err
}

// wait waits for the response on ch and returns its result.
func (p *mcpPeer) wait(ctx context.Context, method string, ch chan rpcResponse) (json.RawMessage, error) {
	if p.direct {
		// A read cannot be interrupted: once ctx ends, the process is killed (by
		// its PID), which ends the read with its stdout; the call then fails.
		stop := context.AfterFunc(ctx, func() { _ = p.cmd.Process.Kill() })
		p.readUntil(ch)
		stop()
	}
	select {
	case r, ok := <-ch:
		if !ok {
			return nil, fmt.Errorf("%s: %s: %v; stderr: %s", p.name, method, p.readErr, p.stderr.String())
		}
		if r.Error != nil {
			return nil, fmt.Errorf("%s: %s: error %d: %s", p.name, method, r.Error.Code, r.Error.Message)
		}
		return r.Result, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("%s: %s: %w", p.name, method, ctx.Err())
	}
}

// call sends a request and waits for its result.
func (p *mcpPeer) call(ctx context.Context, method string, params any) (json.RawMessage, error) {
	ch, err := p.send(method, params)
	if err != nil {
		return nil, fmt.Errorf("%s: %s: %w", p.name, method, err)
	}
	return p.wait(ctx, method, ch)
}

// initialize does the MCP handshake.
func (p *mcpPeer) initialize(ctx context.Context) error {
	_, err := p.call(ctx, "initialize", map[string]any{
		"protocolVersion": protocolVersion,
		"capabilities":    map[string]any{},
		"clientInfo":      map[string]any{"name": "pafbench", "version": "1"},
	})
	if err != nil {
		return err
	}
	_, err = p.send("notifications/initialized", nil)
	return err
}

// toolCall starts a tools/call; toolResult waits for it.
func (p *mcpPeer) toolCall(name string, args map[string]any) (chan rpcResponse, error) {
	if args == nil {
		args = map[string]any{}
	}
	return p.send("tools/call", map[string]any{"name": name, "arguments": args})
}

// toolResult waits for a tools/call and returns its structured content; an error result is
// an error.
func (p *mcpPeer) toolResult(ctx context.Context, name string, ch chan rpcResponse) (map[string]any, error) {
	raw, err := p.wait(ctx, "tools/call "+name, ch)
	if err != nil {
		return nil, err
	}
	var res struct {
		IsError    bool           `json:"isError"`
		Structured map[string]any `json:"structuredContent"`
		Content    []struct {
			Text string `json:"text"`
		} `json:"content"`
	}
	if err := json.Unmarshal(raw, &res); err != nil {
		return nil, fmt.Errorf("%s: %s: %w", p.name, name, err)
	}
	if res.IsError {
		text := ""
		if len(res.Content) > 0 {
			text = res.Content[0].Text
		}
		return nil, fmt.Errorf("%s: %s: error result: %s", p.name, name, text)
	}
	return res.Structured, nil
}

// tool calls a tool and waits for its result.
func (p *mcpPeer) tool(ctx context.Context, name string, args map[string]any) (map[string]any, error) {
	ch, err := p.toolCall(name, args)
	if err != nil {
		return nil, fmt.Errorf("%s: %s: %w", p.name, name, err)
	}
	return p.toolResult(ctx, name, ch)
}

// sessions returns the names paf_list_sessions lists.
//
// It decodes the names alone (typed, not into maps): the scenarios that poll it (AllSeeAll,
// 50 sessions every 50 ms) compete for the same CPUs as the peers they measure.
func (p *mcpPeer) sessions(ctx context.Context) ([]string, error) {
	const name = "paf_list_sessions"
	ch, err := p.toolCall(name, nil)
	if err != nil {
		return nil, fmt.Errorf("%s: %s: %w", p.name, name, err)
	}
	raw, err := p.wait(ctx, "tools/call "+name, ch)
	if err != nil {
		return nil, err
	}
	var res struct {
		IsError    bool `json:"isError"`
		Structured struct {
			Sessions []struct {
				Name string `json:"name"`
			} `json:"sessions"`
		} `json:"structuredContent"`
		Content json.RawMessage `json:"content"` // the same list as text: read on an error only
	}
	if err := json.Unmarshal(raw, &res); err != nil {
		return nil, fmt.Errorf("%s: %s: %w", p.name, name, err)
	}
	if res.IsError {
		var content []struct {
			Text string `json:"text"`
		}
		_ = json.Unmarshal(res.Content, &content)
		text := ""
		if len(content) > 0 {
			text = content[0].Text
		}
		return nil, fmt.Errorf("%s: %s: error result: %s", p.name, name, text)
	}
	names := make([]string, 0, len(res.Structured.Sessions))
	for _, s := range res.Structured.Sessions {
		if s.Name != "" {
			names = append(names, s.Name)
		}
	}
	return names, nil
}

// pid is the process's id.
func (p *mcpPeer) pid() int { return p.cmd.Process.Pid }

// close closes stdin (the peer leaves the mesh and exits) and waits; one that does not exit
// within stopTimeout is killed, by its PID.
func (p *mcpPeer) close() {
	p.in.Close()
	if p.direct {
		go func() { // read what is left, up to the end, and reap
			p.readMu.Lock()
			defer p.readMu.Unlock()
			select {
			case <-p.done: // a caller's read met the end already
			default:
				p.drain(p.out)
			}
		}()
	}
	select {
	case <-p.done:
	case <-time.After(stopTimeout):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// tailBuffer keeps the last max bytes written to it (a process's stderr).
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func newTailBuffer(max int) *tailBuffer { return &tailBuffer{max: max} }

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = append([]byte(nil), t.b[len(t.b)-t.max:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}
