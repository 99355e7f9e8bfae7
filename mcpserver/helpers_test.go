package mcpserver

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"
	"go.uber.org/goleak"

	"github.com/paf-mesh/paf-mesh/internal/testutil"
	"github.com/paf-mesh/paf-mesh/internal/testutil/mcptest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testConfig has short waits and a logger writing to t.Log.
func testConfig(t *testing.T) Config {
	cfg := DefaultConfig()
	cfg.Logger = testutil.Logger(t, slog.LevelDebug)
	cfg.OpeningGrace = 300 * time.Millisecond
	cfg.JoinWait = 2 * time.Second
	cfg.SendTimeout = time.Second
	return cfg
}

// session is one agent session: a Server over a fake peer, driven through
// mcp-go's client in process (ServeStdio's own tests, over pipes, are in
// stdio_loop_test.go).
type session struct {
	t *testing.T
	s *Server
	p *fakePeer
	c *client.Client

	notes mcptest.Notes // every notification the client received
}

func startSession(t *testing.T, p *fakePeer, cfg Config) *session {
	t.Helper()
	cfg.Backend = p
	ss := &session{t: t, s: New(cfg), p: p}
	ctx, cancel := context.WithCancel(context.Background())
	_, stop := ss.s.start(ctx)
	ss.c = client.NewClient(transport.NewInProcessTransport(ss.s.mcp), client.WithProtocolVersion(mcptest.ProtocolVersion))
	ss.c.OnNotification(ss.notes.Add)
	t.Cleanup(func() {
		ss.c.Close()
		cancel()
		stop()
	})
	if err := ss.c.Start(ctx); err != nil {
		t.Fatalf("start client: %v", err)
	}
	if _, err := mcptest.Initialize(ctx, ss.c, "test"); err != nil {
		t.Fatalf("initialize: %v", err)
	}
	return ss
}

// call calls a tool and fails the test on a protocol error.
func (ss *session) call(tool string, args map[string]any) *mcp.CallToolResult {
	ss.t.Helper()
	res, err := mcptest.Call(context.Background(), ss.c, tool, args, nil)
	if err != nil {
		ss.t.Fatalf("%s: %v", tool, err)
	}
	return res
}

// ok calls a tool that must succeed and returns its text and data.
func (ss *session) ok(tool string, args map[string]any) (string, map[string]any) {
	ss.t.Helper()
	res := ss.call(tool, args)
	if res.IsError {
		ss.t.Fatalf("%s(%v): error result: %s", tool, args, mcptest.Text(res))
	}
	return mcptest.Text(res), mcptest.Structured(ss.t, res)
}

// fails calls a tool that must give an error result containing want.
func (ss *session) fails(tool string, args map[string]any, want string) string {
	ss.t.Helper()
	res := ss.call(tool, args)
	if !res.IsError {
		ss.t.Fatalf("%s(%v): want an error result, got: %s", tool, args, mcptest.Text(res))
	}
	if !strings.Contains(mcptest.Text(res), want) {
		ss.t.Fatalf("%s(%v): error %q does not say %q", tool, args, mcptest.Text(res), want)
	}
	return mcptest.Text(res)
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

// waitPoll is how often the waits here look: the server under test runs in
// this process and answers within milliseconds.
const waitPoll = 5 * time.Millisecond

// await waits up to timeout for a call made with mcptest.Async, failing the
// test on a protocol error.
func await(t *testing.T, ch <-chan mcptest.Result, timeout time.Duration) *mcp.CallToolResult {
	t.Helper()
	select {
	case r := <-ch:
		if r.Err != nil {
			t.Fatalf("call: %v", r.Err)
		}
		return r.Res
	case <-time.After(timeout):
		t.Fatalf("call did not return within %s", timeout)
	}
	return nil
}
