package node

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"

	"github.com/paf-mesh/paf-mesh/internal/testutil"
	"github.com/paf-mesh/paf-mesh/internal/testutil/mcptest"
	"github.com/paf-mesh/paf-mesh/mcpserver"
)

// session is one agent session in this process: a Backend started in the
// background, the MCP server over it, and mcp-go's client in process.
type session struct {
	t *testing.T
	b *Backend
	c *client.Client
}

func (m *testMesh) session(who, name string) *session {
	m.t.Helper()
	cfg := m.config(who)
	cfg.Name = name
	started := make(chan *Node, 1)
	b := StartBackend(context.Background(), cfg, func(n *Node) { started <- n })
	srv := mcpserver.New(mcpserver.Config{Backend: b, Logger: cfg.Logger, Version: "test"})
	ctx, cancel := context.WithCancel(context.Background())
	stop := srv.Start(ctx)
	c := client.NewClient(transport.NewInProcessTransport(srv.MCP()), client.WithProtocolVersion(mcptest.ProtocolVersion))
	m.t.Cleanup(func() {
		c.Close()
		cancel()
		stop()
		b.Close()
	})
	if err := c.Start(ctx); err != nil {
		m.t.Fatal(err)
	}
	if _, err := mcptest.Initialize(ctx, c, "test"); err != nil {
		m.t.Fatal(err)
	}
	if err := b.Ready(ctxT(m.t, startTimeout)); err != nil {
		m.t.Fatalf("session %s not ready: %v", who, err)
	}
	select {
	case n := <-started:
		if n != b.Node() {
			m.t.Fatal("started called with another node than Node returns")
		}
	default:
		m.t.Fatal("Ready returned before started was called")
	}
	return &session{t: m.t, b: b, c: c}
}

// ok calls tool and fails the test on any error; it returns the text and
// the structured result.
func (s *session) ok(tool string, args map[string]any) (string, map[string]any) {
	s.t.Helper()
	res := s.call(tool, args)
	if res.IsError {
		s.t.Fatalf("%s %v: error result: %s", tool, args, mcptest.Text(res))
	}
	return mcptest.Text(res), mcptest.Structured(s.t, res)
}

func (s *session) call(tool string, args map[string]any) *mcp.CallToolResult {
	s.t.Helper()
	res, err := mcptest.Call(ctxT(s.t, 60*time.Second), s.c, tool, args, nil)
	if err != nil {
		s.t.Fatalf("%s: %v", tool, err)
	}
	return res
}

func bodies(t *testing.T, d map[string]any) []string {
	t.Helper()
	list, _ := d["messages"].([]any)
	var out []string
	for _, m := range list {
		mm, _ := m.(map[string]any)
		b, _ := mm["body"].(string)
		out = append(out, b)
	}
	return out
}

// A session that takes a name, at start or with paf_register, finds at once
// what holders kept for it. (Was TestE2EMCPNewNameFindsStoredMessages.)
func TestBackendNewNameFindsStoredMessages(t *testing.T) {
	m := newTestMesh(t)
	a := m.session("a", "ann")
	m.start("h", "") // one more holder, besides ann's peer
	for _, to := range []string{"zed", "yan"} {
		if _, d := a.ok("paf_send", map[string]any{"to": to, "message": "kept for " + to}); d["status"] != "stored" {
			t.Fatalf("send to %s, who was never online: %v, want stored", to, d)
		}
	}
	z := m.session("z", "zed")
	if _, d := z.ok("paf_check", nil); strings.Join(bodies(t, d), "|") != "kept for zed" {
		t.Fatalf("zed's first check: %v", d)
	}
	y := m.session("y", "")
	if txt, _ := y.ok("paf_register", map[string]any{"name": "yan"}); !strings.Contains(txt, "1 unread message") {
		t.Fatalf("paf_register as yan:\n%s\nwant it to report the message kept for yan", txt)
	}
	if _, d := y.ok("paf_check", nil); strings.Join(bodies(t, d), "|") != "kept for yan" {
		t.Fatalf("yan's first check: %v", d)
	}
}

// A rename moves the unread messages with the name, and the old name
// forwards to the new one.
func TestBackendRenameMovesInbox(t *testing.T) {
	m := newTestMesh(t)
	a := m.session("a", "ann")
	b := m.session("b", "bob")
	waitNames(t, []*Node{a.b.Node(), b.b.Node()}, "ann", "bob")
	a.ok("paf_send", map[string]any{"to": "bob", "message": "before the rename"})
	testutil.WaitFor(t, meshDeadline, "bob to have the message", func() bool {
		n, _, err := b.b.InboxState("bob")
		return err == nil && n == 1
	})
	b.ok("paf_rename", map[string]any{"new_name": "robert"})
	if got := b.b.Name(); got != "robert" {
		t.Fatalf("after rename the peer holds %q", got)
	}
	if _, d := b.ok("paf_check", nil); strings.Join(bodies(t, d), "|") != "before the rename" {
		t.Fatalf("robert's check after the rename: %v, want the message sent to bob", d)
	}
	testutil.WaitFor(t, meshDeadline, "ann to learn that bob forwards to robert", func() bool {
		for _, f := range a.b.Forwards() {
			if f.From == "bob" && f.To == "robert" {
				return true
			}
		}
		return false
	})
	if _, d := a.ok("paf_send", map[string]any{"to": "bob", "message": "after"}); d["status"] != "delivered" {
		t.Fatalf("send to the old name: %v", d)
	}
	if _, d := b.ok("paf_check", nil); strings.Join(bodies(t, d), "|") != "after" {
		t.Fatalf("robert's check: %v", d)
	}
	// Renaming to the name held: nothing to move.
	if err := b.b.Rename(ctxT(t, 10*time.Second), "robert"); err != nil {
		t.Fatalf("rename to the same name: %v", err)
	}
}

// A name taken at start leaves a working session without a name (the agent
// registers another); description and activity reach the others.
func TestBackendNameTakenAtStart(t *testing.T) {
	m := newTestMesh(t)
	holder := m.start("h", "alice")
	s := m.session("s", "alice")
	if s.b.Name() != "" {
		t.Fatalf("session took %q, held by %s", s.b.Name(), holder.ID())
	}
	s.ok("paf_register", map[string]any{"name": "alicia", "description": "second alice"})
	testutil.WaitFor(t, meshDeadline, "the holder to see alicia's description", func() bool {
		for _, mb := range holder.Members() {
			if mb.Meta.Name == "alicia" && mcpserver.MetaDescription(mb.Meta) == "second alice" {
				return true
			}
		}
		return false
	})
	s.ok("paf_list_sessions", nil)
}

// A peer that cannot start makes Ready fail for good, and the tools say so;
// Close is idempotent. A Backend closed while starting stops the start.
func TestBackendStartFailure(t *testing.T) {
	m := newTestMesh(t)
	file := filepath.Join(m.root, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := m.config("x")
	cfg.RunDir = file
	b := StartBackend(context.Background(), cfg, func(*Node) { t.Error("started called for a failed start") })
	err := b.Ready(ctxT(t, startTimeout))
	if err == nil || !strings.Contains(err.Error(), "start the peer") {
		t.Fatalf("Ready: %v", err)
	}
	if b.Node() != nil {
		t.Fatal("a failed start has a node")
	}
	b.Close()
	b.Close()

	// Ready honours its context while the start is still under way.
	slow := StartBackend(context.Background(), m.config("y"), nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := slow.Ready(ctx); err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("Ready with a cancelled context: %v", err)
	}
	slow.Close()
}

// NewBackend serves a node already running; closing it closes the node.
func TestNewBackend(t *testing.T) {
	m := newTestMesh(t)
	n := m.start("a", "ann")
	b := NewBackend(n)
	if err := b.Ready(context.Background()); err != nil || b.Node() != n || b.Name() != "ann" {
		t.Fatalf("Ready %v, node %p (want %p), name %q", err, b.Node(), n, b.Name())
	}
	b.Close()
	if _, err := n.relay.Send(ctxT(t, time.Second), relayOutgoing("ann", "x", "y")); err == nil {
		t.Fatal("the node still sends after its Backend closed")
	}
}

// fails calls tool and wants an error result saying each of want.
func (s *session) fails(t *testing.T, tool string, args map[string]any, want ...string) {
	t.Helper()
	res, err := mcptest.Call(ctxT(t, 60*time.Second), s.c, tool, args, nil)
	if err != nil {
		t.Fatalf("%s: %v", tool, err)
	}
	txt := mcptest.Text(res)
	if !res.IsError {
		t.Fatalf("%s(%v): want an error result, got: %s", tool, args, txt)
	}
	for _, w := range want {
		if !strings.Contains(txt, w) {
			t.Fatalf("%s(%v): the error does not say %q:\n%s", tool, args, w, txt)
		}
	}
}

// Every kind of bad call gets an answer that says what to do, and the
// server keeps serving; a name held by another session is refused naming
// the holder. (Was TestE2EMCPBadInput.)
func TestBackendBadInput(t *testing.T) {
	m := newTestMesh(t)
	p := m.session("solo", "")
	p.fails(t, "paf_send", map[string]any{"to": "x", "message": "y"}, "no name yet", "paf_register")
	p.ok("paf_register", map[string]any{"name": "solo"})
	if _, err := mcptest.Call(ctxT(t, 30*time.Second), p.c, "paf_teleport", nil, nil); err == nil || !strings.Contains(err.Error(), "paf_listen") {
		t.Errorf("unknown tool: %v; want an error that lists the tools", err)
	}
	tests := map[string]struct {
		tool string
		args map[string]any
		want []string
	}{
		"missing argument":     {"paf_send", map[string]any{"to": "x"}, []string{"message is required", "Call paf_send again"}},
		"wrong type":           {"paf_register", map[string]any{"name": 42}, []string{"name must be a string"}},
		"wrong type timeout":   {"paf_listen", map[string]any{"timeout_seconds": "soon"}, []string{"timeout_seconds must be a number"}},
		"unknown argument":     {"paf_check", map[string]any{"all": true}, []string{`no argument "all"`}},
		"invalid name":         {"paf_send", map[string]any{"to": "no spaces please", "message": "x"}, []string{"a-z 0-9 . _ -"}},
		"invalid new name":     {"paf_rename", map[string]any{"new_name": ".dot"}, []string{"start with a letter or digit"}},
		"send to oneself":      {"paf_send", map[string]any{"to": "SOLO", "message": "x"}, []string{"own name", "paf_list_sessions"}},
		"respond, no conv":     {"paf_respond", map[string]any{"message": "x"}, []string{"no open conversation", "paf_listen"}},
		"unknown conversation": {"paf_wait_response", map[string]any{"conversation_id": "c-unknown"}, []string{`No conversation "c-unknown"`}},
		"timeout too long":     {"paf_listen", map[string]any{"timeout_seconds": 3601}, []string{"between 1 and 3600"}},
		"timeout too short":    {"paf_listen", map[string]any{"timeout_seconds": 0}, []string{"between 1 and 3600"}},
		"empty message":        {"paf_send", map[string]any{"to": "x", "message": " \n "}, []string{"message is empty", "nothing was sent", "Call paf_send again"}},
		"empty broadcast":      {"paf_broadcast", map[string]any{"message": ""}, []string{"message is empty", "Call paf_broadcast again"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) { p.fails(t, tc.tool, tc.args, tc.want...) })
	}
	if _, d := p.ok("paf_list_sessions", nil); d["unread"] != float64(0) {
		t.Errorf("unread: %v", d["unread"])
	}
	q := m.session("other", "")
	waitNames(t, []*Node{q.b.Node()}, "solo")
	q.fails(t, "paf_register", map[string]any{"name": "solo"}, "is held by peer", "Pick a different name")
}
