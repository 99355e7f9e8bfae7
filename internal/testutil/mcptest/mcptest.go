package mcptest

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/mcp"
)

// ProtocolVersion is the MCP version the tests' clients ask for in initialize.
const ProtocolVersion = "2025-06-18"

// Initialize sends c's initialize request as the client clientName (version 1), asking for
// [ProtocolVersion], and returns the server's answer. c must have been started.
func Initialize(ctx context.Context, c *client.Client, clientName string) (*mcp.InitializeResult, error) {
	req := mcp.InitializeRequest{}
	req.Params.ProtocolVersion = ProtocolVersion
	req.Params.ClientInfo = mcp.Implementation{Name: clientName, Version: "1"}
	return c.Initialize(ctx, req)
}

// Call calls tool with args through c. A non-nil progress token asks the server for progress
// notifications about the call. The error is a protocol error only; a tool's own failure is a
// result with IsError set.
func Call(ctx context.Context, c *client.Client, tool string, args map[string]any, progress mcp.ProgressToken) (*mcp.CallToolResult, error) {
	req := mcp.CallToolRequest{}
	req.Params.Name = tool
	req.Params.Arguments = args
	if progress != nil {
		req.Params.Meta = &mcp.Meta{ProgressToken: progress}
	}
	return c.CallTool(ctx, req)
}

// Text is the text of res: its text content blocks, joined.
func Text(res *mcp.CallToolResult) string {
	var b strings.Builder
	for _, c := range res.Content {
		if tc, ok := c.(mcp.TextContent); ok {
			b.WriteString(tc.Text)
		}
	}
	return b.String()
}

// Structured returns the structured content of res, failing tb if it is not a JSON object
// (every paf tool answers with one, errors aside).
func Structured(tb testing.TB, res *mcp.CallToolResult) map[string]any {
	tb.Helper()
	m, ok := res.StructuredContent.(map[string]any)
	if !ok {
		tb.Fatalf("structuredContent is %T, want an object: %v (text: %s)", res.StructuredContent, res.StructuredContent, Text(res))
	}
	return m
}

// Notes records the notifications a client receives; pass its Add to the client's
// OnNotification. The zero value is ready to use, and its methods may be called concurrently.
type Notes struct {
	mu   sync.Mutex
	list []mcp.JSONRPCNotification
}

// Add records n.
func (ns *Notes) Add(n mcp.JSONRPCNotification) {
	ns.mu.Lock()
	ns.list = append(ns.list, n)
	ns.mu.Unlock()
}

// Of returns the notifications of method recorded so far, oldest first.
func (ns *Notes) Of(method string) []mcp.JSONRPCNotification {
	ns.mu.Lock()
	defer ns.mu.Unlock()
	var out []mcp.JSONRPCNotification
	for _, n := range ns.list {
		if n.Method == method {
			out = append(out, n)
		}
	}
	return out
}

// Result is the outcome of a call made with [Async].
type Result struct {
	Res *mcp.CallToolResult
	Err error
}

// Async makes the call [Call] would in a goroutine of its own and returns at once, for a
// tool that blocks (paf_listen) while the test does something else. The outcome arrives on the
// returned channel, which has room for it: the goroutine ends when the call returns, whether
// or not anyone receives.
func Async(ctx context.Context, c *client.Client, tool string, args map[string]any, progress mcp.ProgressToken) <-chan Result {
	ch := make(chan Result, 1)
	go func() {
		res, err := Call(ctx, c, tool, args, progress)
		ch <- Result{res, err}
	}()
	return ch
}
