package mcpserver

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/mark3labs/mcp-go/mcp"

	"github.com/paf-mesh/paf-mesh/relay"
)

// The stdio loop serves tools/call requests for this server's own tools
// itself: it decodes the request once, checks the arguments against the
// tool's input schema with argProblems (the words mcp-go's refusals are
// rewritten into, see explainValidation), runs the same handler mcp-go would
// run, and encodes the result once. Through mcp-go a call was decoded five
// more times (MCPServer.HandleMessage, its protocol and _meta probes, the
// request, the typed arguments), validated by a general JSON Schema
// validator, and its result built as maps and encoded twice (the result's
// MarshalJSON, then re-scanned by the response's encoder): about a quarter
// of a session's CPU on the question -> answer path of SPEC section 10.
//
// The answers are those mcp-go gives (the tests compare the two for the same
// requests). Whatever the loop does not recognise as an ordinary call of one
// of its tools goes to mcp-go as before: another jsonrpc version, an id that
// is neither a string nor a number, params with any key besides name,
// arguments and _meta, a _meta that does not decode or asks for the
// 2026-07-28 protocol (whose results mcp-go decorates), an unknown tool.

// directTool is one of this server's tools as the stdio loop calls it:
// with its arguments as JSON (run), or as raw members (runFields, for a call
// read by plainCall).
type directTool struct {
	schema    mcp.ToolInputSchema
	run       func(ctx context.Context, req mcp.CallToolRequest, args json.RawMessage) toolResult
	runFields func(ctx context.Context, req mcp.CallToolRequest, fields map[string]json.RawMessage) toolResult
}

// toolCall is a tools/call request the stdio loop serves itself.
type toolCall struct {
	id   json.RawMessage // as sent: a JSON string or number
	key  string          // its key among the calls in flight (callKey)
	name string
	args json.RawMessage // nil when absent
	// argv is args decoded as mcp-go decodes them (for argProblems).
	argv any
	// plain: read by plainCall, which leaves argv nil and sets fields (the
	// arguments' members, raw) and types (their JSON types) instead.
	plain  bool
	fields map[string]json.RawMessage
	types  map[string]string
	meta   *mcp.Meta
	tool   directTool
}

// plainCall reads line as a tools/call of one of this server's tools when it
// has the plain shape every client sends: one validating pass (json.Valid),
// and the members found without decoding (members.go), the arguments' string
// values taken as they are when they hold no escapes. It says no, and the
// line takes the general way (dispatch's envelope, then directCall), for
// anything else: a key besides jsonrpc, id, method and params (or in params
// besides name, arguments and _meta), a key written with escapes or another
// case, a key twice, an argument that is an object or an array or a number
// beyond a float64, the things directCall leaves to mcp-go. What it accepts
// is served as directCall would serve it (FuzzPlainCall).
func (s *Server) plainCall(line []byte) (call toolCall, ok bool) {
	var params []byte
	var seen [4]bool
	ok = eachMember(line, func(k, v []byte) bool {
		i := -1
		switch string(k) {
		case "jsonrpc":
			i = 0
			if string(v) != `"2.0"` {
				return false
			}
		case "id":
			i = 1
			if !idIsStringOrNumber(v) {
				return false
			}
			call.id = v
		case "method":
			i = 2
			if string(v) != `"tools/call"` {
				return false
			}
		case "params":
			i = 3
			params = v
		default:
			return false
		}
		if seen[i] {
			return false
		}
		seen[i] = true
		return true
	})
	// Validated only now, so that the other methods, which the general way
	// decodes, are not scanned once more for nothing.
	if !ok || seen != [4]bool{true, true, true, true} || !json.Valid(line) {
		return call, false
	}
	var args []byte
	var pseen [3]bool
	ok = eachMember(params, func(k, v []byte) bool {
		i := -1
		switch string(k) {
		case "name":
			i = 0
			name, ok := plainString(v)
			if !ok {
				return false
			}
			call.name = name
		case "arguments":
			i = 1
			if string(v) != "null" {
				args = v
			}
		case "_meta":
			i = 2
			if string(v) != "null" {
				var m mcp.Meta
				if json.Unmarshal(v, &m) != nil || mcp.IsModernProtocol(m.ProtocolVersion()) {
					return false
				}
				call.meta = &m
			}
		default:
			return false
		}
		if pseen[i] {
			return false
		}
		pseen[i] = true
		return true
	})
	if !ok || !pseen[0] {
		return call, false
	}
	call.tool = s.direct[call.name]
	if call.tool.runFields == nil {
		return call, false
	}
	call.fields, call.types = map[string]json.RawMessage{}, map[string]string{}
	if args != nil {
		ok = eachMember(args, func(k, v []byte) bool {
			if bytes.IndexByte(k, '\\') >= 0 || !utf8.Valid(k) {
				return false // decoded, the key would differ from its bytes
			}
			key := string(k)
			if _, twice := call.fields[key]; twice {
				return false
			}
			t, ok := scalarType(v)
			if !ok {
				return false
			}
			call.fields[key], call.types[key] = v, t
			return true
		})
		if !ok {
			return call, false
		}
	}
	call.args = args
	call.key = callKey(call.id)
	call.plain = true
	return call, true
}

// directCall says whether the request e is a tools/call that the stdio
// loop serves itself, and returns it.
func (s *Server) directCall(e *envelope) (call toolCall, ok bool) {
	if e.Method != string(mcp.MethodToolsCall) || string(e.JSONRPC) != `"2.0"` ||
		e.Result != nil || e.Error != nil || !idIsStringOrNumber(e.ID) {
		return call, false
	}
	call, ok = s.callParams(e.Params)
	call.id, call.key = e.ID, callKey(e.ID)
	return call, ok
}

// callParams decodes the params of a tools/call request; ok says whether it
// is an ordinary call of one of this server's tools, which the loop may
// serve itself.
func (s *Server) callParams(raw json.RawMessage) (call toolCall, ok bool) {
	var params map[string]json.RawMessage
	if json.Unmarshal(raw, &params) != nil || params == nil {
		return call, false
	}
	named := false
	for k, v := range params {
		switch k {
		case "name":
			if string(v) == "null" || json.Unmarshal(v, &call.name) != nil {
				return call, false
			}
			named = true
		case "arguments":
			call.args = v
		case "_meta":
			if string(v) == "null" {
				continue
			}
			var m mcp.Meta
			if json.Unmarshal(v, &m) != nil || mcp.IsModernProtocol(m.ProtocolVersion()) {
				return call, false
			}
			call.meta = &m
		default:
			return call, false
		}
	}
	call.tool = s.direct[call.name]
	if !named || call.tool.run == nil {
		return call, false
	}
	// Arguments that do not decode (a number out of range) make mcp-go
	// refuse the whole request: left to it.
	if call.args != nil && json.Unmarshal(call.args, &call.argv) != nil {
		return call, false
	}
	return call, true
}

// idIsStringOrNumber: the ids the loop answers itself (JSON-RPC allows only
// these and null; mcp-go answers the others).
func idIsStringOrNumber(id json.RawMessage) bool {
	if len(id) == 0 {
		return false
	}
	c := id[0]
	return c == '"' || c == '-' || (c >= '0' && c <= '9')
}

// callKey identifies a request id among the calls in flight, as
// notifications/cancelled names it: by value, so that 7 and 7.0 are one id.
func callKey(id json.RawMessage) string {
	// The usual ids without decoding them: what fmt prints of the string,
	// or of the float64, encoding/json decodes.
	if s, ok := plainString(id); ok {
		return "string:" + s
	}
	if plainNumber(id) {
		if x, err := strconv.ParseFloat(string(id), 64); err == nil {
			return "float64:" + strconv.FormatFloat(x, 'g', -1, 64)
		}
	}
	var v any
	if json.Unmarshal(id, &v) != nil {
		return ""
	}
	return fmt.Sprintf("%T:%v", v, v)
}

// plainNumber: b is made of the characters of a JSON number only (a valid
// JSON number, as every id the loop sees has passed a JSON decoder).
func plainNumber(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if (c < '0' || c > '9') && c != '-' && c != '+' && c != '.' && c != 'e' && c != 'E' {
			return false
		}
	}
	return true
}

// inflight is the tool calls the loop runs, by callKey, for
// notifications/cancelled.
type inflight struct {
	mu    sync.Mutex
	calls map[string]*context.CancelFunc
}

// add records cancel under key; the returned func forgets it again (unless a
// later call with the same id replaced it).
func (f *inflight) add(key string, cancel context.CancelFunc) func() {
	p := &cancel
	f.mu.Lock()
	if f.calls == nil {
		f.calls = map[string]*context.CancelFunc{}
	}
	f.calls[key] = p
	f.mu.Unlock()
	return func() {
		f.mu.Lock()
		if f.calls[key] == p {
			delete(f.calls, key)
		}
		f.mu.Unlock()
	}
}

// cancel cancels the call whose id is the requestId of a
// notifications/cancelled's params, if the loop runs it.
func (f *inflight) cancel(params json.RawMessage) {
	var p struct {
		RequestID json.RawMessage `json:"requestId"`
	}
	if json.Unmarshal(params, &p) != nil || len(p.RequestID) == 0 {
		return
	}
	key := callKey(p.RequestID)
	f.mu.Lock()
	c := f.calls[key]
	delete(f.calls, key)
	f.mu.Unlock()
	if c != nil {
		(*c)()
	}
}

// callTool runs call and writes its answer. ctx is cancelled by
// notifications/cancelled for the call's id (serve registers it).
func (c *stdioConn) callTool(ctx context.Context, call toolCall) {
	gate := &pushGate{}
	defer c.s.release(gate) // after the result is written (a no-op after takeHeld)
	res, panicked := c.runTool(context.WithValue(ctx, pushGateKey{}, gate), call)
	if panicked != nil {
		c.s.log.Error("mcp: panic in a tool handler", "tool", call.name, "panic", panicked)
		var id any
		_ = json.Unmarshal(call.id, &id)
		// As mcp-go's WithRecovery answers.
		c.write(errorResponse(id, mcp.INTERNAL_ERROR, fmt.Sprintf("panic recovered in %s tool handler: %v", call.name, panicked)))
		return
	}
	buf := bufPool.Get().(*bytes.Buffer)
	defer bufPool.Put(buf)
	buf.Reset()
	if err := appendResponse(buf, call.id, res); err != nil {
		c.s.log.Error("mcp: encode a tool result", "tool", call.name, "err", err)
		var id any
		_ = json.Unmarshal(call.id, &id)
		c.write(errorResponse(id, mcp.INTERNAL_ERROR, "could not encode the result of "+call.name))
		return
	}
	// The messages the result returns that were not pushed yet are pushed
	// now, behind it and in the same write. Before the client is ready
	// (notifications/initialized) they are left to pushLoop (release), which
	// pushes nothing before then; mcp-go sends no notification to a session
	// that is not initialized.
	if held := c.takeHeldIfReady(gate); len(held) > 0 {
		enc := json.NewEncoder(buf)
		for i := range held {
			if err := enc.Encode(newChannelNote(&held[i])); err != nil {
				c.s.log.Error("mcp: encode a channel notification", "err", err)
			}
		}
	}
	c.writeBytes(buf.Bytes())
}

func (c *stdioConn) takeHeldIfReady(g *pushGate) []relay.Message {
	select {
	case <-c.s.clientReady:
	default:
		return nil
	}
	if !c.sess.Initialized() {
		return nil
	}
	return c.s.takeHeld(g)
}

func (c *stdioConn) runTool(ctx context.Context, call toolCall) (res toolResult, panicked any) {
	defer func() { panicked = recover() }()
	var problems []string
	if call.plain {
		problems = typeProblems(call.tool.schema, call.types)
	} else {
		problems = argProblems(call.tool.schema, call.argv)
	}
	if len(problems) > 0 {
		return argError(call.name, "Invalid arguments: "+strings.Join(problems, "; ")), nil
	}
	var req mcp.CallToolRequest
	req.Method = string(mcp.MethodToolsCall)
	req.Params.Name = call.name
	req.Params.Meta = call.meta
	req.Params.RawArguments = call.args
	if call.plain {
		return call.tool.runFields(ctx, req, call.fields), nil
	}
	return call.tool.run(ctx, req, call.args), nil
}

// appendResponse writes the JSON-RPC response carrying r, as mcp-go encodes
// an mcp.CallToolResult (keys in the order of its map: content, isError,
// structuredContent), and a newline.
func appendResponse(buf *bytes.Buffer, id json.RawMessage, r toolResult) error {
	buf.WriteString(`{"jsonrpc":"2.0","id":`)
	buf.Write(id)
	buf.WriteString(`,"result":{"content":[{"type":"text","text":`)
	enc := json.NewEncoder(buf)
	if err := enc.Encode(r.text); err != nil {
		return err
	}
	trimNewline(buf)
	buf.WriteString(`}]`)
	if r.isError {
		buf.WriteString(`,"isError":true`)
	}
	if r.data != nil {
		buf.WriteString(`,"structuredContent":`)
		if err := enc.Encode(r.data); err != nil {
			return err
		}
		trimNewline(buf)
	}
	buf.WriteString("}}\n")
	return nil
}

// trimNewline drops the newline json.Encoder ends each value with.
func trimNewline(buf *bytes.Buffer) { buf.Truncate(buf.Len() - 1) }
