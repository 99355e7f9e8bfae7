package mcpserver

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"

	"github.com/paf-mesh/paf-mesh/internal/testutil"
	"github.com/paf-mesh/paf-mesh/internal/testutil/mcptest"
)

// stdioPeer is a Server served by ServeStdio over pipes, driven by
// mcp-go's client on the other ends.
type stdioPeer struct {
	s     *Server
	c     *client.Client
	notes mcptest.Notes
	done  chan error // ServeStdio's result
}

func startStdio(t *testing.T, p *fakePeer, cfg Config) *stdioPeer {
	t.Helper()
	cfg.Backend = p
	sp := &stdioPeer{s: New(cfg), done: make(chan error, 1)}
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	go func() {
		sp.done <- sp.s.ServeStdio(context.Background(), inR, outW)
		outW.Close()
	}()
	sp.c = client.NewClient(transport.NewIO(outR, inW, nil), client.WithProtocolVersion(mcptest.ProtocolVersion))
	sp.c.OnNotification(sp.notes.Add)
	t.Cleanup(func() {
		sp.c.Close() // closes inW: ServeStdio's input ends
		select {
		case <-sp.done:
		case <-time.After(10 * time.Second):
			t.Error("ServeStdio did not return after its input ended")
		}
	})
	if err := sp.c.Start(context.Background()); err != nil {
		t.Fatalf("start client: %v", err)
	}
	if _, err := mcptest.Initialize(context.Background(), sp.c, "test"); err != nil {
		t.Fatalf("initialize: %v", err)
	}
	return sp
}

func (sp *stdioPeer) listening() int {
	sp.s.mu.Lock()
	defer sp.s.mu.Unlock()
	return sp.s.listening
}

// TestStdioLoopClient drives ServeStdio with mcp-go's client: tools/list, a
// blocking call cancelled by notifications/cancelled, a message pushed to
// the client while another call blocks, concurrent calls, and the end of
// the input ending the session.
func TestStdioLoopClient(t *testing.T) {
	fm := newFakeMesh()
	cfg := testConfig(t)
	me := startStdio(t, fm.peer(), cfg)
	other := startSession(t, fm.peer(), cfg)
	ctx := context.Background()

	tools, err := me.c.ListTools(ctx, mcp.ListToolsRequest{})
	if err != nil || len(tools.Tools) != len(toolNames) {
		t.Fatalf("tools/list: %v %v", tools, err)
	}
	if _, err := mcptest.Call(ctx, me.c, "paf_register", map[string]any{"name": "me"}, nil); err != nil {
		t.Fatal(err)
	}

	// A blocked paf_listen, cancelled by the client (mcp-go's client sends
	// notifications/cancelled when the call's context ends).
	lctx, cancel := context.WithCancel(ctx)
	listen := mcptest.Async(lctx, me.c, "paf_listen", map[string]any{"timeout_seconds": 600}, nil)
	testutil.WaitForEvery(t, waitPoll, 5*time.Second, "paf_listen to block", func() bool { return me.listening() == 1 })
	// Other calls are answered while it blocks.
	if _, err := mcptest.Call(ctx, me.c, "paf_check", nil, nil); err != nil {
		t.Fatalf("a call while paf_listen blocks: %v", err)
	}
	cancel()
	if r := <-listen; r.Err == nil {
		t.Fatalf("a cancelled paf_listen returned a result: %v", r.Res)
	}
	testutil.WaitForEvery(t, waitPoll, 5*time.Second, "the server to stop the cancelled paf_listen", func() bool { return me.listening() == 0 })

	// A message that arrives is pushed to the client as a notification (a
	// message paf_listen reads first is not pushed, so none listens now),
	// and the next paf_listen returns it.
	other.ok("paf_send", map[string]any{"to": "me", "message": "hello over stdio", "my_name": "other"})
	testutil.WaitForEvery(t, waitPoll, 5*time.Second, "the message pushed as "+channelMethod, func() bool {
		for _, n := range me.notes.Of(channelMethod) {
			if c, _ := n.Params.AdditionalFields["content"].(string); strings.Contains(c, "hello over stdio") {
				return true
			}
		}
		return false
	})
	res, err := mcptest.Call(ctx, me.c, "paf_listen", map[string]any{"timeout_seconds": 30}, nil)
	if err != nil || !strings.Contains(mcptest.Text(res), "hello over stdio") {
		t.Fatalf("paf_listen: %v %v", res, err)
	}

	// Concurrent calls each get their own answer.
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for i := range 20 {
		wg.Go(func() {
			res, err := mcptest.Call(ctx, me.c, "paf_check", nil, nil)
			switch {
			case err != nil:
				errs <- fmt.Errorf("call %d: %w", i, err)
			case res.IsError:
				errs <- fmt.Errorf("call %d: %s", i, mcptest.Text(res))
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	// The end of the input ends ServeStdio, which ends the session.
	me.c.Close()
	select {
	case err := <-me.done:
		if err != nil {
			t.Fatalf("ServeStdio: %v", err)
		}
		me.done <- nil // for the cleanup
	case <-time.After(10 * time.Second):
		t.Fatal("ServeStdio did not return at the end of its input")
	}
}

// rawStdio serves a Server over pipes written and read line by line by the
// test, for what a well-behaved client never sends.
type rawStdio struct {
	t     *testing.T
	s     *Server
	fm    *fakeMesh
	in    *io.PipeWriter
	lines chan string
	done  chan error
}

func startRaw(t *testing.T, cfg Config) *rawStdio {
	t.Helper()
	fm := newFakeMesh()
	cfg.Backend = fm.peer()
	s := New(cfg)
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	r := &rawStdio{t: t, s: s, fm: fm, in: inW, lines: make(chan string, 100), done: make(chan error, 1)}
	go func() {
		r.done <- s.ServeStdio(context.Background(), inR, outW)
		outW.Close()
	}()
	go func() {
		defer close(r.lines)
		sc := bufio.NewScanner(outR)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			r.lines <- sc.Text()
		}
		_, _ = io.Copy(io.Discard, outR)
	}()
	t.Cleanup(func() {
		inW.Close()
		select {
		case <-r.done:
		case <-time.After(10 * time.Second):
			t.Error("ServeStdio did not return after its input ended")
		}
	})
	return r
}

func (r *rawStdio) send(line string) {
	r.t.Helper()
	if _, err := io.WriteString(r.in, line); err != nil {
		r.t.Fatal(err)
	}
}

// next returns the next message written, which must be one JSON object on
// one line.
func (r *rawStdio) next() map[string]any {
	r.t.Helper()
	select {
	case l, ok := <-r.lines:
		if !ok {
			r.t.Fatal("the output ended")
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil || m["jsonrpc"] != "2.0" {
			r.t.Fatalf("a line of output is not a JSON-RPC message: %q", l)
		}
		return m
	case <-time.After(5 * time.Second):
		r.t.Fatal("no answer")
	}
	return nil
}

func errorOf(t *testing.T, m map[string]any) (code float64, msg string) {
	t.Helper()
	e, ok := m["error"].(map[string]any)
	if !ok {
		t.Fatalf("not an error: %v", m)
	}
	code, _ = e["code"].(float64)
	msg, _ = e["message"].(string)
	return code, msg
}

// TestStdioLoopBadInput: malformed lines are answered as mcp-go answered them
// and the session goes on; blank lines and stray responses are ignored.
func TestStdioLoopBadInput(t *testing.T) {
	r := startRaw(t, testConfig(t))
	r.send(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}` + "\n")
	if m := r.next(); m["id"] != float64(1) || m["result"] == nil {
		t.Fatalf("initialize: %v", m)
	}
	r.send(`{"jsonrpc":"2.0","method":"notifications/initialized"}` + "\n")

	cases := map[string]struct {
		line string
		id   any
		code float64
	}{
		"not JSON":            {`{"jsonrpc":"2.0","id":`, nil, mcp.PARSE_ERROR},
		"JSON, not a object":  {`[1,2]`, nil, mcp.PARSE_ERROR},
		"method not a string": {`{"jsonrpc":"2.0","id":2,"method":5}`, nil, mcp.PARSE_ERROR},
		"wrong version":       {`{"jsonrpc":"1.0","id":3,"method":"ping"}`, float64(3), mcp.INVALID_REQUEST},
		"unknown method":      {`{"jsonrpc":"2.0","id":4,"method":"no/such"}`, float64(4), mcp.METHOD_NOT_FOUND},
		"unknown tool":        {`{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"paf_nope","arguments":{}}}`, float64(5), mcp.INVALID_REQUEST},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			r.t = t
			r.send(c.line + "\n")
			m := r.next()
			if m["id"] != c.id {
				t.Errorf("id %v, want %v: %v", m["id"], c.id, m)
			}
			if code, _ := errorOf(t, m); code != c.code {
				t.Errorf("code %v, want %v: %v", code, c.code, m)
			}
		})
	}
	r.t = t
	// Ignored: blank lines, a response to a request the server never sent,
	// an unknown notification. The ping after them is the next answer.
	r.send("\n  \r\n")
	r.send(`{"jsonrpc":"2.0","id":99,"result":{}}` + "\n")
	r.send(`{"jsonrpc":"2.0","id":98,"error":{"code":-1,"message":"no"}}` + "\n")
	r.send(`{"jsonrpc":"2.0","method":"notifications/whatever"}` + "\n")
	r.send(`{"jsonrpc":"2.0","id":"p","method":"ping"}` + "\n")
	if m := r.next(); m["id"] != "p" || m["result"] == nil {
		t.Fatalf("ping: %v", m)
	}
}

// TestStdioLoopLineLimit: a line of MaxLine bytes is read; one byte more is
// refused with a JSON-RPC error, and the next line is served.
func TestStdioLoopLineLimit(t *testing.T) {
	cfg := testConfig(t)
	ping := `{"jsonrpc":"2.0","id":%d,"method":"ping"}`
	pad := func(id, n int) string { // a ping of exactly n bytes
		l := fmt.Sprintf(ping, id)
		return l[:len(l)-1] + strings.Repeat(" ", n-len(l)) + "}"
	}
	for name, max := range map[string]int{"small": 200, "over the read buffer": 200 << 10} {
		t.Run(name, func(t *testing.T) {
			cfg.MaxLine = max
			r := startRaw(t, cfg)
			r.send(pad(1, max) + "\n")
			if m := r.next(); m["id"] != float64(1) || m["result"] == nil {
				t.Fatalf("a line of MaxLine bytes: %v", m)
			}
			r.send(pad(2, max+1) + "\n")
			m := r.next()
			if code, msg := errorOf(t, m); m["id"] != nil || code != mcp.INVALID_REQUEST || !strings.Contains(msg, fmt.Sprint(max)) {
				t.Fatalf("a line of MaxLine+1 bytes: %v", m)
			}
			r.send(pad(3, 100) + "\n")
			if m := r.next(); m["id"] != float64(3) || m["result"] == nil {
				t.Fatalf("the line after a long one: %v", m)
			}
		})
	}
}

// TestStdioLoopEOF: the end of the input ends ServeStdio; a last line with
// no newline is no message.
func TestStdioLoopEOF(t *testing.T) {
	r := startRaw(t, testConfig(t))
	r.send(`{"jsonrpc":"2.0","id":1,"method":"ping"}`)
	r.in.Close()
	select {
	case err := <-r.done:
		if err != nil {
			t.Fatalf("ServeStdio: %v", err)
		}
		r.done <- nil
	case <-time.After(5 * time.Second):
		t.Fatal("ServeStdio did not return at the end of its input")
	}
	for l := range r.lines {
		t.Errorf("output after an unterminated line: %q", l)
	}
}

// TestLineReader reads lines at and past the limit, across reads of any
// size, and the end of the input.
func TestLineReader(t *testing.T) {
	const max = 20 // over the 16-byte buffer below
	in := "a\n" + strings.Repeat("b", max) + "\n" + strings.Repeat("c", max+1) + "\n\nd\r\ntail"
	want := []string{"a", strings.Repeat("b", max), "<long>", "", "d\r"}
	lr := newLineReader(nil, max)
	// A buffer smaller than a line with its newline, filled a byte at a time.
	lr.r = bufio.NewReaderSize(&oneByteReader{strings.NewReader(in)}, 16)
	got := readLines(t, lr)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("lines %q, want %q", got, want)
	}
}

// readLines reads lr to its end: each line, "<long>" for each line too long.
func readLines(t *testing.T, lr *lineReader) []string {
	t.Helper()
	var got []string
	for {
		l, err := lr.next()
		if errors.Is(err, errLineTooLong) {
			got = append(got, "<long>")
			continue
		}
		if errors.Is(err, io.EOF) {
			return got
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, string(l))
	}
}

type oneByteReader struct{ r io.Reader }

func (o *oneByteReader) Read(p []byte) (int, error) {
	if len(p) > 1 {
		p = p[:1]
	}
	return o.r.Read(p)
}

// FuzzLineReader: whatever the input, the reader returns each line of at
// most max bytes once and in order, says which lines were too long, and
// ends with io.EOF.
func FuzzLineReader(f *testing.F) {
	f.Add([]byte("a\nbb\n\n"), 3)
	f.Add([]byte("abcdefghijklmnopqrstuvwxyz\nshort\nxyz"), 5)
	f.Add([]byte("\n\n\r\n"), 1)
	f.Add([]byte(`{"jsonrpc":"2.0","id":1,"method":"ping"}`+"\n"), 40)
	f.Fuzz(func(t *testing.T, in []byte, max int) {
		if max < 1 || max > 1<<16 {
			return
		}
		var want []string
		parts := strings.Split(string(in), "\n")
		for _, p := range parts[:len(parts)-1] { // the last has no newline: dropped
			if len(p) > max {
				p = "<long>"
			}
			want = append(want, p)
		}
		lr := newLineReader(nil, max)
		lr.r = bufio.NewReaderSize(&oneByteReader{strings.NewReader(string(in))}, 16)
		got := readLines(t, lr)
		if len(got) != len(want) {
			t.Fatalf("%d lines, want %d", len(got), len(want))
		}
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("line %d: %q, want %q", i, got[i], want[i])
			}
		}
	})
}

// FuzzStdioDispatch feeds lines to a served session: every line of output
// is one JSON-RPC message, and the session survives.
func FuzzStdioDispatch(f *testing.F) {
	for _, s := range []string{
		`{"jsonrpc":"2.0","id":1,"method":"ping"}`,
		`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"paf_check","arguments":{}}}`,
		`{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":5}}`,
		`{"jsonrpc":"2.0","id":null,"result":1}`,
		`{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":2}}`,
		`[{"id":1}]`, `"x"`, `{`, `{"id":{},"method":[]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		if len(line) > 4096 {
			return
		}
		fm := newFakeMesh()
		cfg := DefaultConfig()
		cfg.Backend = fm.peer()
		cfg.JoinWait = time.Millisecond
		cfg.MaxLine = 1024
		s := New(cfg)
		var out syncBuffer
		in := strings.NewReader(`{"jsonrpc":"2.0","id":"i","method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}` + "\n" +
			strings.ReplaceAll(string(line), "\n", " ") + "\n" + `{"jsonrpc":"2.0","id":"last","method":"ping"}` + "\n")
		if err := s.ServeStdio(context.Background(), in, &out); err != nil {
			t.Fatal(err)
		}
		last := false
		for _, l := range strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n") {
			var m map[string]any
			if err := json.Unmarshal([]byte(l), &m); err != nil || m["jsonrpc"] != "2.0" {
				t.Fatalf("a line of output is not a JSON-RPC message: %q", l)
			}
			last = last || m["id"] == "last"
		}
		if !last {
			t.Fatalf("no answer to the ping after the line:\n%s", out.String())
		}
	})
}

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// TestWorkersReused: calls one after another are served by one worker, which
// keeps the stack it grew, not by a goroutine each; after a burst at most
// idleWorkers stay, and none once the connection ends.
func TestWorkersReused(t *testing.T) {
	s := twinServer(t)
	sess := &stdioSession{notes: make(chan mcp.JSONRPCNotification, notificationQueue)}
	var out syncBuffer
	c := newStdioConn(s, sess, &out, 64)
	ctx, cancel := context.WithCancel(s.mcp.WithContext(context.Background(), sess))
	idle := func(want int32) {
		t.Helper()
		testutil.WaitForEvery(t, waitPoll, 5*time.Second, fmt.Sprintf("%d idle workers", want), func() bool { return c.idle.Load() == want })
	}
	for i := range 5 {
		c.dispatch(ctx, []byte(toolLine(fmt.Sprint(i), `{"name":"paf_check","arguments":{}}`)))
		c.reqs.Wait()
		idle(1)
	}
	// A burst of blocked calls takes a worker each; once they end, the
	// workers past idleWorkers end too.
	for i := range 3 * idleWorkers {
		c.dispatch(ctx, []byte(toolLine(fmt.Sprint(100+i), `{"name":"paf_listen","arguments":{"timeout_seconds":600}}`)))
	}
	idle(0)
	cancel()
	c.reqs.Wait()
	idle(idleWorkers)
	c.endWorkers()
	if n := c.idle.Load(); n != 0 {
		t.Fatalf("%d workers idle after endWorkers", n)
	}
	if got := strings.Count(out.String(), "\n"); got != 5+3*idleWorkers {
		t.Fatalf("%d answers, want %d", got, 5+3*idleWorkers)
	}
}
