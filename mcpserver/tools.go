package mcpserver

import (
	"context"
	"encoding/json"
	"reflect"
	"strings"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"
)

// The tools of SPEC section 5. Descriptions are short: the whole tools/list
// goes into the model's context in every session, so it stays under 4 KiB
// (SPEC section 10; a test holds it there). The text of every result says
// the rest: what happened, and what to call next.

var toolNames = []string{
	"paf_register", "paf_rename", "paf_list_sessions", "paf_send", "paf_broadcast", "paf_check",
	"paf_listen", "paf_connect", "paf_wait_response", "paf_respond", "paf_refocus", "paf_end_session",
}

// argSummary is what each tool takes, for the message about arguments that
// did not match the schema.
var argSummary = map[string]string{
	"paf_register":      "name (required), description",
	"paf_rename":        "new_name (required)",
	"paf_list_sessions": "no arguments",
	"paf_send":          "to and message (required), conversation_id, my_name",
	"paf_broadcast":     "message (required)",
	"paf_check":         "no arguments",
	"paf_listen":        "session_name, description, timeout_seconds (1-3600)",
	"paf_connect":       "target_session and intent (required), my_name",
	"paf_wait_response": "conversation_id, timeout_seconds (1-3600)",
	"paf_respond":       "message (required), conversation_id, session_name",
	"paf_refocus":       "new_intent (required), conversation_id",
	"paf_end_session":   "conversation_id",
}

type (
	registerArgs struct {
		Name        string `json:"name"`
		Description string `json:"description"`
	}
	renameArgs struct {
		NewName string `json:"new_name"`
	}
	noArgs   struct{}
	sendArgs struct {
		To             string `json:"to"`
		Message        string `json:"message"`
		ConversationID string `json:"conversation_id"`
		MyName         string `json:"my_name"`
	}
	broadcastArgs struct {
		Message string `json:"message"`
	}
	listenArgs struct {
		SessionName    string   `json:"session_name"`
		Description    string   `json:"description"`
		TimeoutSeconds *float64 `json:"timeout_seconds"`
	}
	connectArgs struct {
		TargetSession string `json:"target_session"`
		Intent        string `json:"intent"`
		MyName        string `json:"my_name"`
	}
	waitArgs struct {
		ConversationID string   `json:"conversation_id"`
		TimeoutSeconds *float64 `json:"timeout_seconds"`
	}
	respondArgs struct {
		Message        string `json:"message"`
		ConversationID string `json:"conversation_id"`
		SessionName    string `json:"session_name"`
	}
	refocusArgs struct {
		ConversationID string `json:"conversation_id"`
		NewIntent      string `json:"new_intent"`
	}
	endArgs struct {
		ConversationID string `json:"conversation_id"`
	}
)

// hints sets all four annotations: mcp-go defaults the ones left out to
// destructive and open-world, which would make clients ask the user before
// every call. Nothing here destroys anything, and everything stays inside the
// mesh, so those two are always sent as false. readOnly and idempotent are
// sent only when true: false is what the MCP specification says an absent
// hint means, and the bytes count against the tools/list budget.
func hints(readOnly, idempotent bool) mcp.ToolOption {
	orNil := func(b bool) *bool {
		if b {
			return mcp.ToBoolPtr(true)
		}
		return nil
	}
	return mcp.WithToolAnnotation(mcp.ToolAnnotation{
		ReadOnlyHint:    orNil(readOnly),
		DestructiveHint: mcp.ToBoolPtr(false),
		IdempotentHint:  orNil(idempotent),
		OpenWorldHint:   mcp.ToBoolPtr(false),
	})
}

const (
	descTimeout = "1-3600, default 50"
	descAbout   = "What you help with"
)

func (s *Server) addTools() {
	add := func(t mcp.Tool, h toolHandlers) {
		s.tools[t.Name] = true
		s.direct[t.Name] = directTool{schema: t.InputSchema, run: h.direct, runFields: h.fields}
		s.mcp.AddTool(t, h.mcp)
	}
	// Parameters are described only where the name and the tool's description
	// leave something out; the rules of each are in the error a bad value gets.
	add(mcp.NewTool("paf_register",
		mcp.WithDescription("Claim your session name (1-64 of a-z 0-9 . _ -) so others can reach you; shows who is online."),
		mcp.WithString("name", mcp.Required()),
		mcp.WithString("description", mcp.Description(descAbout)),
		hints(false, true),
	), handle(s, "paf_register", s.register))
	add(mcp.NewTool("paf_rename",
		mcp.WithDescription("Rename yourself; the old name forwards here for 2 hours."),
		mcp.WithString("new_name", mcp.Required()),
		hints(false, true),
	), handle(s, "paf_rename", s.rename))
	add(mcp.NewTool("paf_list_sessions",
		mcp.WithDescription("Who is online: names, descriptions, listening or busy, focus; renamed names."),
		hints(true, true),
	), handle(s, "paf_list_sessions", s.listSessions))
	add(mcp.NewTool("paf_send",
		mcp.WithDescription("Message a session, online or not (stored until it appears); goes into your open conversation with it. my_name registers you."),
		mcp.WithString("to", mcp.Required()),
		mcp.WithString("message", mcp.Required()),
		mcp.WithString("conversation_id"),
		mcp.WithString("my_name"),
		hints(false, false),
	), handle(s, "paf_send", s.send))
	add(mcp.NewTool("paf_broadcast",
		mcp.WithDescription("Message every named session online now."),
		mcp.WithString("message", mcp.Required()),
		hints(false, false),
	), handle(s, "paf_broadcast", s.broadcast))
	add(mcp.NewTool("paf_check",
		mcp.WithDescription("Return all unread messages now and mark them read."),
		hints(true, false),
	), handle(s, "paf_check", s.check))
	add(mcp.NewTool("paf_listen",
		mcp.WithDescription("Wait for messages (session_name registers you); on timeout, call again."),
		mcp.WithString("session_name"),
		mcp.WithString("description", mcp.Description(descAbout)),
		mcp.WithNumber("timeout_seconds", mcp.Description(descTimeout)),
		hints(false, false),
	), handle(s, "paf_listen", s.listen))
	add(mcp.NewTool("paf_connect",
		mcp.WithDescription("Open a conversation with a session about an intent (both see it); then paf_send your question. my_name registers you."),
		mcp.WithString("target_session", mcp.Required()),
		mcp.WithString("intent", mcp.Required()),
		mcp.WithString("my_name"),
		hints(false, false),
	), handle(s, "paf_connect", s.connect))
	add(mcp.NewTool("paf_wait_response",
		mcp.WithDescription("Wait for a reply in a conversation (default: any); on timeout, call again."),
		mcp.WithString("conversation_id"),
		mcp.WithNumber("timeout_seconds", mcp.Description(descTimeout)),
		hints(false, false),
	), handle(s, "paf_wait_response", s.waitResponse))
	add(mcp.NewTool("paf_respond",
		mcp.WithDescription("Reply in a conversation (default: the latest). session_name registers you."),
		mcp.WithString("message", mcp.Required()),
		mcp.WithString("conversation_id"),
		mcp.WithString("session_name"),
		hints(false, false),
	), handle(s, "paf_respond", s.respond))
	add(mcp.NewTool("paf_refocus",
		mcp.WithDescription("Change a conversation's intent (default: the latest); the other side is told."),
		mcp.WithString("new_intent", mcp.Required()),
		mcp.WithString("conversation_id"),
		hints(false, false),
	), handle(s, "paf_refocus", s.refocus))
	add(mcp.NewTool("paf_end_session",
		mcp.WithDescription("End a conversation, telling the other side; with no id, stop listening and end all."),
		mcp.WithString("conversation_id"),
		hints(false, true),
	), handle(s, "paf_end_session", s.endSession))
}

// reply is a handler's successful outcome: text for the model and the same
// facts as structuredContent. next is what the model should call next, when
// there is something to say; it goes into the text and, as "next", into the
// structured result: Claude Code and Codex show the model only the latter.
type reply struct {
	text string
	data map[string]any
	next string
}

// toolResult is a tool call's result as this server makes it: text content,
// structuredContent, and whether it is an error. The stdio transport encodes
// it itself (toolcall.go); other transports get it as an mcp.CallToolResult.
type toolResult struct {
	text    string
	data    map[string]any
	isError bool
}

// mcpResult is r as mcp-go's result type, for mcp-go's own transports.
func (r toolResult) mcpResult() *mcp.CallToolResult {
	res := mcp.NewToolResultText(r.text)
	res.IsError = r.isError
	if r.data != nil {
		res.StructuredContent = r.data
	}
	return res
}

// toolHandlers are the two entries of one tool: mcp's, registered with mcp-go
// (which validates the arguments against the input schema and binds them),
// and direct, which the stdio transport calls with the arguments it checked
// itself against the same schema (directTool). Both run the same handler.
type toolHandlers struct {
	mcp    server.ToolHandlerFunc
	direct func(ctx context.Context, req mcp.CallToolRequest, args json.RawMessage) toolResult
	fields func(ctx context.Context, req mcp.CallToolRequest, fields map[string]json.RawMessage) toolResult
}

// handle wraps a typed handler: it waits (bounded) for the peer to be up,
// runs fn, and completes the result with the notices and the unread line
// every result carries.
func handle[T any](s *Server, tool string, fn func(context.Context, mcp.CallToolRequest, T) (*reply, error)) toolHandlers {
	names := jsonNames(reflect.TypeFor[T]())
	run := func(ctx context.Context, req mcp.CallToolRequest, args T) toolResult {
		ctx = context.WithValue(ctx, callStartKey{}, time.Now())
		if err := s.ready(ctx); err != nil {
			return errorResult(tool, err)
		}
		r, err := fn(ctx, req, args)
		if err != nil {
			res := errorResult(tool, err)
			s.complete(&res)
			return res
		}
		if r.data == nil {
			r.data = map[string]any{}
		}
		if r.next != "" {
			r.data["next"] = r.next
		}
		res := toolResult{text: r.text, data: r.data}
		s.complete(&res)
		return res
	}
	return toolHandlers{
		mcp: mcp.NewTypedToolHandler(func(ctx context.Context, req mcp.CallToolRequest, args T) (*mcp.CallToolResult, error) {
			if res := s.unknownArgs(tool, req); res != nil {
				return res, nil
			}
			return run(ctx, req, args).mcpResult(), nil
		}),
		direct: func(ctx context.Context, req mcp.CallToolRequest, raw json.RawMessage) toolResult {
			var args T
			if len(raw) > 0 && string(raw) != "null" {
				if err := json.Unmarshal(raw, &args); err != nil {
					// directTool checked raw against the schema: not reached
					// unless the two disagree. Worded as mcp-go's binding error.
					return argError(tool, "failed to bind arguments: "+err.Error())
				}
			}
			return run(ctx, req, args)
		},
		fields: func(ctx context.Context, req mcp.CallToolRequest, fields map[string]json.RawMessage) toolResult {
			var args T
			if err := bindFields(&args, names, fields); err != nil {
				return argError(tool, "failed to bind arguments: "+err.Error())
			}
			return run(ctx, req, args)
		},
	}
}

// jsonNames is the JSON name of each field of the struct type t, by index.
func jsonNames(t reflect.Type) []string {
	names := make([]string, t.NumField())
	for i := range names {
		names[i], _, _ = strings.Cut(t.Field(i).Tag.Get("json"), ",")
	}
	return names
}

// bindFields sets the fields of *dst (a struct whose field i is named
// names[i] in JSON) from raw JSON values, as json.Unmarshal of the object
// holding them would: the checked arguments of a call read by plainCall,
// whose keys match the names exactly.
func bindFields(dst any, names []string, fields map[string]json.RawMessage) error {
	v := reflect.ValueOf(dst).Elem()
	for i, name := range names {
		raw, ok := fields[name]
		if !ok {
			continue
		}
		p := v.Field(i).Addr().Interface()
		var err error
		if sp, isString := p.(*string); isString {
			err = setString(sp, raw)
		} else {
			err = json.Unmarshal(raw, p)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// complete appends the pending notices and the unread line.
func (s *Server) complete(res *toolResult) {
	s.mu.Lock()
	notices := s.notices
	s.notices = nil
	s.mu.Unlock()
	unread := s.unread()
	var extra []string
	for _, n := range notices {
		extra = append(extra, "Notice: "+n)
	}
	if l := unreadLine(unread); l != "" {
		extra = append(extra, l)
	}
	if len(extra) > 0 {
		res.text = strings.TrimRight(res.text, "\n") + "\n\n" + strings.Join(extra, "\n")
	}
	data := res.data
	data["unread"] = unread
	if _, ok := data["next"]; !ok && unread > 0 {
		data["next"] = unreadLine(unread)
	}
	if len(notices) > 0 {
		data["notices"] = notices
	}
}

// unread is the number of unread messages of this session's name.
func (s *Server) unread() int {
	name := s.b.Name()
	if name == "" {
		return 0
	}
	n, _, err := s.b.InboxState(name)
	if err != nil {
		return 0
	}
	return n
}

// ready waits, at most Config.JoinWait, for the peer to be up.
func (s *Server) ready(ctx context.Context) error {
	if s.joined.Load() {
		return nil // Ready returns nil for ever once it has (Backend)
	}
	wctx, cancel := context.WithTimeout(ctx, s.cfg.JoinWait)
	defer cancel()
	err := s.b.Ready(wctx)
	switch {
	case err == nil:
		s.joined.Store(true)
		return nil
	case ctx.Err() != nil:
		return ctx.Err()
	case wctx.Err() != nil:
		return errJoining
	}
	return userErrorf("This peer could not start: %s. Restart the MCP server (paf-peer mcp); its log on stderr says more.", trimPkg(err))
}
