package mcpserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"
)

// instructions go to the model in the initialize result (SPEC section 5).
const instructions = `paf lets this session talk with other AI agent sessions (Claude Code, Gemini CLI, Codex) on this machine or LAN.
- paf_register a name (others find you with paf_list_sessions).
- To ask someone: paf_connect(target_session, intent), paf_send the question, paf_wait_response for the answer, paf_end_session when resolved.
- To be asked: paf_listen (returns when a message arrives or after about 50 s: then call it again), answer with paf_respond.
- Incoming messages may also appear as <channel source="paf" from="..." conversation_id="..." message_id="..."> tags; the tag's text is the message. They stay unread until paf_check or paf_listen returns them, so handle each message_id once.
- Every result says when unread messages wait: read them with paf_check.`

// Server is the MCP server of one agent session. Its methods are safe for
// concurrent use.
//
// Lock order: takeMu, then mu. Neither is held while calling the Backend's
// blocking methods or sending notifications, except that takeMu is held
// across Peek and Ack so that two concurrent waits never return the same
// message.
type Server struct {
	cfg Config
	log *slog.Logger
	b   Backend
	mcp *server.MCPServer

	tools  map[string]bool       // tool names, to answer unknown ones helpfully
	direct map[string]directTool // the tools, as the stdio transport calls them

	takeMu sync.Mutex

	mu         sync.Mutex
	convs      map[string]*conversation
	latest     string          // id of the conversation used last
	notices    []string        // for the agent, shown with the next result
	listening  int             // paf_listen calls blocked now
	stopListen chan struct{}   // closed by paf_end_session without id
	changed    chan struct{}   // closed at every change of the state above
	pushed     map[string]bool // ids of unread messages already pushed
	// pushAfter are messages a tool returned before they were pushed: pushed
	// by pushLoop once the result is written (pushNew), at most maxPushAfter.
	pushAfter  []pushItem
	taking     map[string]bool // ids a take is marking read (not "gone" to pushNew)
	subscribed map[string]bool // resource URIs the client subscribed to
	seen       map[string]activitySeen

	presenceKick chan struct{}
	// presenceSettling is set while presenceLoop waits for PresenceInterval to end
	// before it looks again: a kick then would wake it for nothing (kickPresence).
	presenceSettling atomic.Bool
	pushKick         chan struct{}
	clientReady      chan struct{} // closed once the client finished initializing
	// joined is set once the Backend's Ready returned nil, so that each
	// call does not make a timer to ask again (ready).
	joined    atomic.Bool
	readyOnce sync.Once

	wg sync.WaitGroup
}

// activitySeen is when this session first saw a peer in its current
// activity, for the idle times of paf_list_sessions.
type activitySeen struct {
	key   string
	since int64 // unix ms
}

// New returns a Server for cfg. It starts nothing: ServeStdio does.
func New(cfg Config) *Server {
	cfg = cfg.withDefaults()
	s := &Server{
		cfg: cfg, log: cfg.Logger, b: cfg.Backend,
		tools:        map[string]bool{},
		direct:       map[string]directTool{},
		convs:        map[string]*conversation{},
		stopListen:   make(chan struct{}),
		changed:      make(chan struct{}),
		pushed:       map[string]bool{},
		taking:       map[string]bool{},
		subscribed:   map[string]bool{},
		seen:         map[string]activitySeen{},
		presenceKick: make(chan struct{}, 1),
		pushKick:     make(chan struct{}, 1),
		clientReady:  make(chan struct{}),
	}
	hooks := &server.Hooks{}
	hooks.AddOnRequestInitialization(s.checkToolName)
	hooks.AddAfterCallTool(s.explainValidation)
	hooks.AddAfterSubscribe(func(_ context.Context, _ any, m *mcp.SubscribeRequest, _ *mcp.EmptyResult) {
		s.mu.Lock()
		s.subscribed[m.Params.URI] = true
		s.mu.Unlock()
	})
	hooks.AddAfterUnsubscribe(func(_ context.Context, _ any, m *mcp.UnsubscribeRequest, _ *mcp.EmptyResult) {
		s.mu.Lock()
		delete(s.subscribed, m.Params.URI)
		s.mu.Unlock()
	})
	hooks.AddAfterDiscover(func(context.Context, any, *mcp.DiscoverRequest, *mcp.DiscoverResult) { s.clientInitialized() })
	s.mcp = server.NewMCPServer("paf-peer", cfg.Version,
		server.WithInstructions(instructions),
		server.WithExperimental(map[string]any{"claude/channel": map[string]any{}}),
		server.WithToolCapabilities(false),
		server.WithResourceCapabilities(true, false),
		server.WithPromptCapabilities(false),
		server.WithInputSchemaValidation(),
		// Not WithStrictInputSchemaDefault: its additionalProperties:false on
		// every tool costs 336 bytes of the 4 KiB tools/list budget. Unknown
		// arguments are refused by handle (unknownArgs) instead.
		server.WithRecovery(),
		server.WithHooks(hooks),
	)
	s.mcp.AddNotificationHandler(string(mcp.MethodNotificationInitialized), func(context.Context, mcp.JSONRPCNotification) {
		s.clientInitialized()
	})
	s.addTools()
	s.addResources()
	s.addPrompts()
	return s
}

func (s *Server) clientInitialized() {
	s.readyOnce.Do(func() { close(s.clientReady) })
}

// ServeStdio serves the MCP protocol on in and out (one JSON-RPC message per
// line, see stdio.go) until in ends or ctx is cancelled, then ends this
// session's open conversations (telling the other sides) and stops. A Server
// runs at most one ServeStdio at a time.
func (s *Server) ServeStdio(ctx context.Context, in io.Reader, out io.Writer) error {
	if s.b == nil {
		return ErrNoBackend
	}
	bg, stop := s.start(ctx)
	err := s.serveStdio(bg, in, out)
	s.endAll(context.WithoutCancel(ctx), "the other session closed")
	stop()
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	if err != nil {
		return fmt.Errorf("mcpserver: serve stdio: %w", err)
	}
	return nil
}

// Start runs the session's background work (push, presence, idle ends,
// mesh events) for a server that is served some other way than ServeStdio:
// in process (mcp-go's client.NewInProcessClient(s.MCP())) or over HTTP.
// It runs until ctx ends or stop is called; stop waits for it to finish
// and then ends the session's open conversations, as ServeStdio does when
// its input ends.
func (s *Server) Start(ctx context.Context) (stop func()) {
	_, halt := s.start(ctx)
	var once sync.Once
	return func() {
		once.Do(func() {
			halt()
			s.endAll(context.WithoutCancel(ctx), "the other session closed")
		})
	}
}

// MCP is the underlying mcp-go server, for serving it with another
// transport (see Start).
func (s *Server) MCP() *server.MCPServer { return s.mcp }

// start runs the background work of a session (push, presence, idle ends,
// mesh events) until stop is called; stop waits for it.
func (s *Server) start(ctx context.Context) (context.Context, func()) {
	ctx, cancel := context.WithCancel(ctx)
	for _, f := range []func(context.Context){s.pushLoop, s.presenceLoop, s.idleLoop, s.eventLoop} {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			f(ctx)
		}()
	}
	return ctx, func() {
		cancel()
		s.wg.Wait()
	}
}

// bumpLocked wakes everything waiting for the session state to change.
func (s *Server) bumpLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

func kick(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// checkToolName answers a call of a tool that does not exist with the list
// of those that do (mcp-go's own answer names only the missing one).
func (s *Server) checkToolName(ctx context.Context, _ any, message any) error {
	r, ok := ctx.Value(routeKey{}).(route) // decoded by the stdio loop
	if !ok {
		raw, ok := message.(json.RawMessage)
		if !ok {
			return nil
		}
		var req struct {
			Method string `json:"method"`
			Params struct {
				Name *string `json:"name"`
			} `json:"params"`
		}
		if json.Unmarshal(raw, &req) != nil {
			return nil
		}
		r = route{method: req.Method, tool: req.Params.Name}
	}
	if r.method != string(mcp.MethodToolsCall) || r.tool == nil || s.tools[*r.tool] {
		return nil
	}
	return fmt.Errorf("unknown tool %q: this server's tools are %s; call tools/list for their parameters",
		clip(*r.tool, 64), strings.Join(toolNames, ", "))
}

// explainValidation rewrites the results of calls that mcp-go refused
// before they reached a handler (arguments that do not match the input
// schema): its message is the validator's, written for programmers; the
// model needs the argument at fault and what to do.
func (s *Server) explainValidation(_ context.Context, _ any, req *mcp.CallToolRequest, result any) {
	r, ok := result.(*mcp.CallToolResult)
	if !ok || !r.IsError || r.StructuredContent != nil || len(r.Content) == 0 {
		return
	}
	tc, ok := r.Content[0].(mcp.TextContent)
	if !ok {
		return
	}
	what := strings.TrimRight(tc.Text, ". ")
	if st := s.mcp.GetTool(req.Params.Name); st != nil {
		if problems := argProblems(st.Tool.InputSchema, req.GetRawArguments()); len(problems) > 0 {
			what = "Invalid arguments: " + strings.Join(problems, "; ")
		}
	}
	tc.Text = argErrorText(req.Params.Name, what)
	r.Content[0] = tc
	r.StructuredContent = map[string]any{"error": tc.Text}
}

func argErrorText(tool, what string) string {
	return fmt.Sprintf("%s. Call %s again with %s.", what, tool, argSummary[tool])
}

// unknownArgs refuses arguments that no tool parameter has (a model's typo of
// timeout_seconds would otherwise be ignored and the default used), in the
// words explainValidation uses for the validator's refusals.
func (s *Server) unknownArgs(tool string, req mcp.CallToolRequest) *mcp.CallToolResult {
	st := s.mcp.GetTool(tool)
	if st == nil {
		return nil
	}
	args := req.GetArguments()
	var unknown []string
	for k := range args {
		if _, ok := st.Tool.InputSchema.Properties[k]; !ok {
			unknown = append(unknown, fmt.Sprintf("there is no argument %q", clip(k, 64)))
		}
	}
	if len(unknown) == 0 {
		return nil
	}
	sort.Strings(unknown)
	return argError(tool, "Invalid arguments: "+strings.Join(unknown, "; ")).mcpResult()
}

// argError is the result of a call whose arguments do not fit the tool.
func argError(tool, what string) toolResult {
	text := argErrorText(tool, what)
	return toolResult{text: text, data: map[string]any{"error": text}, isError: true}
}

// argProblems lists, in words, how args break schema: missing required
// arguments, unknown ones, and wrong types. It covers the flat schemas of
// this server's tools.
func argProblems(schema mcp.ToolInputSchema, raw any) []string {
	var args map[string]any
	switch v := raw.(type) {
	case nil:
		args = map[string]any{}
	case map[string]any:
		args = v
	case json.RawMessage:
		if json.Unmarshal(v, &args) != nil || args == nil {
			if len(strings.TrimSpace(string(v))) == 0 || string(v) == "null" {
				args = map[string]any{}
			} else {
				return []string{"the arguments must be a JSON object"}
			}
		}
	default:
		return []string{"the arguments must be a JSON object"}
	}
	types := make(map[string]string, len(args))
	for k, v := range args {
		types[k] = jsonType(v)
	}
	return typeProblems(schema, types)
}

// typeProblems is argProblems for arguments given as the JSON type of each
// (jsonType).
func typeProblems(schema mcp.ToolInputSchema, types map[string]string) []string {
	var out []string
	for _, name := range schema.Required {
		if _, ok := types[name]; !ok {
			out = append(out, fmt.Sprintf("%s is required", name))
		}
	}
	names := make([]string, 0, len(types))
	for k := range types {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		prop, ok := schema.Properties[k].(map[string]any)
		if !ok {
			out = append(out, fmt.Sprintf("there is no argument %q", clip(k, 64)))
			continue
		}
		want, _ := prop["type"].(string)
		if got := types[k]; want != "" && got != want && !(want == "number" && got == "integer") {
			out = append(out, fmt.Sprintf("%s must be %s, not %s", k, typeWord(want), typeWord(got)))
		}
	}
	return out
}

func typeWord(t string) string {
	switch t {
	case "integer", "object", "array":
		return "an " + t
	case "boolean":
		return "true or false"
	case "null":
		return "null"
	}
	return "a " + t
}

func jsonType(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case string:
		return "string"
	case bool:
		return "boolean"
	case float64:
		if x == float64(int64(x)) {
			return "integer"
		}
		return "number"
	case json.Number:
		return "number"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	}
	return "value"
}
