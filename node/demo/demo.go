package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"

	"github.com/paf-mesh/paf-mesh/mcpserver"
	"github.com/paf-mesh/paf-mesh/node"
)

// Play plays the demo and writes its transcript to out: peers for a few
// agent sessions, each with its MCP server and an in-process MCP client,
// started with cfg (its StateDir and RunDir, which the caller owns and
// removes; its Logger for the peers' logs) and closed before Play returns.
// ctx bounds the whole play.
func Play(ctx context.Context, out io.Writer, cfg node.Config) error {
	d := &demo{out: out, cfg: cfg, log: cfg.Logger}
	if d.log == nil {
		d.log = slog.New(slog.DiscardHandler)
	}
	defer d.close()
	return d.play(ctx)
}

// demo is the cast: one peer (node, MCP server and in-process client) per
// agent session.
type demo struct {
	out   io.Writer
	cfg   node.Config
	log   *slog.Logger
	cast  []*demoAgent
	steps int
}

type demoAgent struct {
	who  string
	n    *node.Node
	stop func()
	c    *client.Client
}

// join starts a peer for an agent session called who.
func (d *demo) join(ctx context.Context, who string) (*demoAgent, error) {
	cfg := d.cfg
	cfg.Logger = d.log.With("session", who)
	n, err := node.New(ctx, cfg)
	if err != nil {
		return nil, err
	}
	a := &demoAgent{who: who, n: n}
	d.cast = append(d.cast, a)
	srv := mcpserver.New(mcpserver.Config{Backend: node.NewBackend(n), Logger: d.log.With("session", who), Version: d.cfg.Version})
	a.stop = srv.Start(ctx)
	a.c = client.NewClient(transport.NewInProcessTransport(srv.MCP()), client.WithProtocolVersion(mcp.LATEST_LEGACY_PROTOCOL_VERSION))
	if err := a.c.Start(ctx); err != nil {
		return nil, err
	}
	req := mcp.InitializeRequest{}
	req.Params.ProtocolVersion = mcp.LATEST_LEGACY_PROTOCOL_VERSION
	req.Params.ClientInfo = mcp.Implementation{Name: "paf-demo", Version: d.cfg.Version}
	if _, err := a.c.Initialize(ctx, req); err != nil {
		return nil, err
	}
	return a, nil
}

func (d *demo) close() {
	for i := len(d.cast) - 1; i >= 0; i-- {
		a := d.cast[i]
		if a.c != nil {
			a.c.Close()
		}
		if a.stop != nil {
			a.stop()
		}
		a.n.Close()
	}
	d.cast = nil
}

// call runs one tool as agent a and prints it with its result.
func (d *demo) call(ctx context.Context, a *demoAgent, tool string, args map[string]any) (map[string]any, error) {
	d.say("%s → %s(%s)", a.who, tool, showArgs(args))
	res, err := d.quiet(ctx, a, tool, args)
	if err != nil {
		return nil, err
	}
	d.result(res)
	if res.IsError {
		return nil, errors.New("unexpected error result")
	}
	m, _ := res.StructuredContent.(map[string]any)
	return m, nil
}

// quiet runs one tool without printing it.
func (d *demo) quiet(ctx context.Context, a *demoAgent, tool string, args map[string]any) (*mcp.CallToolResult, error) {
	req := mcp.CallToolRequest{}
	req.Params.Name = tool
	req.Params.Arguments = args
	res, err := a.c.CallTool(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("%s: %s: %w", a.who, tool, err)
	}
	return res, nil
}

func (d *demo) result(res *mcp.CallToolResult) {
	for _, c := range res.Content {
		if tc, ok := c.(mcp.TextContent); ok {
			for _, l := range strings.Split(strings.TrimRight(tc.Text, "\n"), "\n") {
				fmt.Fprintf(d.out, "    %s\n", l)
			}
		}
	}
}

func (d *demo) say(format string, args ...any) { fmt.Fprintf(d.out, format+"\n", args...) }

func (d *demo) scene(title string) {
	d.steps++
	fmt.Fprintf(d.out, "\n=== %d. %s\n\n", d.steps, title)
}

// await polls as a until every name in names is online in its view of the
// mesh: gossip takes a moment, and a message to a name not seen yet would be
// stored rather than delivered.
func (d *demo) await(ctx context.Context, a *demoAgent, names ...string) error {
	for {
		res, err := d.quiet(ctx, a, "paf_list_sessions", nil)
		if err != nil {
			return err
		}
		online := map[string]bool{}
		if m, ok := res.StructuredContent.(map[string]any); ok {
			list, _ := m["sessions"].([]any)
			for _, s := range list {
				if sm, ok := s.(map[string]any); ok {
					n, _ := sm["name"].(string)
					online[n] = true
				}
			}
		}
		missing := false
		for _, n := range names {
			missing = missing || !online[n]
		}
		if !missing {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s did not see %s online in time", a.who, strings.Join(names, ", "))
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// awaitForward polls as a until it knows that from now forwards to to.
func (d *demo) awaitForward(ctx context.Context, a *demoAgent, from, to string) error {
	for {
		for _, f := range a.n.Forwards() {
			if f.From == from && f.To == to {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s did not learn that %s is now %s in time", a.who, from, to)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func showArgs(args map[string]any) string {
	keys := make([]string, 0, len(args))
	for k := range args {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		v := args[k]
		if s, ok := v.(string); ok {
			if len(s) > 60 {
				s = s[:57] + "..."
			}
			v = fmt.Sprintf("%q", s)
		}
		parts = append(parts, fmt.Sprintf("%s=%v", k, v))
	}
	return strings.Join(parts, ", ")
}

// play is the script.
func (d *demo) play(ctx context.Context) error {
	d.say("paf-peer demo: agent sessions, each a peer of one mesh, talking through the paf MCP tools.")
	d.say("Everything runs in this process, in a temporary directory that is removed at the end.")

	d.scene("Two sessions join the mesh and register")
	expert, err := d.join(ctx, "expert")
	if err != nil {
		return err
	}
	alice, err := d.join(ctx, "alice")
	if err != nil {
		return err
	}
	if _, err := d.call(ctx, expert, "paf_register", map[string]any{"name": "expert", "description": "expert on the billing service"}); err != nil {
		return err
	}
	if _, err := d.call(ctx, alice, "paf_register", map[string]any{"name": "alice"}); err != nil {
		return err
	}
	if err := d.await(ctx, alice, "expert"); err != nil {
		return err
	}
	if _, err := d.call(ctx, alice, "paf_list_sessions", nil); err != nil {
		return err
	}

	d.scene("A message for a session that does not exist yet is stored")
	if _, err := d.call(ctx, alice, "paf_send", map[string]any{"to": "dana", "message": "Welcome, Dana! Start with the billing runbook."}); err != nil {
		return err
	}

	d.scene("A conversation with an intent (Phone-a-Friend)")
	d.say("expert → paf_listen(timeout_seconds=30)   [blocks until a message arrives]")
	type listened struct {
		res *mcp.CallToolResult
		err error
	}
	listen := make(chan listened, 1)
	go func() {
		res, err := d.quiet(ctx, expert, "paf_listen", map[string]any{"timeout_seconds": 30})
		listen <- listened{res, err}
	}()
	data, err := d.call(ctx, alice, "paf_connect", map[string]any{"target_session": "expert", "intent": "Why do payment retries charge twice?"})
	if err != nil {
		return err
	}
	conv, _ := data["conversation_id"].(string)
	if _, err := d.call(ctx, alice, "paf_send", map[string]any{"to": "expert", "message": "After a gateway timeout we retry, and some customers are charged twice. Why?"}); err != nil {
		return err
	}
	l := <-listen
	if l.err != nil {
		return l.err
	}
	d.say("expert ← paf_listen returns")
	d.result(l.res)
	if _, err := d.call(ctx, expert, "paf_respond", map[string]any{"message": "Each retry makes a new idempotency key, so the gateway cannot tell it is the same payment. Make the key once per payment."}); err != nil {
		return err
	}
	if _, err := d.call(ctx, alice, "paf_wait_response", map[string]any{"timeout_seconds": 30}); err != nil {
		return err
	}
	if _, err := d.call(ctx, alice, "paf_refocus", map[string]any{"new_intent": "Where should the idempotency key be stored?"}); err != nil {
		return err
	}
	if _, err := d.call(ctx, expert, "paf_listen", map[string]any{"timeout_seconds": 30}); err != nil {
		return err
	}
	if _, err := d.call(ctx, expert, "paf_respond", map[string]any{"message": "On the payment row, written before the first attempt."}); err != nil {
		return err
	}
	if _, err := d.call(ctx, alice, "paf_wait_response", map[string]any{"conversation_id": conv, "timeout_seconds": 30}); err != nil {
		return err
	}
	if _, err := d.call(ctx, alice, "paf_end_session", map[string]any{"conversation_id": conv}); err != nil {
		return err
	}
	if _, err := d.call(ctx, expert, "paf_listen", map[string]any{"timeout_seconds": 30}); err != nil {
		return err
	}

	d.scene("Dana's session starts: the stored message is handed over")
	dana, err := d.join(ctx, "dana")
	if err != nil {
		return err
	}
	if _, err := d.call(ctx, dana, "paf_register", map[string]any{"name": "dana"}); err != nil {
		return err
	}
	if _, err := d.call(ctx, dana, "paf_listen", map[string]any{"timeout_seconds": 30}); err != nil {
		return err
	}

	d.scene("Alice renames herself; her old name forwards")
	if _, err := d.call(ctx, alice, "paf_rename", map[string]any{"new_name": "alicia"}); err != nil {
		return err
	}
	alice.who = "alicia"
	if err := d.awaitForward(ctx, expert, "alice", "alicia"); err != nil {
		return err
	}
	if _, err := d.call(ctx, expert, "paf_send", map[string]any{"to": "alice", "message": "Thanks for the question, it is in the FAQ now."}); err != nil {
		return err
	}
	if _, err := d.call(ctx, alice, "paf_check", nil); err != nil {
		return err
	}

	d.scene("A broadcast reaches every session online")
	if err := d.await(ctx, expert, "alicia", "dana"); err != nil {
		return err
	}
	if _, err := d.call(ctx, expert, "paf_broadcast", map[string]any{"message": "Billing deploy at 15:00; pause retries until then."}); err != nil {
		return err
	}
	for _, a := range []*demoAgent{alice, dana} {
		if _, err := d.call(ctx, a, "paf_check", nil); err != nil {
			return err
		}
	}

	d.scene("Done")
	d.say("The sessions leave the mesh and the temporary directory is removed.")
	return nil
}
