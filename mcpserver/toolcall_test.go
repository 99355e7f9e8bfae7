package mcpserver

import (
	"context"
	"encoding/json"
	"log/slog"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
)

// twinServer is a Server over a fake mesh of its own, named "me", with a
// conversation c-known with "alice" and a peer "alice" online; nothing runs
// in the background. Two of them, given the same calls, answer alike.
func twinServer(tb testing.TB) *Server {
	tb.Helper()
	fm := newFakeMesh()
	alice := fm.peer()
	if err := alice.Claim(context.Background(), "alice"); err != nil {
		tb.Fatal(err)
	}
	p := fm.peer()
	if err := p.Claim(context.Background(), "me"); err != nil {
		tb.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.Backend = p
	cfg.Logger = slog.New(slog.DiscardHandler)
	s := New(cfg)
	s.joined.Store(true)
	now := time.Now()
	s.convs["c-known"] = &conversation{ID: "c-known", Peer: "alice", Intent: "the intent", Caller: true, OpenedAt: now, LastActivity: now}
	return s
}

// answer serves one line on s as the stdio loop does (direct) or through
// mcp-go's HandleMessage alone (!direct), and returns what was written. A
// call of a blocking tool gets a context that has ended, so that it returns
// at once (alike on both sides).
func answer(tb testing.TB, s *Server, line string, direct bool) string {
	tb.Helper()
	sess := &stdioSession{notes: make(chan mcp.JSONRPCNotification, notificationQueue)}
	ctx, cancel := context.WithCancel(s.mcp.WithContext(context.Background(), sess))
	defer cancel()
	if n := toolOf(line); n == "paf_listen" || n == "paf_wait_response" {
		cancel()
	}
	var out syncBuffer
	c := newStdioConn(s, sess, &out, 4)
	if direct {
		c.dispatch(ctx, []byte(line))
		c.reqs.Wait()
		c.endWorkers()
	} else {
		c.handle(ctx, nil, []byte(line))
	}
	return out.String()
}

// toolOf is the tool a tools/call line names, as mcp-go reads it.
func toolOf(line string) string {
	var req struct {
		Params struct {
			Name string `json:"name"`
		} `json:"params"`
	}
	_ = json.Unmarshal([]byte(line), &req)
	return req.Params.Name
}

func toolLine(id, params string) string {
	return `{"jsonrpc":"2.0","id":` + id + `,"method":"tools/call","params":` + params + `}`
}

// TestDirectToolCallsAnswerAsMCPGo: the tool calls the stdio loop serves
// itself get, byte for byte, the answers mcp-go gives (results, argument
// errors, tool errors), and the requests it leaves to mcp-go are left.
func TestDirectToolCallsAnswerAsMCPGo(t *testing.T) {
	cases := []struct {
		name   string
		line   string
		direct bool // served by the loop itself
	}{
		{"check", toolLine("1", `{"name":"paf_check","arguments":{}}`), true},
		{"check, no arguments", toolLine("2", `{"name":"paf_check"}`), true},
		{"check, null arguments", toolLine("3", `{"name":"paf_check","arguments":null}`), true},
		{"string id", toolLine(`"a-b"`, `{"name":"paf_check","arguments":{}}`), true},
		{"negative id", toolLine("-4", `{"name":"paf_check","arguments":{}}`), true},
		{"progress token", toolLine("5", `{"name":"paf_check","arguments":{},"_meta":{"progressToken":"t1","x":1}}`), true},
		{"null _meta", toolLine("6", `{"name":"paf_check","arguments":{},"_meta":null}`), true},
		{"unknown argument", toolLine("7", `{"name":"paf_check","arguments":{"bogus":1,"also":"x"}}`), true},
		{"missing required", toolLine("8", `{"name":"paf_send","arguments":{"to":"alice"}}`), true},
		{"wrong types", toolLine("9", `{"name":"paf_send","arguments":{"to":5,"message":true,"my_name":null}}`), true},
		{"everything wrong", toolLine("10", `{"name":"paf_send","arguments":{"message":[1],"zzz":{}}}`), true},
		{"arguments a string", toolLine("11", `{"name":"paf_send","arguments":"to alice"}`), true},
		{"arguments an array", toolLine("12", `{"name":"paf_register","arguments":["me"]}`), true},
		{"number for a number", toolLine("13", `{"name":"paf_listen","arguments":{"timeout_seconds":"10"}}`), true},
		{"timeout out of range", toolLine("14", `{"name":"paf_listen","arguments":{"timeout_seconds":0}}`), true},
		{"listen, cancelled", toolLine("15", `{"name":"paf_listen","arguments":{"timeout_seconds":1.5}}`), true},
		{"wait, cancelled", toolLine("16", `{"name":"paf_wait_response","arguments":{"conversation_id":"c-known"}}`), true},
		{"send in a conversation", toolLine("17", `{"name":"paf_send","arguments":{"to":"alice","message":"<hello> & \u2028 é 💥"}}`), true},
		{"send to self", toolLine("18", `{"name":"paf_send","arguments":{"to":"me","message":"x"}}`), true},
		{"send, bad name", toolLine("19", `{"name":"paf_send","arguments":{"to":"Not A Name!","message":"x"}}`), true},
		{"send, empty", toolLine("20", `{"name":"paf_send","arguments":{"to":"bob","message":""}}`), true},
		{"send, stored", toolLine("21", `{"name":"paf_send","arguments":{"to":"bob","message":"later"}}`), true},
		{"register taken", toolLine("22", `{"name":"paf_register","arguments":{"name":"alice"}}`), true},
		{"register, html in the name", toolLine("23", `{"name":"paf_register","arguments":{"name":"<b>"}}`), true},
		{"broadcast", toolLine("24", `{"name":"paf_broadcast","arguments":{"message":"all"}}`), true},
		{"respond", toolLine("25", `{"name":"paf_respond","arguments":{"message":"x","conversation_id":"nope"}}`), true},
		{"refocus", toolLine("26", `{"name":"paf_refocus","arguments":{"new_intent":"y","conversation_id":"c-known"}}`), true},
		{"end one", toolLine("27", `{"name":"paf_end_session","arguments":{"conversation_id":"c-known"}}`), true},
		{"wait, all ended", toolLine("28", `{"name":"paf_wait_response","arguments":{}}`), true},
		{"rename", toolLine("29", `{"name":"paf_rename","arguments":{"new_name":"me2"}}`), true},
		{"check, renamed", toolLine("30", `{"name":"paf_check","arguments":{}}`), true},
		{"register again", toolLine("31", `{"name":"paf_register","arguments":{"name":"me3","description":"d"}}`), true},

		// Left to mcp-go (both sides answer through it).
		{"unknown tool", toolLine("40", `{"name":"paf_nope","arguments":{}}`), false},
		{"name not a string", toolLine("41", `{"name":5}`), false},
		{"no name", toolLine("42", `{"arguments":{}}`), false},
		{"no params", `{"jsonrpc":"2.0","id":43,"method":"tools/call"}`, false},
		{"params not an object", toolLine("44", `[1]`), false},
		{"another params key", toolLine("45", `{"name":"paf_check","arguments":{},"task":{}}`), false},
		{"_meta not an object", toolLine("46", `{"name":"paf_check","_meta":"x"}`), false},
		{"modern protocol", toolLine("47", `{"name":"paf_check","_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}`), false},
		{"jsonrpc 1.0", `{"jsonrpc":"1.0","id":48,"method":"tools/call","params":{"name":"paf_check"}}`, false},
		{"id an object", toolLine(`{"a":1}`, `{"name":"paf_check"}`), false},
		{"id true", toolLine(`true`, `{"name":"paf_check"}`), false},
		{"with a result", `{"jsonrpc":"2.0","id":49,"method":"tools/call","result":{},"params":{"name":"paf_check"}}`, false},
	}
	direct, ref := twinServer(t), twinServer(t)
	for _, c := range cases {
		var e envelope
		if err := json.Unmarshal([]byte(c.line), &e); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if _, ok := direct.directCall(&e); ok != c.direct {
			t.Errorf("%s: served by the loop itself: %v, want %v", c.name, ok, c.direct)
		}
		got, want := answer(t, direct, c.line, true), answer(t, ref, c.line, false)
		if got != want {
			t.Errorf("%s:\n got %s\nwant %s", c.name, got, want)
		}
		if got != "" && (!strings.HasSuffix(got, "}\n") || strings.Count(got, "\n") != 1) {
			t.Errorf("%s: not one line: %q", c.name, got)
		}
	}
}

// TestDirectToolCallCancelled: notifications/cancelled ends a blocked call
// that the loop serves itself, which answers that nothing was marked read;
// a cancellation of an id not in flight changes nothing.
func TestDirectToolCallCancelled(t *testing.T) {
	r := startRaw(t, testConfig(t))
	r.send(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}` + "\n")
	r.next()
	r.send(`{"jsonrpc":"2.0","method":"notifications/initialized"}` + "\n")
	r.send(toolLine("2", `{"name":"paf_register","arguments":{"name":"me"}}`) + "\n")
	if m := r.nextID(float64(2)); m["result"] == nil {
		t.Fatalf("paf_register: %v", m)
	}
	for _, id := range []string{`"w"`, `7`} {
		r.send(toolLine(id, `{"name":"paf_listen","arguments":{"timeout_seconds":600}}`) + "\n")
		r.send(`{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":"other"}}` + "\n")
		r.send(`{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":` + strings.Replace(id, "7", "7.0", 1) + `}}` + "\n")
		var want any
		_ = json.Unmarshal([]byte(id), &want)
		m := r.nextID(want)
		res, _ := m["result"].(map[string]any)
		sc, _ := res["structuredContent"].(map[string]any)
		if sc["cancelled"] != true {
			t.Fatalf("cancelled paf_listen %s: %v", id, m)
		}
	}
}

// nextID returns the next message with the id want, skipping notifications.
func (r *rawStdio) nextID(want any) map[string]any {
	r.t.Helper()
	for {
		m := r.next()
		if _, isNote := m["method"]; isNote {
			continue
		}
		if !reflect.DeepEqual(m["id"], want) {
			r.t.Fatalf("answer to %v, want one to %v: %v", m["id"], want, m)
		}
		return m
	}
}

// FuzzDirectToolCall: whatever a tools/call carries, the stdio loop's answer
// means what mcp-go's answer means (the same JSON value once decoded).
func FuzzDirectToolCall(f *testing.F) {
	for _, s := range []struct{ id, params string }{
		{"1", `{"name":"paf_check","arguments":{}}`},
		{`"x"`, `{"name":"paf_send","arguments":{"to":"alice","message":"hi"}}`},
		{"2.50", `{"name":"paf_send","arguments":{"to":5}}`},
		{"1e3", `{"name":"paf_listen","arguments":{"timeout_seconds":1e400}}`},
		{"3", `{"name":"paf_register","arguments":{"name":"x","name":"y"}}`},
		{"4", `{"name":"paf_register","arguments":{"Name":"x"}}`},
		{"5", `{"name":"paf_refocus","arguments":{"new_intent":"\ud800"},"_meta":{"progressToken":1}}`},
		{"6", `{"name":"paf_end_session","arguments":null,"_meta":{}}`},
		{`"\u0041"`, `{"name":"paf_broadcast","arguments":{"message":"<&>"}}`},
		{"7", `{"name":"paf_list_sessions","arguments":{"x":null}}`},
	} {
		f.Add(s.id, s.params)
	}
	f.Fuzz(func(t *testing.T, id, params string) {
		line := toolLine(id, params)
		if len(line) > 4096 || strings.ContainsAny(line, "\n\r") || !json.Valid([]byte(line)) {
			return // not JSON: the loop's own parse error (TestStdioLoopBadInput)
		}
		switch toolOf(line) {
		case "paf_connect", "paf_list_sessions":
			return // a random conversation id; idle times in seconds, which may tick between the two
		}
		got, want := answer(t, twinServer(t), line, true), answer(t, twinServer(t), line, false)
		var g, w any
		gerr, werr := json.Unmarshal([]byte(got), &g), json.Unmarshal([]byte(want), &w)
		if (gerr == nil) != (werr == nil) || !reflect.DeepEqual(g, w) {
			t.Fatalf("line %s\n got %s\nwant %s", line, got, want)
		}
	})
}
