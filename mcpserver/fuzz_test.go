package mcpserver

import (
	"context"
	"encoding/json"
	"log/slog"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/paf-mesh/paf-mesh/relay"
)

// fuzzServer is a Server over a fake mesh, named "me", with a known
// conversation c-known with "alice"; nothing runs in the background.
func fuzzServer(f *testing.F, cfg Config) (*Server, *fakeMesh) {
	f.Helper()
	fm := newFakeMesh()
	p := fm.peer()
	if err := p.Claim(context.Background(), "me"); err != nil {
		f.Fatal(err)
	}
	cfg.Backend = p
	cfg.Logger = slog.New(slog.DiscardHandler)
	s := New(cfg)
	now := time.Now()
	s.convs["c-known"] = &conversation{ID: "c-known", Peer: "alice", Intent: "the intent", Caller: true, OpenedAt: now, LastActivity: now}
	return s, fm
}

var metaKey = regexp.MustCompile(`^[A-Za-z0-9_]+$`)

// FuzzIncoming feeds messages as another peer could make them (the relay
// validates names and UTF-8 on the wire, but this side does not rely on it)
// through what the server does with an arrival: classify, apply to the
// conversations, render for the model, and push.
func FuzzIncoming(f *testing.F) {
	seeds := []struct {
		from, to, conv, intent, body, fwd string
		kind                              byte
		bcast                             bool
	}{
		{"alice", "me", "c-known", "the intent", "an answer", "", byte(relay.KindReply), false},
		{"bob", "me", "c-new", "a new intent", openingBody("bob", "c-new", "a new intent"), "", byte(relay.KindMessage), false},
		{"alice", "me", "c-known", "a changed intent", "refocus", "", byte(relay.KindRefocus), false},
		{"alice", "me", "c-known", "", "bye", "", byte(relay.KindEnd), false},
		{"mallory", "me", "c-known", "stolen", "not yours", "", byte(relay.KindReply), false},
		{"carol", "me", "", "", "to everyone", "", byte(relay.KindMessage), true},
		{"dave", "me", "", "", "forwarded", "old-me", byte(relay.KindMessage), false},
		{"holder", "me", "", "", "expired", "", byte(relay.KindSystem), false},
		{"", "", "", "", "", "", 0, false},
		{"x", "me", "c-\x00\xff", "\xff\xfe", "bad \xc3\x28 utf8", "", 200, false},
		{"ünïcode", "me", strings.Repeat("c", 100), strings.Repeat("é", 3000), "💥\n\n", "", byte(relay.KindMessage), false},
	}
	for _, sd := range seeds {
		f.Add(sd.from, sd.to, sd.conv, sd.intent, sd.body, sd.fwd, sd.kind, sd.bcast)
	}
	s, fm := fuzzServer(f, testConfigF())
	f.Fuzz(func(t *testing.T, from, to, conv, intent, body, fwd string, kind byte, bcast bool) {
		// Every input starts from the same state: one conversation, with
		// alice, as the caller.
		now := time.Now()
		s.mu.Lock()
		s.convs = map[string]*conversation{"c-known": {ID: "c-known", Peer: "alice", Intent: "the intent", Caller: true, OpenedAt: now, LastActivity: now}}
		s.latest = ""
		s.mu.Unlock()
		m := relay.Message{
			From: from, To: "me", ForwardedFrom: fwd, Kind: relay.Kind(kind), Body: body,
			ConversationID: conv, Intent: intent, Broadcast: bcast, File: to,
		}
		fm.mu.Lock()
		ib := fm.inboxLocked("me")
		m.ID = "01FUZZ"
		m.SentAt = time.Now()
		ib.msgs = append(ib.msgs[:0], m)
		fm.mu.Unlock()

		params := channelParams(m)
		meta := params["meta"].(map[string]any)
		for k, v := range meta {
			if !metaKey.MatchString(k) {
				t.Fatalf("channel meta key %q", k)
			}
			if _, ok := v.(string); !ok {
				t.Fatalf("channel meta %s is %T", k, v)
			}
		}
		if _, err := json.Marshal(params); err != nil {
			t.Fatalf("channel params do not encode: %v", err)
		}

		items, err := s.take(context.Background(), "me", pickAll, nil)
		if err != nil || len(items) != 1 {
			t.Fatalf("take: %v %v", items, err)
		}
		r := s.messagesReply(items)
		if _, err := json.Marshal(r.data); err != nil {
			t.Fatalf("structured content does not encode: %v", err)
		}
		valid := utf8.ValidString(from) && utf8.ValidString(conv) && utf8.ValidString(intent) &&
			utf8.ValidString(body) && utf8.ValidString(fwd) && utf8.ValidString(to)
		if valid && !utf8.ValidString(r.text) {
			t.Fatalf("the text for the model is not UTF-8: %q", r.text)
		}
		if !strings.Contains(r.text, body) {
			t.Fatalf("the text does not carry the body")
		}
		// The known conversation is only ever changed by its peer.
		s.mu.Lock()
		if c := s.convs["c-known"]; c == nil || c.Peer != "alice" {
			t.Fatalf("a message from %q took over the conversation with alice", from)
		}
		s.mu.Unlock()
	})
}

func testConfigF() Config {
	cfg := DefaultConfig()
	cfg.MaxConversations = 8
	// Blocking tools return at once: every explicit timeout is out of
	// range, and the default is a millisecond.
	cfg.DefaultWait = time.Millisecond
	cfg.MaxWait = time.Millisecond
	cfg.OpeningGrace = -1
	cfg.JoinWait = time.Second
	return cfg
}

// FuzzToolCall sends tools/call requests with arbitrary arguments, as a
// client (or a model's bad JSON) could, and checks that each gets a
// well-formed JSON-RPC answer.
func FuzzToolCall(f *testing.F) {
	for _, sd := range []struct {
		tool uint8
		args string
	}{
		{0, `{"name":"me2","description":"d"}`},
		{3, `{"to":"alice","message":"hi"}`},
		{3, `{"to":"alice","message":"hi","conversation_id":"c-known"}`},
		{3, `{"to":5}`},
		{6, `{"timeout_seconds":1e308}`},
		{6, `{"timeout_seconds":"NaN"}`},
		{7, `{"target_session":"alice","intent":"why?"}`},
		{8, `{"conversation_id":"c-known"}`},
		{9, `{"message":"answer"}`},
		{10, `{"new_intent":"other"}`},
		{11, `{}`},
		{2, `null`},
		{5, `[]`},
		{1, `{"new_name":"` + strings.Repeat("a", 70) + `"}`},
		{4, `{"message":"\u0000\ud800"}`},
		{255, `{}`},
	} {
		f.Add(sd.tool, sd.args)
	}
	s, _ := fuzzServer(f, testConfigF())
	f.Fuzz(func(t *testing.T, tool uint8, args string) {
		name := "paf_unknown"
		if int(tool) < len(toolNames) {
			name = toolNames[tool]
		}
		req, err := json.Marshal(map[string]any{
			"jsonrpc": "2.0", "id": 1, "method": "tools/call",
			"params": map[string]any{"name": name, "arguments": json.RawMessage(args)},
		})
		if err != nil {
			return // args is not JSON: no client could send it
		}
		resp := s.mcp.HandleMessage(context.Background(), req)
		b, err := json.Marshal(resp)
		if err != nil {
			t.Fatalf("the answer does not encode: %v", err)
		}
		var out struct {
			JSONRPC string          `json:"jsonrpc"`
			Result  json.RawMessage `json:"result"`
			Error   json.RawMessage `json:"error"`
		}
		if err := json.Unmarshal(b, &out); err != nil || out.JSONRPC != "2.0" || (out.Result == nil) == (out.Error == nil) {
			t.Fatalf("not a JSON-RPC answer: %s", b)
		}
	})
}
