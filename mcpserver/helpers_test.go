package mcpserver

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testConfig has short waits and a logger writing to t.Log.
func testConfig(t *testing.T) Config {
	cfg := DefaultConfig()
	cfg.Logger = slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	cfg.OpeningGrace = 300 * time.Millisecond
	cfg.JoinWait = 2 * time.Second
	cfg.SendTimeout = time.Second
	return cfg
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// session is one agent session: a Server over a fake peer, driven through
// mcp-go's client (in process: mcp-go keeps one stdio session per process,
// and these tests run several sessions at once).
type session struct {
	t *testing.T
	s *Server
	p *fakePeer
	c *client.Client

	mu    sync.Mutex
	notes []mcp.JSONRPCNotification
}

func startSession(t *testing.T, p *fakePeer, cfg Config) *session {
	t.Helper()
	cfg.Backend = p
	ss := &session{t: t, s: New(cfg), p: p}
	ctx, cancel := context.WithCancel(context.Background())
	_, stop := ss.s.start(ctx)
	ss.c = client.NewClient(transport.NewInProcessTransport(ss.s.mcp), client.WithLegacyProtocolOnly())
	ss.c.OnNotification(func(n mcp.JSONRPCNotification) {
		ss.mu.Lock()
		ss.notes = append(ss.notes, n)
		ss.mu.Unlock()
	})
	t.Cleanup(func() {
		ss.c.Close()
		cancel()
		stop()
	})
	if err := ss.c.Start(ctx); err != nil {
		t.Fatalf("start client: %v", err)
	}
	init := mcp.InitializeRequest{}
	init.Params.ProtocolVersion = "2025-06-18"
	init.Params.ClientInfo = mcp.Implementation{Name: "test", Version: "1"}
	if _, err := ss.c.Initialize(ctx, init); err != nil {
		t.Fatalf("initialize: %v", err)
	}
	return ss
}

// call calls a tool and fails the test on a protocol error.
func (ss *session) call(tool string, args map[string]any) *mcp.CallToolResult {
	ss.t.Helper()
	res, err := ss.callCtx(context.Background(), tool, args, nil)
	if err != nil {
		ss.t.Fatalf("%s: %v", tool, err)
	}
	return res
}

func (ss *session) callCtx(ctx context.Context, tool string, args map[string]any, progress mcp.ProgressToken) (*mcp.CallToolResult, error) {
	req := mcp.CallToolRequest{}
	req.Params.Name = tool
	req.Params.Arguments = args
	if progress != nil {
		req.Params.Meta = &mcp.Meta{ProgressToken: progress}
	}
	return ss.c.CallTool(ctx, req)
}

// ok calls a tool that must succeed and returns its text and data.
func (ss *session) ok(tool string, args map[string]any) (string, map[string]any) {
	ss.t.Helper()
	res := ss.call(tool, args)
	if res.IsError {
		ss.t.Fatalf("%s(%v): error result: %s", tool, args, text(res))
	}
	return text(res), data(ss.t, res)
}

// fails calls a tool that must give an error result containing want.
func (ss *session) fails(tool string, args map[string]any, want string) string {
	ss.t.Helper()
	res := ss.call(tool, args)
	if !res.IsError {
		ss.t.Fatalf("%s(%v): want an error result, got: %s", tool, args, text(res))
	}
	if !strings.Contains(text(res), want) {
		ss.t.Fatalf("%s(%v): error %q does not say %q", tool, args, text(res), want)
	}
	return text(res)
}

func text(res *mcp.CallToolResult) string {
	var b strings.Builder
	for _, c := range res.Content {
		if tc, ok := c.(mcp.TextContent); ok {
			b.WriteString(tc.Text)
		}
	}
	return b.String()
}

func data(t *testing.T, res *mcp.CallToolResult) map[string]any {
	t.Helper()
	m, ok := res.StructuredContent.(map[string]any)
	if !ok {
		t.Fatalf("structuredContent is %T, want an object: %v", res.StructuredContent, res.StructuredContent)
	}
	return m
}

// messages decodes data["messages"].
func messages(t *testing.T, d map[string]any) []msgJSON {
	t.Helper()
	b, _ := json.Marshal(d["messages"])
	var ms []msgJSON
	if err := json.Unmarshal(b, &ms); err != nil {
		t.Fatalf("messages: %v in %s", err, b)
	}
	return ms
}

// notifications returns the notifications of method received so far.
func (ss *session) notifications(method string) []mcp.JSONRPCNotification {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	var out []mcp.JSONRPCNotification
	for _, n := range ss.notes {
		if n.Method == method {
			out = append(out, n)
		}
	}
	return out
}

// waitFor polls cond until it holds, failing the test after timeout.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// async runs a tool call in the background; the result arrives on the
// returned channel.
type callResult struct {
	res *mcp.CallToolResult
	err error
}

func (ss *session) async(ctx context.Context, tool string, args map[string]any, progress mcp.ProgressToken) <-chan callResult {
	ch := make(chan callResult, 1)
	go func() {
		res, err := ss.callCtx(ctx, tool, args, progress)
		ch <- callResult{res, err}
	}()
	return ch
}

func await(t *testing.T, ch <-chan callResult, timeout time.Duration) *mcp.CallToolResult {
	t.Helper()
	select {
	case r := <-ch:
		if r.err != nil {
			t.Fatalf("call: %v", r.err)
		}
		return r.res
	case <-time.After(timeout):
		t.Fatalf("call did not return within %s", timeout)
	}
	return nil
}
