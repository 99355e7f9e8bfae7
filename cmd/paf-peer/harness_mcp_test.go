package main

// The harness's MCP side (its processes come from spawn, in harness_test.go):
// `paf-peer mcp` driven by mcp-go's own client over the process's stdin and
// stdout, with every line the process writes to stdout checked to be one
// JSON-RPC message.

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"

	"github.com/paf-mesh/paf-mesh/internal/testutil/mcptest"
)

// mcpCallTimeout bounds one tool call that is not meant to block; the first
// calls also wait for the peer to join the mesh.
const mcpCallTimeout = 30 * time.Second

// mcpPeer is one `paf-peer mcp` process and the MCP client talking to it.
type mcpPeer struct {
	t    testing.TB
	who  string
	p    *proc
	c    *client.Client
	init *mcp.InitializeResult

	notes mcptest.Notes // every notification the client received

	mu        sync.Mutex // guards badLines and toolsList
	badLines  []string
	toolsList int // bytes of the last tools/list response line
}

// mcp starts `paf-peer mcp` with its own state dir and the shared run dir,
// and initializes a client with it (the legacy handshake, as Claude Code
// does). When the test ends the client closes the process's stdin, which
// ends it; the process group then checks it for races and panics.
func (m *testMesh) mcp(who string, args ...string) *mcpPeer {
	t := m.t
	t.Helper()
	args = append([]string{"mcp"}, args...)
	mp := &mcpPeer{t: t, who: who}
	var stdin io.WriteCloser
	var toClient *io.PipeReader
	p := spawn(t, nil, m.env(who), func(p *proc) func() {
		p.cmd.Stdout = nil
		var err error
		if stdin, err = p.cmd.StdinPipe(); err != nil {
			t.Fatal(err)
		}
		stdout, err := p.cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		// Check each line, then hand it to the client.
		var fromProc *io.PipeWriter
		toClient, fromProc = io.Pipe()
		copied := make(chan struct{})
		go func() {
			defer close(copied)
			defer fromProc.Close()
			r := bufio.NewReaderSize(stdout, 1<<16)
			for {
				line, err := r.ReadBytes('\n')
				if len(line) > 0 {
					mp.inspect(line)
					_, _ = fromProc.Write(line) // fails only once the client is gone
				}
				if err != nil {
					return
				}
			}
		}()
		return func() { <-copied }
	}, args...)
	mp.p = p

	mp.c = client.NewClient(transport.NewIO(toClient, stdin, io.NopCloser(strings.NewReader(""))), client.WithProtocolVersion(mcptest.ProtocolVersion))
	mp.c.OnNotification(mp.notes.Add)
	t.Cleanup(func() {
		// Closing the client closes the process's stdin: the end of its
		// input, on which it ends its conversations, leaves and exits 0.
		mp.c.Close()
		if code, err := p.wait(stopTimeout); err != nil {
			t.Errorf("paf-peer mcp (%s) did not exit after its stdin closed: %v", who, err)
		} else if code != 0 {
			t.Errorf("paf-peer mcp (%s) exited %d after its stdin closed; want 0", who, code)
		}
		mp.mu.Lock()
		defer mp.mu.Unlock()
		for _, l := range mp.badLines {
			t.Errorf("paf-peer mcp (%s) wrote a line to stdout that is not a JSON-RPC message: %q", who, l)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), mcpCallTimeout)
	defer cancel()
	if err := mp.c.Start(ctx); err != nil {
		t.Fatalf("start client: %v", err)
	}
	var err error
	if mp.init, err = mcptest.Initialize(ctx, mp.c, "paf-e2e"); err != nil {
		t.Fatalf("initialize paf-peer mcp (%s): %v\nstderr:\n%s", who, err, p.stderr())
	}
	return mp
}

// inspect checks that one line of stdout is a JSON-RPC 2.0 message.
func (mp *mcpPeer) inspect(line []byte) {
	var msg struct {
		JSONRPC string          `json:"jsonrpc"`
		ID      json.RawMessage `json:"id"`
		Method  string          `json:"method"`
		Result  json.RawMessage `json:"result"`
		Error   json.RawMessage `json:"error"`
	}
	err := json.Unmarshal(line, &msg)
	mp.mu.Lock()
	defer mp.mu.Unlock()
	if err != nil || msg.JSONRPC != "2.0" || (msg.Method == "" && msg.Result == nil && msg.Error == nil) {
		mp.badLines = append(mp.badLines, clipLine(string(line)))
		return
	}
	var res struct {
		Tools []json.RawMessage `json:"tools"`
	}
	if msg.Result != nil && json.Unmarshal(msg.Result, &res) == nil && res.Tools != nil {
		mp.toolsList = len(line)
	}
}

func clipLine(s string) string {
	if len(s) > 300 {
		return s[:300] + "…"
	}
	return s
}

// call calls a tool (within mcpCallTimeout) and fails on a protocol error.
func (mp *mcpPeer) call(tool string, args map[string]any) *mcp.CallToolResult {
	mp.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), mcpCallTimeout)
	defer cancel()
	res, err := mcptest.Call(ctx, mp.c, tool, args, nil)
	if err != nil {
		mp.t.Fatalf("%s: %s: %v\nstderr:\n%s", mp.who, tool, err, mp.p.stderr())
	}
	return res
}

// ok calls a tool that must succeed; it returns the text and structured
// content.
func (mp *mcpPeer) ok(tool string, args map[string]any) (string, map[string]any) {
	mp.t.Helper()
	res := mp.call(tool, args)
	if res.IsError {
		mp.t.Fatalf("%s: %s(%v): error result: %s", mp.who, tool, args, mcptest.Text(res))
	}
	return mcptest.Text(res), mcptest.Structured(mp.t, res)
}

// fails calls a tool that must return an error result whose text contains
// every one of want.
func (mp *mcpPeer) fails(tool string, args map[string]any, want ...string) string {
	mp.t.Helper()
	res := mp.call(tool, args)
	txt := mcptest.Text(res)
	if !res.IsError {
		mp.t.Fatalf("%s: %s(%v): want an error result, got: %s", mp.who, tool, args, txt)
	}
	for _, w := range want {
		if !strings.Contains(txt, w) {
			mp.t.Fatalf("%s: %s(%v): the error does not say %q:\n%s", mp.who, tool, args, w, txt)
		}
	}
	return txt
}

// await waits up to timeout for a call made with mcptest.Async, which must
// succeed; it returns the text and structured content.
func (mp *mcpPeer) await(ch <-chan mcptest.Result, timeout time.Duration) (string, map[string]any) {
	mp.t.Helper()
	select {
	case r := <-ch:
		if r.Err != nil {
			mp.t.Fatalf("%s: %v", mp.who, r.Err)
		}
		if r.Res.IsError {
			mp.t.Fatalf("%s: error result: %s", mp.who, mcptest.Text(r.Res))
		}
		return mcptest.Text(r.Res), mcptest.Structured(mp.t, r.Res)
	case <-time.After(timeout):
		mp.t.Fatalf("%s: the call did not return within %s", mp.who, timeout)
	}
	return "", nil
}

// pushed returns the meta of the channel notifications received so far, by
// message id.
func (mp *mcpPeer) pushed() map[string]map[string]any {
	out := map[string]map[string]any{}
	for _, n := range mp.notes.Of("notifications/claude/channel") {
		meta, _ := n.Params.AdditionalFields["meta"].(map[string]any)
		if id, _ := meta["message_id"].(string); id != "" {
			meta["content"] = n.Params.AdditionalFields["content"]
			out[id] = meta
		}
	}
	return out
}

// session is what paf_list_sessions says about one session.
type e2eSession struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	Host        string `json:"host"`
	Activity    string `json:"activity"`
	Focus       string `json:"focus"`
	You         bool   `json:"you"`
}

// sessions calls paf_list_sessions and returns the sessions by name.
func (mp *mcpPeer) sessions() map[string]e2eSession {
	mp.t.Helper()
	_, d := mp.ok("paf_list_sessions", nil)
	var list []e2eSession
	decodeInto(mp.t, d["sessions"], &list)
	out := map[string]e2eSession{}
	for _, s := range list {
		out[s.Name] = s
	}
	return out
}

// e2eMessage is a message in structuredContent.
type e2eMessage struct {
	ID              string `json:"id"`
	From            string `json:"from"`
	To              string `json:"to"`
	Body            string `json:"body"`
	Kind            string `json:"kind"`
	ConversationID  string `json:"conversation_id"`
	Intent          string `json:"intent"`
	SentAt          string `json:"sent_at"`
	ForwardedFrom   string `json:"forwarded_from"`
	File            string `json:"file"`
	Broadcast       bool   `json:"broadcast"`
	NewConversation bool   `json:"new_conversation"`
}

func msgsOf(t testing.TB, d map[string]any) []e2eMessage {
	t.Helper()
	var ms []e2eMessage
	decodeInto(t, d["messages"], &ms)
	return ms
}

func decodeInto(t testing.TB, v any, into any) {
	t.Helper()
	b, err := json.Marshal(v)
	if err == nil {
		err = json.Unmarshal(b, into)
	}
	if err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
}
