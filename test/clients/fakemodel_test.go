package clients

// A scripted fake model API on loopback, speaking just enough of the three
// APIs the clients use: Anthropic Messages (Claude Code), Gemini
// generateContent / streamGenerateContent (Gemini CLI) and the OpenAI
// Responses API (Codex), each with streaming. Every session of a client gets
// its own base URL, http://127.0.0.1:PORT/s/<session>, so the server knows
// whose script answers a request. Each request is decoded into one common
// form (the tools offered, the turns so far with tool calls and results, the
// raw body) and recorded, so that tests assert on what the model was shown.

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// Call is a tool call the model makes (or made earlier in the history).
type Call struct {
	ID   string
	Name string
	Args map[string]any
}

// Result is a tool result as the client shows it to the model: Content is the
// text the model reads (for JSON content, the JSON).
type Result struct {
	ID      string
	Name    string // Gemini names the function; elsewhere found from the call
	Content string
}

// Turn is one message of the history, in any of the three APIs.
type Turn struct {
	Role    string // "user" or "assistant"
	Text    string
	Calls   []Call
	Results []Result
}

// Request is one decoded model request.
type Request struct {
	API     string // "anthropic", "gemini", "openai"
	Path    string
	Raw     string
	Tools   []string
	System  string
	Turns   []Turn
	Session string
	At      time.Time // when it arrived
}

// Side reports whether this is a client's side request (a title, a
// classifier, a check) rather than the agent loop: those offer no tools.
func (r *Request) Side() bool { return len(r.Tools) == 0 }

// Tool returns the full name of the offered tool whose name ends with
// suffix (clients prefix MCP tools: mcp__paf__paf_send, paf__paf_send...).
func (r *Request) Tool(suffix string) string {
	for _, t := range r.Tools {
		_, short, _ := strings.Cut(t, "\x00") // a Codex namespace's tool: "ns\x00name"
		if short == "" {
			short = t
		}
		if short == suffix || strings.HasSuffix(short, "_"+suffix) {
			return t
		}
	}
	return ""
}

// Results is every tool result in the history, oldest first, with Name
// filled from the matching call where the API leaves it out.
func (r *Request) Results() []Result {
	names := map[string]string{}
	var out []Result
	for _, t := range r.Turns {
		for _, c := range t.Calls {
			names[c.ID] = c.Name
		}
		for _, res := range t.Results {
			if res.Name == "" {
				res.Name = names[res.ID]
			}
			out = append(out, res)
		}
	}
	return out
}

// Last returns the newest tool result, if any.
func (r *Request) Last() (Result, bool) {
	rs := r.Results()
	if len(rs) == 0 {
		return Result{}, false
	}
	return rs[len(rs)-1], true
}

// LastUser is the text of the newest user turn that is not only tool results.
func (r *Request) LastUser() string {
	for i := len(r.Turns) - 1; i >= 0; i-- {
		if t := r.Turns[i]; t.Role == "user" && t.Text != "" {
			return t.Text
		}
	}
	return ""
}

// Reply is what the script answers: a tool call, or else a final text.
type Reply struct {
	Call *Call
	Text string
}

// CallTool is a Reply calling the offered tool named by suffix.
func CallTool(r *Request, suffix string, args map[string]any) Reply {
	name := r.Tool(suffix)
	if name == "" {
		name = suffix // not offered: the client will say so, and the test sees it
	}
	return Reply{Call: &Call{Name: name, Args: args}}
}

// Say is a Reply with a final text.
func Say(text string) Reply { return Reply{Text: text} }

// Script answers a session's agent requests. It may block (a test can make
// it wait for something) and runs on the request's goroutine.
type Script func(r *Request) Reply

// FakeModel is the server.
type FakeModel struct {
	t   testing.TB
	ln  net.Listener
	srv *http.Server

	mu       sync.Mutex
	scripts  map[string]Script
	requests map[string][]*Request
	seq      int
	changed  chan struct{} // closed and replaced on every recorded request
}

// NewFakeModel starts the server on 127.0.0.1 with a free port; it stops
// when the test ends.
func NewFakeModel(t testing.TB) *FakeModel {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &FakeModel{t: t, ln: ln, scripts: map[string]Script{}, requests: map[string][]*Request{}, changed: make(chan struct{})}
	f.srv = &http.Server{Handler: http.HandlerFunc(f.serve)}
	go func() { _ = f.srv.Serve(ln) }()
	t.Cleanup(func() { _ = f.srv.Close() })
	return f
}

// Session registers a script and returns the base URL of that session.
func (f *FakeModel) Session(name string, s Script) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.scripts[name] = s
	return fmt.Sprintf("http://%s/s/%s", f.ln.Addr(), name)
}

// Requests returns the session's recorded requests (side ones included).
func (f *FakeModel) Requests(session string) []*Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*Request(nil), f.requests[session]...)
}

// Sessions returns the names of the sessions that made requests, sorted.
func (f *FakeModel) Sessions() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Sorted(maps.Keys(f.requests))
}

// AgentRequests returns the session's requests that offered tools.
func (f *FakeModel) AgentRequests(session string) []*Request {
	var out []*Request
	for _, r := range f.Requests(session) {
		if !r.Side() {
			out = append(out, r)
		}
	}
	return out
}

// Dump is every request of a session, for a failure message.
func (f *FakeModel) Dump(session string) string {
	var b strings.Builder
	for i, r := range f.Requests(session) {
		fmt.Fprintf(&b, "--- request %d at %s %s %s tools=%d\n", i, r.At.Format("15:04:05.000"), r.API, r.Path, len(r.Tools))
		for _, t := range r.Turns {
			fmt.Fprintf(&b, "  [%s] %q", t.Role, clip(t.Text, 400))
			for _, c := range t.Calls {
				fmt.Fprintf(&b, " call %s %v", c.Name, c.Args)
			}
			for _, res := range t.Results {
				fmt.Fprintf(&b, " result %s %q", res.ID, clip(res.Content, 600))
			}
			b.WriteString("\n")
		}
	}
	return b.String()
}

func clip(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

func (f *FakeModel) record(r *Request) Script {
	f.mu.Lock()
	defer f.mu.Unlock()
	r.At = time.Now()
	f.requests[r.Session] = append(f.requests[r.Session], r)
	close(f.changed)
	f.changed = make(chan struct{})
	return f.scripts[r.Session]
}

func (f *FakeModel) nextID(prefix string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.seq++
	return fmt.Sprintf("%s_%d", prefix, f.seq)
}

func (f *FakeModel) serve(w http.ResponseWriter, hr *http.Request) {
	rest, ok := strings.CutPrefix(hr.URL.Path, "/s/")
	if !ok {
		http.Error(w, "no session in path", http.StatusNotFound)
		return
	}
	session, path, _ := strings.Cut(rest, "/")
	path = "/" + path
	body, err := io.ReadAll(hr.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if hr.Method != http.MethodPost {
		// Model lists and the like: nothing a test relies on.
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"data":[],"models":[]}`)
		return
	}
	switch {
	case strings.HasSuffix(path, "/messages/count_tokens"):
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"input_tokens":100}`)
	case strings.HasSuffix(path, "/messages"):
		f.anthropic(w, session, path, body)
	case strings.Contains(path, ":countTokens"):
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"totalTokens":100}`)
	case strings.Contains(path, ":streamGenerateContent"), strings.Contains(path, ":generateContent"):
		f.gemini(w, session, path, body)
	case strings.HasSuffix(path, "/responses"):
		f.openai(w, session, path, body)
	default:
		f.t.Logf("fake model: unexpected %s %s", hr.Method, hr.URL.Path)
		http.Error(w, "unexpected path "+path, http.StatusNotFound)
	}
}

// answer records r and runs the session's script (side requests get a
// plain text).
func (f *FakeModel) answer(r *Request) Reply {
	s := f.record(r)
	if r.Side() || s == nil {
		return Say("ok")
	}
	return s(r)
}

func sse(w http.ResponseWriter) func(event string, data any) {
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	fl, _ := w.(http.Flusher)
	return func(event string, data any) {
		b, _ := json.Marshal(data)
		if event != "" {
			fmt.Fprintf(w, "event: %s\n", event)
		}
		fmt.Fprintf(w, "data: %s\n\n", b)
		if fl != nil {
			fl.Flush()
		}
	}
}

// contentText flattens a content value that is a string, or a list of
// blocks with text, into the text the model reads.
func contentText(v any) string {
	switch c := v.(type) {
	case string:
		return c
	case []any:
		var parts []string
		for _, b := range c {
			m, _ := b.(map[string]any)
			if s, ok := m["text"].(string); ok {
				parts = append(parts, s)
			} else if m != nil {
				bs, _ := json.Marshal(m)
				parts = append(parts, string(bs))
			}
		}
		return strings.Join(parts, "\n")
	case nil:
		return ""
	default:
		bs, _ := json.Marshal(c)
		return string(bs)
	}
}

// ---- Anthropic Messages (Claude Code) ----

func (f *FakeModel) anthropic(w http.ResponseWriter, session, path string, body []byte) {
	var req struct {
		System   any `json:"system"`
		Stream   bool
		Tools    []struct{ Name string }
		Messages []struct {
			Role    string
			Content any
		}
	}
	if err := json.Unmarshal(body, &req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	r := &Request{API: "anthropic", Path: path, Raw: string(body), Session: session, System: contentText(req.System)}
	for _, t := range req.Tools {
		r.Tools = append(r.Tools, t.Name)
	}
	for _, m := range req.Messages {
		t := Turn{Role: m.Role}
		blocks, isList := m.Content.([]any)
		if !isList {
			t.Text = contentText(m.Content)
		}
		var texts []string
		for _, b := range blocks {
			bm, _ := b.(map[string]any)
			switch bm["type"] {
			case "text":
				s, _ := bm["text"].(string)
				texts = append(texts, s)
			case "tool_use":
				id, _ := bm["id"].(string)
				name, _ := bm["name"].(string)
				args, _ := bm["input"].(map[string]any)
				t.Calls = append(t.Calls, Call{ID: id, Name: name, Args: args})
			case "tool_result":
				id, _ := bm["tool_use_id"].(string)
				t.Results = append(t.Results, Result{ID: id, Content: contentText(bm["content"])})
			}
		}
		if isList {
			t.Text = strings.Join(texts, "\n")
		}
		r.Turns = append(r.Turns, t)
	}
	rep := f.answer(r)
	msgID := f.nextID("msg")
	var block map[string]any
	stop := "end_turn"
	var argsJSON []byte
	if rep.Call != nil {
		stop = "tool_use"
		argsJSON, _ = json.Marshal(orEmpty(rep.Call.Args))
		block = map[string]any{"type": "tool_use", "id": f.nextID("toolu"), "name": rep.Call.Name, "input": map[string]any{}}
	} else {
		block = map[string]any{"type": "text", "text": ""}
	}
	usage := map[string]any{"input_tokens": 100, "output_tokens": 10}
	if !req.Stream {
		if rep.Call != nil {
			block["input"] = orEmpty(rep.Call.Args)
		} else {
			block["text"] = rep.Text
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"id": msgID, "type": "message", "role": "assistant", "model": "claude-fake",
			"content": []any{block}, "stop_reason": stop, "stop_sequence": nil, "usage": usage})
		return
	}
	send := sse(w)
	send("message_start", map[string]any{"type": "message_start", "message": map[string]any{"id": msgID, "type": "message",
		"role": "assistant", "model": "claude-fake", "content": []any{}, "stop_reason": nil, "stop_sequence": nil,
		"usage": map[string]any{"input_tokens": 100, "output_tokens": 1}}})
	send("content_block_start", map[string]any{"type": "content_block_start", "index": 0, "content_block": block})
	if rep.Call != nil {
		send("content_block_delta", map[string]any{"type": "content_block_delta", "index": 0,
			"delta": map[string]any{"type": "input_json_delta", "partial_json": string(argsJSON)}})
	} else {
		send("content_block_delta", map[string]any{"type": "content_block_delta", "index": 0,
			"delta": map[string]any{"type": "text_delta", "text": rep.Text}})
	}
	send("content_block_stop", map[string]any{"type": "content_block_stop", "index": 0})
	send("message_delta", map[string]any{"type": "message_delta", "delta": map[string]any{"stop_reason": stop, "stop_sequence": nil},
		"usage": map[string]any{"output_tokens": 10}})
	send("message_stop", map[string]any{"type": "message_stop"})
}

func orEmpty(m map[string]any) map[string]any {
	if m == nil {
		return map[string]any{}
	}
	return m
}

// ---- Gemini (Gemini CLI) ----

func (f *FakeModel) gemini(w http.ResponseWriter, session, path string, body []byte) {
	var req struct {
		Contents []struct {
			Role  string
			Parts []map[string]any
		}
		SystemInstruction *struct{ Parts []map[string]any } `json:"systemInstruction"`
		Tools             []struct {
			FunctionDeclarations []struct{ Name string } `json:"functionDeclarations"`
		}
		GenerationConfig map[string]any `json:"generationConfig"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	r := &Request{API: "gemini", Path: path, Raw: string(body), Session: session}
	if req.SystemInstruction != nil {
		for _, p := range req.SystemInstruction.Parts {
			s, _ := p["text"].(string)
			r.System += s
		}
	}
	for _, t := range req.Tools {
		for _, d := range t.FunctionDeclarations {
			r.Tools = append(r.Tools, d.Name)
		}
	}
	for _, c := range req.Contents {
		t := Turn{Role: "user"}
		if c.Role == "model" {
			t.Role = "assistant"
		}
		var texts []string
		for _, p := range c.Parts {
			if s, ok := p["text"].(string); ok {
				texts = append(texts, s)
			}
			if fc, ok := p["functionCall"].(map[string]any); ok {
				name, _ := fc["name"].(string)
				id, _ := fc["id"].(string)
				args, _ := fc["args"].(map[string]any)
				t.Calls = append(t.Calls, Call{ID: id, Name: name, Args: args})
			}
			if fr, ok := p["functionResponse"].(map[string]any); ok {
				name, _ := fr["name"].(string)
				id, _ := fr["id"].(string)
				b, _ := json.Marshal(fr["response"])
				t.Results = append(t.Results, Result{ID: id, Name: name, Content: string(b)})
			}
		}
		t.Text = strings.Join(texts, "\n")
		r.Turns = append(r.Turns, t)
	}
	var rep Reply
	if mime, _ := req.GenerationConfig["responseMimeType"].(string); mime == "application/json" {
		f.record(r)
		// A side check wanting JSON (e.g. "who speaks next"): the user does.
		rep = Say(`{"reasoning":"the task is done","next_speaker":"user"}`)
	} else {
		rep = f.answer(r)
	}
	var part map[string]any
	if rep.Call != nil {
		part = map[string]any{"functionCall": map[string]any{"name": rep.Call.Name, "args": orEmpty(rep.Call.Args)}}
	} else {
		part = map[string]any{"text": rep.Text}
	}
	resp := map[string]any{
		"candidates":    []any{map[string]any{"content": map[string]any{"role": "model", "parts": []any{part}}, "finishReason": "STOP", "index": 0}},
		"usageMetadata": map[string]any{"promptTokenCount": 100, "candidatesTokenCount": 10, "totalTokenCount": 110},
		"modelVersion":  "gemini-fake",
	}
	if strings.Contains(path, ":streamGenerateContent") {
		sse(w)("", resp)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(resp)
}

// ---- OpenAI Responses (Codex) ----

func (f *FakeModel) openai(w http.ResponseWriter, session, path string, body []byte) {
	var req struct {
		Instructions string
		Tools        []map[string]any
		Input        []map[string]any
	}
	if err := json.Unmarshal(body, &req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	r := &Request{API: "openai", Path: path, Raw: string(body), Session: session, System: req.Instructions}
	for _, t := range req.Tools {
		r.Tools = append(r.Tools, toolNames(t)...)
	}
	for _, it := range req.Input {
		switch it["type"] {
		case "message", nil:
			role, _ := it["role"].(string)
			if role != "assistant" {
				role = "user"
			}
			r.Turns = append(r.Turns, Turn{Role: role, Text: contentText(it["content"])})
		case "function_call":
			name, _ := it["name"].(string)
			id, _ := it["call_id"].(string)
			var args map[string]any
			if s, ok := it["arguments"].(string); ok {
				_ = json.Unmarshal([]byte(s), &args)
			}
			r.Turns = append(r.Turns, Turn{Role: "assistant", Calls: []Call{{ID: id, Name: name, Args: args}}})
		case "function_call_output":
			id, _ := it["call_id"].(string)
			r.Turns = append(r.Turns, Turn{Role: "user", Results: []Result{{ID: id, Content: contentText(it["output"])}}})
		}
	}
	rep := f.answer(r)
	respID := f.nextID("resp")
	var item map[string]any
	if rep.Call != nil {
		args, _ := json.Marshal(orEmpty(rep.Call.Args))
		name, namespace := rep.Call.Name, ""
		if ns, tool, ok := strings.Cut(name, "\x00"); ok {
			namespace, name = ns, tool
		}
		item = map[string]any{"type": "function_call", "id": f.nextID("fc"), "call_id": f.nextID("call"), "name": name, "arguments": string(args), "status": "completed"}
		if namespace != "" {
			item["namespace"] = namespace
		}
	} else {
		item = map[string]any{"type": "message", "role": "assistant", "id": f.nextID("msg"), "status": "completed",
			"content": []any{map[string]any{"type": "output_text", "text": rep.Text, "annotations": []any{}}}}
	}
	send := sse(w)
	send("response.created", map[string]any{"type": "response.created", "response": map[string]any{"id": respID}})
	send("response.output_item.done", map[string]any{"type": "response.output_item.done", "output_index": 0, "item": item})
	send("response.completed", map[string]any{"type": "response.completed", "response": map[string]any{"id": respID,
		"usage": map[string]any{"input_tokens": 100, "input_tokens_details": nil, "output_tokens": 10, "output_tokens_details": nil, "total_tokens": 110}}})
}

// toolNames reads the names a Responses API tool entry offers: a function
// has a name; a namespace (how newer Codex groups MCP tools) holds several.
func toolNames(t map[string]any) []string {
	if n, ok := t["name"].(string); ok && t["type"] == "function" {
		return []string{n}
	}
	var out []string
	if tools, ok := t["tools"].([]any); ok {
		ns, _ := t["name"].(string)
		for _, x := range tools {
			m, _ := x.(map[string]any)
			if n, ok := m["name"].(string); ok {
				out = append(out, ns+"\x00"+n)
			}
		}
	}
	return out
}
