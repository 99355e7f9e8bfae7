package mcptest

import (
	"context"
	"fmt"
	"maps"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeTB records failures; its Fatalf returns, as a real test's does not. Methods it does not
// override are the nil embedded TB's: calling one panics, which fails the test that did.
type fakeTB struct {
	testing.TB
	fatals []string
}

func (f *fakeTB) Helper() {}

func (f *fakeTB) Fatalf(format string, args ...any) {
	f.fatals = append(f.fatals, fmt.Sprintf(format, args...))
}

// echoClient is a started client of an in-process server whose tool "echo" answers with
// the arguments and the progress token it was called with.
func echoClient(t *testing.T) *client.Client {
	t.Helper()
	s := server.NewMCPServer("echo-server", "7", server.WithToolCapabilities(false))
	s.AddTool(mcp.NewTool("echo"), func(_ context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		var token any
		if req.Params.Meta != nil {
			token = req.Params.Meta.ProgressToken
		}
		return mcp.NewToolResultStructured(map[string]any{"args": req.GetArguments(), "progress": token}, "echoed"), nil
	})
	c := client.NewClient(transport.NewInProcessTransport(s))
	t.Cleanup(func() { c.Close() })
	if err := c.Start(context.Background()); err != nil {
		t.Fatalf("start client: %v", err)
	}
	return c
}

func TestInitializeAndCall(t *testing.T) {
	c := echoClient(t)
	ctx := context.Background()
	init, err := Initialize(ctx, c, "unit")
	if err != nil {
		t.Fatalf("Initialize: %v", err)
	}
	if init.ServerInfo.Name != "echo-server" || init.ProtocolVersion != ProtocolVersion {
		t.Fatalf("initialize answered %+v, %q; want echo-server at %s", init.ServerInfo, init.ProtocolVersion, ProtocolVersion)
	}

	tests := map[string]struct {
		args     map[string]any
		progress mcp.ProgressToken
	}{
		"no progress":   {args: map[string]any{"x": "y"}},
		"with progress": {args: map[string]any{"n": float64(3)}, progress: "tok-1"},
		"no arguments":  {},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			res, err := Call(ctx, c, "echo", tc.args, tc.progress)
			if err != nil || res.IsError {
				t.Fatalf("Call: %v, %+v", err, res)
			}
			if got := Text(res); got != "echoed" {
				t.Errorf("text %q, want echoed", got)
			}
			d := Structured(t, res)
			got, _ := d["args"].(map[string]any) // none: null
			if !maps.EqualFunc(got, tc.args, func(a, b any) bool { return a == b }) {
				t.Errorf("the tool got arguments %v, want %v", d["args"], tc.args)
			}
			if d["progress"] != tc.progress {
				t.Errorf("the tool got progress token %v, want %v", d["progress"], tc.progress)
			}
		})
	}

	if _, err := Call(ctx, c, "nope", nil, nil); err == nil {
		t.Fatal("calling an unknown tool is no protocol error")
	}
}

func TestText(t *testing.T) {
	tests := map[string]struct {
		content []mcp.Content
		want    string
	}{
		"none":          {content: nil, want: ""},
		"one":           {content: []mcp.Content{mcp.NewTextContent("a")}, want: "a"},
		"joined":        {content: []mcp.Content{mcp.NewTextContent("a"), mcp.NewTextContent("b")}, want: "ab"},
		"not text left": {content: []mcp.Content{mcp.NewImageContent("AAAA", "image/png"), mcp.NewTextContent("c")}, want: "c"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := Text(&mcp.CallToolResult{Content: tc.content}); got != tc.want {
				t.Fatalf("Text = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestStructuredFailsOnNonObject(t *testing.T) {
	tb := &fakeTB{}
	res := &mcp.CallToolResult{StructuredContent: []any{1}, Content: []mcp.Content{mcp.NewTextContent("why")}}
	if got := Structured(tb, res); got != nil {
		t.Errorf("Structured = %v for an array", got)
	}
	if len(tb.fatals) != 1 || !strings.Contains(tb.fatals[0], "[]interface {}") || !strings.Contains(tb.fatals[0], "why") {
		t.Fatalf("failures %q; want one naming the type and the text", tb.fatals)
	}
}

// TestNotes adds from several goroutines while reading; -race checks the locking.
func TestNotes(t *testing.T) {
	var ns Notes
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() {
			for j := range 50 {
				method := "a"
				if j%2 == 1 {
					method = "b"
				}
				n := mcp.JSONRPCNotification{}
				n.Method = method
				n.Params.AdditionalFields = map[string]any{"i": i, "j": j}
				ns.Add(n)
				_ = ns.Of("a")
			}
		})
	}
	wg.Wait()
	as := ns.Of("a")
	if len(as) != 100 || len(ns.Of("b")) != 100 || len(ns.Of("c")) != 0 {
		t.Fatalf("%d a, %d b, %d c; want 100, 100, 0", len(as), len(ns.Of("b")), len(ns.Of("c")))
	}
	// Oldest first: each goroutine's notifications in the order it added them.
	last := map[any]int{}
	for _, n := range as {
		if n.Method != "a" {
			t.Fatalf("Of(a) holds a notification of %q", n.Method)
		}
		i, j := n.Params.AdditionalFields["i"], n.Params.AdditionalFields["j"].(int)
		if prev, ok := last[i]; ok && j < prev {
			t.Fatalf("goroutine %v's notification %d came after its %d", i, j, prev)
		}
		last[i] = j
	}
}

func TestAsync(t *testing.T) {
	c := echoClient(t)
	ctx := context.Background()
	if _, err := Initialize(ctx, c, "unit"); err != nil {
		t.Fatalf("Initialize: %v", err)
	}
	ok := Async(ctx, c, "echo", map[string]any{"k": "v"}, "tok-2")
	bad := Async(ctx, c, "nope", nil, nil)
	for name, tc := range map[string]struct {
		ch      <-chan Result
		wantErr bool
	}{"echo": {ch: ok}, "unknown tool": {ch: bad, wantErr: true}} {
		t.Run(name, func(t *testing.T) {
			select {
			case r := <-tc.ch:
				if (r.Err != nil) != tc.wantErr {
					t.Fatalf("error %v; want one: %v", r.Err, tc.wantErr)
				}
				if !tc.wantErr && Structured(t, r.Res)["progress"] != "tok-2" {
					t.Fatalf("result %+v; want the echo of the call", r.Res)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("no result within 10 s")
			}
		})
	}
}
