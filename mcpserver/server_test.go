package mcpserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/mark3labs/mcp-go/mcp"

	"github.com/paf-mesh/paf-mesh/internal/testutil"
	"github.com/paf-mesh/paf-mesh/internal/testutil/mcptest"
	"github.com/paf-mesh/paf-mesh/relay"
)

func TestInitializeAndToolsList(t *testing.T) {
	fm := newFakeMesh()
	ss := startSession(t, fm.peer(), testConfig(t))

	// initialize, again, to look at what it says.
	res, err := mcptest.Initialize(context.Background(), ss.c, "test")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := res.Capabilities.Experimental["claude/channel"]; !ok {
		t.Errorf("capabilities.experimental lacks claude/channel: %v", res.Capabilities.Experimental)
	}
	if res.Capabilities.Resources == nil || !res.Capabilities.Resources.Subscribe {
		t.Errorf("resources capability without subscribe: %+v", res.Capabilities.Resources)
	}
	if !strings.Contains(res.Instructions, `<channel source="paf"`) || !strings.Contains(res.Instructions, "paf_listen") {
		t.Errorf("instructions do not explain the tools and channel tags:\n%s", res.Instructions)
	}

	raw := ss.s.mcp.HandleMessage(context.Background(), json.RawMessage(`{"jsonrpc":"2.0","id":1,"method":"tools/list"}`))
	b, err := json.Marshal(raw)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) > 4096 {
		t.Errorf("tools/list is %d bytes of compact JSON; SPEC section 10 allows 4,096", len(b))
	}
	t.Logf("tools/list: %d bytes", len(b))

	list, err := ss.c.ListTools(context.Background(), mcp.ListToolsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]mcp.Tool{}
	for _, tool := range list.Tools {
		got[tool.Name] = tool
	}
	readOnly := map[string]bool{"paf_list_sessions": true, "paf_check": true}
	for _, name := range toolNames {
		tool, ok := got[name]
		if !ok {
			t.Errorf("tool %s missing", name)
			continue
		}
		// As a client reads them: an absent hint means what the MCP specification says
		// (readOnly false, destructive true, idempotent false, openWorld true).
		a := tool.Annotations
		hint := func(p *bool, absent bool) bool {
			if p == nil {
				return absent
			}
			return *p
		}
		if hint(a.ReadOnlyHint, false) != readOnly[name] || hint(a.DestructiveHint, true) || hint(a.OpenWorldHint, true) {
			t.Errorf("%s: annotations read as readOnly=%v destructive=%v openWorld=%v", name,
				hint(a.ReadOnlyHint, false), hint(a.DestructiveHint, true), hint(a.OpenWorldHint, true))
		}
		if tool.Description == "" {
			t.Errorf("%s has no description", name)
		}
		if argSummary[name] == "" {
			t.Errorf("%s has no argument summary", name)
		}
	}
	if len(list.Tools) != len(toolNames) {
		t.Errorf("%d tools listed, want %d", len(list.Tools), len(toolNames))
	}
}

// TestConversation plays the seed's flow: a listener, a caller with an
// intent, questions and answers, a refocus, and an end.
func TestConversation(t *testing.T) {
	fm := newFakeMesh()
	cfg := testConfig(t)
	expert := startSession(t, fm.peer(), cfg)
	caller := startSession(t, fm.peer(), cfg)

	expert.ok("paf_register", map[string]any{"name": "Expert", "description": "expert on billing"})
	txt, d := caller.ok("paf_list_sessions", nil)
	if !strings.Contains(txt, "expert: expert on billing") {
		t.Fatalf("list_sessions does not show the expert with its description:\n%s", txt)
	}
	if ss, _ := d["sessions"].([]any); len(ss) != 1 {
		t.Fatalf("sessions: %v", d["sessions"])
	}

	listen := mcptest.Async(context.Background(), expert.c, "paf_listen", map[string]any{"timeout_seconds": 30}, nil)
	testutil.WaitForEvery(t, waitPoll, 2*time.Second, "the expert to announce it is listening", func() bool {
		a, _ := expert.p.activity()
		return a == ActivityListening
	})

	_, d = caller.ok("paf_connect", map[string]any{"target_session": "expert", "intent": "why do retries double-charge?", "my_name": "alice"})
	conv, _ := d["conversation_id"].(string)
	if !regexp.MustCompile(`^c-[a-z2-7]{10}$`).MatchString(conv) {
		t.Fatalf("conversation id %q", conv)
	}
	if d["status"] != "delivered" {
		t.Fatalf("connect: %v", d)
	}
	txt, d = caller.ok("paf_send", map[string]any{"to": "expert", "message": "Retries after a timeout charge twice. Why?"})
	if d["conversation_id"] != conv || !strings.Contains(txt, "Delivered to expert") {
		t.Fatalf("send did not go into the open conversation: %s %v", txt, d)
	}

	res := await(t, listen, 5*time.Second)
	txt, d = mcptest.Text(res), mcptest.Structured(t, res)
	ms := messages(t, d)
	if len(ms) != 2 {
		t.Fatalf("listen returned %d messages, want the opening and the question (opening grace):\n%s", len(ms), txt)
	}
	if !ms[0].NewConversation || ms[0].ConversationID != conv || ms[0].Intent != "why do retries double-charge?" {
		t.Errorf("opening: %+v", ms[0])
	}
	if ms[1].Body != "Retries after a timeout charge twice. Why?" || ms[1].ConversationID != conv || ms[1].From != "alice" {
		t.Errorf("question: %+v", ms[1])
	}
	for _, want := range []string{"alice opened conversation " + conv, "intent: why do retries double-charge?", "Guidelines: stay on the intent", "paf_respond"} {
		if !strings.Contains(txt, want) {
			t.Errorf("listen text lacks %q:\n%s", want, txt)
		}
	}
	testutil.WaitForEvery(t, waitPoll, 2*time.Second, "the expert to announce it is busy with the intent", func() bool {
		a, f := expert.p.activity()
		return a == ActivityBusy && f == "why do retries double-charge?"
	})

	expert.ok("paf_respond", map[string]any{"message": "The idempotency key is regenerated per attempt."})
	_, d = caller.ok("paf_wait_response", map[string]any{"timeout_seconds": 5})
	ms = messages(t, d)
	if len(ms) != 1 || ms[0].Kind != "reply" || ms[0].ConversationID != conv || ms[0].From != "expert" {
		t.Fatalf("wait_response: %+v", ms)
	}

	// A follow-up, sent without naming the conversation, stays in it.
	caller.ok("paf_send", map[string]any{"to": "expert", "message": "Where is it generated?"})
	_, d = expert.ok("paf_listen", map[string]any{"timeout_seconds": 5})
	if ms = messages(t, d); len(ms) != 1 || ms[0].ConversationID != conv {
		t.Fatalf("follow-up: %+v", ms)
	}

	caller.ok("paf_refocus", map[string]any{"new_intent": "how to make retries idempotent"})
	txt, d = expert.ok("paf_listen", map[string]any{"timeout_seconds": 5})
	if ms = messages(t, d); len(ms) != 1 || ms[0].Kind != "refocus" || ms[0].Intent != "how to make retries idempotent" {
		t.Fatalf("refocus: %+v", ms)
	}
	if !strings.Contains(txt, "new intent: how to make retries idempotent") {
		t.Errorf("refocus text:\n%s", txt)
	}
	convs, _ := d["conversations"].([]any)
	if len(convs) != 1 || convs[0].(map[string]any)["intent"] != "how to make retries idempotent" {
		t.Errorf("the expert's record of the conversation did not change focus: %v", convs)
	}

	// The caller ends it; the expert is told and can no longer respond in it.
	_, d = caller.ok("paf_end_session", map[string]any{"conversation_id": conv})
	if ended, _ := d["ended"].([]any); len(ended) != 1 {
		t.Fatalf("end: %v", d)
	}
	txt, d = expert.ok("paf_listen", map[string]any{"timeout_seconds": 5})
	if ms = messages(t, d); len(ms) != 1 || ms[0].Kind != "end" {
		t.Fatalf("end not seen by the expert: %+v", ms)
	}
	if !strings.Contains(txt, "alice ended conversation "+conv) {
		t.Errorf("end text:\n%s", txt)
	}
	expert.fails("paf_respond", map[string]any{"message": "more?", "conversation_id": conv}, "has ended")
	expert.fails("paf_respond", map[string]any{"message": "more?"}, "no open conversation")
	testutil.WaitForEvery(t, waitPoll, 2*time.Second, "the expert to be idle again", func() bool {
		a, _ := expert.p.activity()
		return a == ActivityIdle
	})
}

// TestCallersKeptApart: one listener, two callers; replies go by
// conversation id, and a wait in one conversation leaves the other's
// messages unread.
func TestCallersKeptApart(t *testing.T) {
	fm := newFakeMesh()
	cfg := testConfig(t)
	expert := startSession(t, fm.peer(), cfg)
	alice := startSession(t, fm.peer(), cfg)
	bob := startSession(t, fm.peer(), cfg)
	expert.ok("paf_register", map[string]any{"name": "expert"})

	_, d := alice.ok("paf_connect", map[string]any{"target_session": "expert", "intent": "A", "my_name": "alice"})
	ca := d["conversation_id"].(string)
	_, d = bob.ok("paf_connect", map[string]any{"target_session": "expert", "intent": "B", "my_name": "bob"})
	cb := d["conversation_id"].(string)
	if ca == cb {
		t.Fatal("two conversations share an id")
	}
	alice.ok("paf_send", map[string]any{"to": "expert", "message": "question A"})
	bob.ok("paf_send", map[string]any{"to": "expert", "message": "question B"})
	_, d = expert.ok("paf_check", nil)
	if ms := messages(t, d); len(ms) != 4 {
		t.Fatalf("check: %+v", ms)
	}
	// Without an id, respond goes to the latest: bob's.
	expert.ok("paf_respond", map[string]any{"message": "answer B"})
	expert.ok("paf_respond", map[string]any{"message": "answer A", "conversation_id": ca})

	// bob waits in any conversation; alice in hers.
	_, d = bob.ok("paf_wait_response", map[string]any{"timeout_seconds": 5})
	if ms := messages(t, d); len(ms) != 1 || ms[0].Body != "answer B" || ms[0].ConversationID != cb {
		t.Fatalf("bob got %+v", ms)
	}
	_, d = alice.ok("paf_wait_response", map[string]any{"conversation_id": ca, "timeout_seconds": 5})
	if ms := messages(t, d); len(ms) != 1 || ms[0].Body != "answer A" {
		t.Fatalf("alice got %+v", ms)
	}

	// A wait in one conversation leaves another's message unread.
	_, d = alice.ok("paf_connect", map[string]any{"target_session": "bob", "intent": "C"})
	cc := d["conversation_id"].(string)
	bob.ok("paf_check", nil)
	bob.ok("paf_respond", map[string]any{"message": "answer C", "conversation_id": cc})
	expert.ok("paf_respond", map[string]any{"message": "answer A2", "conversation_id": ca})
	txt, d := alice.ok("paf_wait_response", map[string]any{"conversation_id": ca, "timeout_seconds": 5})
	if ms := messages(t, d); len(ms) != 1 || ms[0].Body != "answer A2" {
		t.Fatalf("alice got %+v", ms)
	}
	if d["unread"] != float64(1) || !strings.Contains(txt, "1 unread message is waiting") {
		t.Fatalf("the other conversation's reply is not reported unread: %v\n%s", d["unread"], txt)
	}
	_, d = alice.ok("paf_wait_response", map[string]any{"conversation_id": cc, "timeout_seconds": 5})
	if ms := messages(t, d); len(ms) != 1 || ms[0].Body != "answer C" {
		t.Fatalf("alice got %+v", ms)
	}
}

func TestBadInput(t *testing.T) {
	fm := newFakeMesh()
	cfg := testConfig(t)
	other := startSession(t, fm.peer(), cfg)
	other.ok("paf_register", map[string]any{"name": "taken"})
	fresh := startSession(t, fm.peer(), cfg) // no name
	ss := startSession(t, fm.peer(), cfg)
	ss.ok("paf_register", map[string]any{"name": "me"})

	tests := map[string]struct {
		s    *session
		tool string
		args map[string]any
		want string
	}{
		"missing argument":      {ss, "paf_send", map[string]any{"to": "x"}, "message is required"},
		"wrong type":            {ss, "paf_send", map[string]any{"to": "x", "message": 5}, "message must be a string, not an integer"},
		"unknown argument":      {ss, "paf_check", map[string]any{"verbose": true}, `there is no argument "verbose"`},
		"invalid name":          {ss, "paf_send", map[string]any{"to": "Bad Name!", "message": "x"}, "use only a-z 0-9 . _ -"},
		"invalid register":      {fresh, "paf_register", map[string]any{"name": "-x"}, "must start with a letter or digit"},
		"name taken":            {fresh, "paf_register", map[string]any{"name": "taken"}, "Pick a different name"},
		"send to oneself":       {ss, "paf_send", map[string]any{"to": "ME", "message": "x"}, "own name"},
		"connect to oneself":    {ss, "paf_connect", map[string]any{"target_session": "me", "intent": "x"}, "own name"},
		"respond, no conv":      {ss, "paf_respond", map[string]any{"message": "x"}, "no open conversation"},
		"refocus, no conv":      {ss, "paf_refocus", map[string]any{"new_intent": "x"}, "no open conversation"},
		"unknown conversation":  {ss, "paf_respond", map[string]any{"message": "x", "conversation_id": "c-nope"}, `No conversation "c-nope"`},
		"wait, no conv":         {ss, "paf_wait_response", map[string]any{"timeout_seconds": 1}, "no open conversation"},
		"timeout too long":      {ss, "paf_listen", map[string]any{"timeout_seconds": 3601}, "between 1 and 3600"},
		"timeout zero":          {ss, "paf_wait_response", map[string]any{"timeout_seconds": 0}, "between 1 and 3600"},
		"timeout negative":      {ss, "paf_listen", map[string]any{"timeout_seconds": -5}, "between 1 and 3600"},
		"empty intent":          {ss, "paf_connect", map[string]any{"target_session": "taken", "intent": "  "}, "intent is empty"},
		"no name: send":         {fresh, "paf_send", map[string]any{"to": "taken", "message": "x"}, "paf_register first, or pass my_name"},
		"no name: check":        {fresh, "paf_check", nil, "paf_register first"},
		"no name: broadcast":    {fresh, "paf_broadcast", map[string]any{"message": "x"}, "paf_register first"},
		"other name":            {ss, "paf_send", map[string]any{"to": "taken", "message": "x", "my_name": "someone"}, "registered as me"},
		"register another name": {ss, "paf_register", map[string]any{"name": "other"}, "paf_rename"},
		"rename without name":   {fresh, "paf_rename", map[string]any{"new_name": "x"}, "paf_register"},
		"message too large":     {ss, "paf_send", map[string]any{"to": "taken", "message": strings.Repeat("x", (1<<20)+1)}, "message too large"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			tc.s.t = t
			defer func() { tc.s.t = nil }()
			tc.s.fails(tc.tool, tc.args, tc.want)
		})
	}
	// An unknown tool is a protocol error that lists the tools.
	_, err := mcptest.Call(context.Background(), ss.c, "paf_nope", nil, nil)
	if err == nil || !strings.Contains(err.Error(), "paf_listen") || !strings.Contains(err.Error(), "tools/list") {
		t.Errorf("unknown tool: %v", err)
	}
	// The server kept running.
	ss.t = t
	ss.ok("paf_list_sessions", nil)
}

func TestRateLimitAndErrorsFromTheRelay(t *testing.T) {
	fm := newFakeMesh()
	ss := startSession(t, fm.peer(), testConfig(t))
	ss.ok("paf_register", map[string]any{"name": "me"})
	fm.mu.Lock()
	fm.failSend = relay.ErrRateLimited
	fm.mu.Unlock()
	ss.fails("paf_send", map[string]any{"to": "x", "message": "y"}, "rate limited")
}

// TestWaitTimeoutProgressAndCancel runs in a synctest bubble: the listen's
// timer and progress ticker run on the bubble's clock, so its 1 s timeouts
// take no real time and the count of progress notifications is exact.
func TestWaitTimeoutProgressAndCancel(t *testing.T) {
	synctest.Test(t, testWaitTimeoutProgressAndCancel)
}

func testWaitTimeoutProgressAndCancel(t *testing.T) {
	fm := newFakeMesh()
	cfg := testConfig(t)
	cfg.ProgressInterval = 100 * time.Millisecond
	ss := startSession(t, fm.peer(), cfg)
	ss.ok("paf_register", map[string]any{"name": "me"})

	// The bubble's clock moves only when every goroutine in it is blocked,
	// so the listen returns exactly when its timer fires: not before its
	// timeout, and not a progress interval after it.
	start := time.Now()
	txt, d := ss.ok("paf_listen", map[string]any{"timeout_seconds": 1})
	if d["timed_out"] != true || !strings.Contains(txt, "Nothing arrived in 1 s") || !strings.Contains(txt, "paf_listen again") {
		t.Fatalf("timeout result: %s %v", txt, d)
	}
	if el := time.Since(start); el < time.Second || el >= time.Second+cfg.ProgressInterval {
		t.Fatalf("listen returned after %s, want its 1 s timeout", el)
	}

	// Progress every ProgressInterval when the request has a token.
	ss.ok("paf_listen", map[string]any{"timeout_seconds": 1})
	synctest.Wait() // notifications may arrive after the result they precede
	if n := len(ss.notes.Of(string(mcp.MethodNotificationProgress))); n != 0 {
		t.Fatalf("%d progress notifications without a progress token", n)
	}
	res := await(t, mcptest.Async(context.Background(), ss.c, "paf_listen", map[string]any{"timeout_seconds": 1}, "tok-1"), 5*time.Second)
	if res.IsError {
		t.Fatal(mcptest.Text(res))
	}
	synctest.Wait()
	// One every 100 ms of the 1 s: 9, or 10 when the ticker wins the
	// select against the timer at 1 s.
	notes := ss.notes.Of(string(mcp.MethodNotificationProgress))
	if n := len(notes); n < 9 || n > 10 {
		t.Fatalf("%d progress notifications in a 1 s listen every 100 ms, want 9 or 10", n)
	}
	p := notes[0].Params.AdditionalFields
	if p["progressToken"] != "tok-1" || p["total"] != float64(1) {
		t.Fatalf("progress params: %v", p)
	}

	// Cancellation ends the wait at once (no time passes on the bubble's
	// clock) and marks nothing read.
	ctx, cancel := context.WithCancel(context.Background())
	ch := mcptest.Async(ctx, ss.c, "paf_listen", map[string]any{"timeout_seconds": 60}, nil)
	synctest.Wait()
	if n := listening(ss.s); n != 1 {
		t.Fatalf("listening = %d after the listen blocked, want 1", n)
	}
	cancelled := time.Now()
	cancel()
	synctest.Wait()
	select {
	case <-ch:
	default:
		t.Fatal("a cancelled listen did not return")
	}
	if el := time.Since(cancelled); el != 0 {
		t.Fatalf("a cancelled listen returned %s after the cancel, want at once", el)
	}
	if n := listening(ss.s); n != 0 {
		t.Fatalf("listening = %d after the cancel, want 0", n)
	}
	fm.inject(relay.Message{From: "someone", To: "me", Kind: relay.KindMessage, Body: "after the cancel"})
	_, d = ss.ok("paf_check", nil)
	if ms := messages(t, d); len(ms) != 1 || ms[0].Body != "after the cancel" {
		t.Fatalf("message lost after a cancelled listen: %+v", ms)
	}
}

// listening is how many calls of s are blocked in paf_listen.
func listening(s *Server) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.listening
}

// TestCancelledTakeMarksNothingRead: a call whose request was cancelled
// does not mark messages read even when they are there.
func TestCancelledTakeMarksNothingRead(t *testing.T) {
	fm := newFakeMesh()
	ss := startSession(t, fm.peer(), testConfig(t))
	ss.ok("paf_register", map[string]any{"name": "me"})
	fm.inject(relay.Message{From: "x", To: "me", Kind: relay.KindMessage, Body: "keep me"})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if items, err := ss.s.take(ctx, "me", pickAll, nil); err == nil || len(items) != 0 {
		t.Fatalf("take with a cancelled context: %v %v", items, err)
	}
	if n, _, _ := ss.p.InboxState("me"); n != 1 {
		t.Fatalf("unread after a cancelled take: %d, want 1", n)
	}
}

func TestPushAndUnreadLine(t *testing.T) {
	fm := newFakeMesh()
	ss := startSession(t, fm.peer(), testConfig(t))
	ss.ok("paf_register", map[string]any{"name": "me"})
	fm.inject(relay.Message{From: "alice", To: "me", Kind: relay.KindReply, Body: "pushed", ConversationID: "c-abc", Intent: "the focus"})

	testutil.WaitForEvery(t, waitPoll, 2*time.Second, "a channel notification", func() bool { return len(ss.notes.Of(channelMethod)) == 1 })
	p := ss.notes.Of(channelMethod)[0].Params.AdditionalFields
	if p["content"] != "pushed" {
		t.Errorf("content: %v", p["content"])
	}
	meta, _ := p["meta"].(map[string]any)
	key := regexp.MustCompile(`^[A-Za-z0-9_]+$`)
	for k, v := range meta {
		if !key.MatchString(k) {
			t.Errorf("meta key %q has characters other than letters, digits and _", k)
		}
		if _, ok := v.(string); !ok {
			t.Errorf("meta %s is %T, want a string", k, v)
		}
	}
	for k, want := range map[string]string{"from": "alice", "conversation_id": "c-abc", "intent": "the focus", "kind": "reply"} {
		if meta[k] != want {
			t.Errorf("meta %s = %v, want %q", k, meta[k], want)
		}
	}
	if meta["message_id"] == "" || meta["sent_at"] == "" {
		t.Errorf("meta lacks message_id or sent_at: %v", meta)
	}

	// Pushed, still unread: every result says so, until a tool returns it.
	txt, d := ss.ok("paf_list_sessions", nil)
	if !strings.Contains(txt, "1 unread message is waiting") || d["unread"] != float64(1) {
		t.Fatalf("unread line missing:\n%s\n%v", txt, d)
	}
	_, d = ss.ok("paf_check", nil)
	if ms := messages(t, d); len(ms) != 1 {
		t.Fatalf("check: %+v", ms)
	}
	txt, _ = ss.ok("paf_list_sessions", nil)
	if strings.Contains(txt, "unread") {
		t.Fatalf("unread line after reading:\n%s", txt)
	}
	if n := len(ss.notes.Of(channelMethod)); n != 1 {
		t.Fatalf("%d channel notifications, want each message pushed once", n)
	}
}

func TestRenameForwards(t *testing.T) {
	fm := newFakeMesh()
	cfg := testConfig(t)
	bob := startSession(t, fm.peer(), cfg)
	alice := startSession(t, fm.peer(), cfg)
	bob.ok("paf_register", map[string]any{"name": "bob"})
	alice.ok("paf_register", map[string]any{"name": "alice"})
	alice.ok("paf_send", map[string]any{"to": "bob", "message": "before"})

	txt, d := bob.ok("paf_rename", map[string]any{"new_name": "robert"})
	if d["name"] != "robert" || !strings.Contains(txt, "forwarded to robert") {
		t.Fatalf("rename: %s %v", txt, d)
	}
	txt, d = alice.ok("paf_send", map[string]any{"to": "bob", "message": "after"})
	if d["forwarded_from"] != "bob" || d["to"] != "robert" || !strings.Contains(txt, "forwarded to robert") {
		t.Fatalf("send to the old name: %s %v", txt, d)
	}
	txt, d = bob.ok("paf_check", nil)
	ms := messages(t, d)
	if len(ms) != 2 || ms[0].Body != "before" || ms[1].ForwardedFrom != "bob" {
		t.Fatalf("after the rename: %+v", ms)
	}
	if !strings.Contains(txt, "sent to bob, forwarded to robert") {
		t.Errorf("forwarded message not marked:\n%s", txt)
	}
	txt, _ = alice.ok("paf_list_sessions", nil)
	if !strings.Contains(txt, "bob -> robert") {
		t.Errorf("list_sessions does not show the forward:\n%s", txt)
	}
}

func TestBroadcast(t *testing.T) {
	fm := newFakeMesh()
	cfg := testConfig(t)
	a := startSession(t, fm.peer(), cfg)
	b := startSession(t, fm.peer(), cfg)
	c := startSession(t, fm.peer(), cfg)
	for s, n := range map[*session]string{a: "a", b: "b", c: "c"} {
		s.ok("paf_register", map[string]any{"name": n})
	}
	txt, d := a.ok("paf_broadcast", map[string]any{"message": "hello all"})
	if d["count"] != float64(2) || !strings.Contains(txt, "b, c") {
		t.Fatalf("broadcast: %s %v", txt, d)
	}
	for _, s := range []*session{b, c} {
		txt, d := s.ok("paf_check", nil)
		if ms := messages(t, d); len(ms) != 1 || !ms[0].Broadcast || !strings.Contains(txt, "broadcast") {
			t.Fatalf("broadcast not received: %s", txt)
		}
	}
}

// TestIdleConversationsEnd runs in a synctest bubble, so the product's own
// IdleTimeout (an hour) passes on the bubble's clock in no real time, and
// the conversation is seen open just before it and ended just after.
func TestIdleConversationsEnd(t *testing.T) { synctest.Test(t, testIdleConversationsEnd) }

func testIdleConversationsEnd(t *testing.T) {
	fm := newFakeMesh()
	cfg := testConfig(t)
	cfg.IdleTimeout = DefaultConfig().IdleTimeout
	caller := startSession(t, fm.peer(), cfg)
	// The other side is a bare peer, so only the caller's idle timer runs.
	other := fm.peer()
	if err := other.Claim(context.Background(), "listener"); err != nil {
		t.Fatal(err)
	}
	_, d := caller.ok("paf_connect", map[string]any{"target_session": "listener", "intent": "x", "my_name": "caller"})
	conv := d["conversation_id"].(string)
	ended := func() bool {
		caller.s.mu.Lock()
		defer caller.s.mu.Unlock()
		return caller.s.convs[conv].Ended
	}

	// The idle loop looks every IdleTimeout/10: open one look before the
	// timeout, ended one look after it.
	look := cfg.IdleTimeout / 10
	time.Sleep(cfg.IdleTimeout - look) // the bubble's clock: no real time passes
	synctest.Wait()
	if ended() || len(caller.notes.Of(channelMethod)) != 0 {
		t.Fatalf("conversation ended %s before its idle timeout", look)
	}
	time.Sleep(2 * look)
	synctest.Wait()
	if !ended() {
		t.Fatalf("conversation still open %s after its idle timeout", look)
	}

	// The caller's agent is told at once (pushed) and in the next result.
	if n := len(caller.notes.Of(channelMethod)); n != 1 {
		t.Fatalf("%d channel notifications for the end, want 1", n)
	}
	meta, _ := caller.notes.Of(channelMethod)[0].Params.AdditionalFields["meta"].(map[string]any)
	if meta["conversation_id"] != conv || meta["kind"] != "notice" {
		t.Fatalf("notice meta: %v", meta)
	}
	txt, d := caller.ok("paf_list_sessions", nil)
	if !strings.Contains(txt, "Notice: Conversation "+conv+" with listener ended") {
		t.Fatalf("no notice in the next result:\n%s", txt)
	}
	if d["notices"] == nil {
		t.Fatalf("no notices in structuredContent: %v", d)
	}
	caller.fails("paf_respond", map[string]any{"message": "x", "conversation_id": conv}, "has ended")
	// The other side was told with an end message.
	ms, err := other.Peek("listener")
	if err != nil || len(ms) != 2 || ms[1].Kind != relay.KindEnd || ms[1].ConversationID != conv || !strings.Contains(ms[1].Body, "nothing was said") {
		t.Fatalf("the other side's inbox: %+v %v", ms, err)
	}
}

// TestEndArrivingEndsAtOnce: an end that arrives ends the conversation for
// this side before the agent reads it, so the idle timer does not end it
// again.
func TestEndArrivingEndsAtOnce(t *testing.T) {
	fm := newFakeMesh()
	cfg := testConfig(t)
	caller := startSession(t, fm.peer(), cfg)
	listener := startSession(t, fm.peer(), cfg)
	listener.ok("paf_register", map[string]any{"name": "listener"})
	_, d := caller.ok("paf_connect", map[string]any{"target_session": "listener", "intent": "x", "my_name": "caller"})
	conv := d["conversation_id"].(string)
	listener.ok("paf_check", nil)
	listener.ok("paf_end_session", map[string]any{"conversation_id": conv})
	testutil.WaitForEvery(t, waitPoll, 2*time.Second, "the caller to see the end", func() bool {
		caller.s.mu.Lock()
		defer caller.s.mu.Unlock()
		return caller.s.convs[conv].Ended
	})
	caller.fails("paf_send", map[string]any{"to": "listener", "message": "x", "conversation_id": conv}, "has ended (by listener)")
	txt, _ := caller.ok("paf_check", nil)
	if !strings.Contains(txt, "listener ended conversation "+conv) {
		t.Fatalf("the end message:\n%s", txt)
	}
}

func TestNotReady(t *testing.T) { synctest.Test(t, testNotReady) }

func testNotReady(t *testing.T) {
	fm := newFakeMesh()
	cfg := testConfig(t)
	cfg.JoinWait = 50 * time.Millisecond
	p := fm.pendingPeer()
	ss := startSession(t, p, cfg) // initialize does not wait for the mesh
	ss.fails("paf_list_sessions", nil, "still joining the mesh")
	close(p.ready)
	ss.ok("paf_list_sessions", nil)

	broken := fm.pendingPeer()
	broken.err = errBroken
	close(broken.ready)
	ss2 := startSession(t, broken, cfg)
	ss2.fails("paf_register", map[string]any{"name": "x"}, "could not start: state dir is broken")
}

var errBroken = errors.New("state dir is broken")

// TestOpeningGrace: a listen that wakes to a new conversation's opening
// alone waits a moment for the question; one that finds both returns at
// once.
func TestOpeningGrace(t *testing.T) { synctest.Test(t, testOpeningGrace) }

func testOpeningGrace(t *testing.T) {
	fm := newFakeMesh()
	cfg := testConfig(t)
	cfg.OpeningGrace = 5 * time.Second
	ss := startSession(t, fm.peer(), cfg)
	ss.ok("paf_register", map[string]any{"name": "me"})
	opening := relay.Message{From: "alice", To: "me", Kind: relay.KindMessage, ConversationID: "c-1", Intent: "i", Body: openingBody("alice", "c-1", "i")}
	question := relay.Message{From: "alice", To: "me", Kind: relay.KindMessage, ConversationID: "c-1", Intent: "i", Body: "the question"}

	fm.inject(opening)
	fm.inject(question)
	start := time.Now()
	_, d := ss.ok("paf_listen", map[string]any{"timeout_seconds": 30})
	if ms := messages(t, d); len(ms) != 2 || !ms[0].NewConversation || ms[1].NewConversation {
		t.Fatalf("listen: %+v", ms)
	}
	if el := time.Since(start); el >= cfg.OpeningGrace {
		t.Fatalf("listen with the question already there waited %s, the whole grace", el)
	}

	// The opening alone: the question that follows within the grace comes
	// in the same result.
	opening.ConversationID, question.ConversationID = "c-2", "c-2"
	fm.inject(opening)
	ch := mcptest.Async(context.Background(), ss.c, "paf_listen", map[string]any{"timeout_seconds": 30}, nil)
	synctest.Wait()
	if n := listening(ss.s); n != 1 {
		t.Fatalf("listening = %d while holding the opening, want 1", n)
	}
	time.Sleep(cfg.OpeningGrace / 2) // the bubble's clock: within the grace
	fm.inject(question)
	res := await(t, ch, 10*time.Second)
	if ms := messages(t, mcptest.Structured(t, res)); len(ms) != 2 || ms[1].Body != "the question" {
		t.Fatalf("listen: %+v", ms)
	}

	// The opening alone, and no question: it comes back when the grace ends.
	opening.ConversationID = "c-3"
	fm.inject(opening)
	start = time.Now()
	_, d = ss.ok("paf_listen", map[string]any{"timeout_seconds": 30})
	if ms := messages(t, d); len(ms) != 1 || !ms[0].NewConversation {
		t.Fatalf("listen with the opening alone: %+v", ms)
	}
	if el := time.Since(start); el != cfg.OpeningGrace {
		t.Fatalf("listen with the opening alone returned after %s, want the grace of %s", el, cfg.OpeningGrace)
	}
}

func TestConversationCap(t *testing.T) {
	fm := newFakeMesh()
	cfg := testConfig(t)
	cfg.MaxConversations = 3
	ss := startSession(t, fm.peer(), cfg)
	ss.ok("paf_register", map[string]any{"name": "me"})
	for i := range 5 {
		id := fmt.Sprintf("c-%d", i)
		fm.inject(relay.Message{From: "alice", To: "me", Kind: relay.KindMessage, ConversationID: id, Intent: "i", Body: "hi"})
		ss.ok("paf_check", nil)
	}
	ss.s.mu.Lock()
	defer ss.s.mu.Unlock()
	if len(ss.s.convs) != 3 || ss.s.convs["c-4"] == nil || ss.s.convs["c-0"] != nil {
		t.Fatalf("conversations kept: %v", ss.s.convs)
	}
}

// TestEndSessionStopsListening: paf_end_session without an id wakes a
// blocked paf_listen and ends every conversation.
func TestEndSessionStopsListening(t *testing.T) {
	fm := newFakeMesh()
	cfg := testConfig(t)
	ss := startSession(t, fm.peer(), cfg)
	other := startSession(t, fm.peer(), cfg)
	other.ok("paf_register", map[string]any{"name": "other"})
	_, d := ss.ok("paf_connect", map[string]any{"target_session": "other", "intent": "x", "my_name": "me"})
	conv := d["conversation_id"].(string)
	ch := mcptest.Async(context.Background(), ss.c, "paf_listen", map[string]any{"timeout_seconds": 60}, nil)
	testutil.WaitForEvery(t, waitPoll, 2*time.Second, "the listen to block", func() bool {
		ss.s.mu.Lock()
		defer ss.s.mu.Unlock()
		return ss.s.listening == 1
	})
	txt, _ := ss.ok("paf_end_session", nil)
	if !strings.Contains(txt, "Stopped listening") || !strings.Contains(txt, conv) {
		t.Fatalf("end_session: %s", txt)
	}
	res := await(t, ch, 5*time.Second)
	if d := mcptest.Structured(t, res); d["stopped"] != true {
		t.Fatalf("the listen did not stop: %s", mcptest.Text(res))
	}
	_, d = other.ok("paf_check", nil)
	if ms := messages(t, d); len(ms) != 2 || ms[1].Kind != "end" {
		t.Fatalf("the other side: %+v", ms)
	}
}

// TestConversationFollowsRename: a conversation continues when the other
// side renames, under either name.
func TestConversationFollowsRename(t *testing.T) {
	fm := newFakeMesh()
	cfg := testConfig(t)
	alice := startSession(t, fm.peer(), cfg)
	bob := startSession(t, fm.peer(), cfg)
	bob.ok("paf_register", map[string]any{"name": "bob"})
	_, d := alice.ok("paf_connect", map[string]any{"target_session": "bob", "intent": "x", "my_name": "alice"})
	conv := d["conversation_id"].(string)
	bob.ok("paf_check", nil)
	bob.ok("paf_rename", map[string]any{"new_name": "robert"})
	for _, to := range []string{"robert", "bob"} {
		_, d = alice.ok("paf_send", map[string]any{"to": to, "message": "still there?"})
		if d["conversation_id"] != conv {
			t.Fatalf("a message to %s left the conversation: %v", to, d)
		}
	}
	alice.ok("paf_send", map[string]any{"to": "robert", "message": "x", "conversation_id": conv})
	bob.ok("paf_respond", map[string]any{"message": "yes"})
	_, d = alice.ok("paf_wait_response", map[string]any{"conversation_id": conv, "timeout_seconds": 5})
	if ms := messages(t, d); len(ms) != 1 || ms[0].From != "robert" || ms[0].NotInConversation {
		t.Fatalf("the reply after the rename: %+v", ms)
	}
}

// What paf_send says for each outcome.
func TestSentText(t *testing.T) {
	for name, tc := range map[string]struct {
		res  relay.Result
		want string
	}{
		"delivered": {relay.Result{Status: "delivered", To: "bob"}, "Delivered to bob."},
		"forwarded": {relay.Result{Status: "delivered", To: "robert", ForwardedFrom: "bob"}, "Delivered to robert (sent to bob, which was renamed: forwarded to robert)."},
		"stored":    {relay.Result{Status: "stored", To: "dana", Holders: 1}, "dana is not online: the message is stored, held by 1 peer, and delivered when dana appears."},
		"not answering": {relay.Result{Status: "stored", To: "bob", Holders: 2, Unanswered: true},
			"bob's session is not answering (it may have just stopped): the message is stored, held by 2 peers, and delivered when bob is back."},
		"clock": {relay.Result{Status: "stored", To: "bob", Holders: 1, Unanswered: true, Reason: "clock skew: bob's peer refused it"},
			"bob's session is not answering (it may have just stopped): the message is stored, held by 1 peer, and delivered when bob is back. Why: clock skew: bob's peer refused it."},
		"queued": {relay.Result{ID: "01ARZ3NDEKTSV4RRFFQ69G5FAV", Status: "queued", To: "bob", Reason: "not answering"},
			"Queued for bob: not confirmed yet. This session keeps the message (id 01ARZ3NDEKTSV4RRFFQ69G5FAV) on disk and retries it with the same id until bob's peer or its holders confirm it; do not send it again (the retries cannot make it arrive twice, a resend would). Why: not answering."},
	} {
		if got := sentText(tc.res); got != tc.want {
			t.Errorf("%s: %q, want %q", name, got, tc.want)
		}
	}
}

// timeout_seconds bounds the whole call: a listen that spent its budget
// waiting for the peer to join (a crashed session's name being released)
// returns once the peer is up rather than waiting its full timeout again.
func TestListenTimeoutCountsTheJoin(t *testing.T) { synctest.Test(t, testListenTimeoutCountsTheJoin) }

func testListenTimeoutCountsTheJoin(t *testing.T) {
	fm := newFakeMesh()
	p := fm.pendingPeer()
	cfg := testConfig(t)
	cfg.ProgressInterval = 100 * time.Millisecond
	ss := startSession(t, p, cfg)
	ch := mcptest.Async(context.Background(), ss.c, "paf_listen", map[string]any{"session_name": "me", "timeout_seconds": 1}, "tok-join")
	// The call's 1 s budget passes on the bubble's clock while the peer
	// joins (JoinWait is 2 s).
	time.Sleep(1200 * time.Millisecond)
	synctest.Wait()
	select {
	case r := <-ch:
		t.Fatalf("listen returned before the peer joined: %v %v", r.Res, r.Err)
	default:
	}
	close(p.ready)
	res := await(t, ch, 10*time.Second)
	d := mcptest.Structured(t, res)
	if d["timed_out"] != true {
		t.Fatalf("listen after its budget went on joining: %s %v, want timed out", mcptest.Text(res), d)
	}
	// A wait of its own would have sent a progress notification every 100 ms
	// of the bubble's clock; the budget was spent, so there is none.
	synctest.Wait()
	if n := len(ss.notes.Of(string(mcp.MethodNotificationProgress))); n != 0 {
		t.Fatalf("the listen waited again after joining: %d progress notifications", n)
	}
}

// A claim made by a tool call (paf_register, or a name passed to another
// tool) is bounded so that the call answers inside a client's 60 s, joining
// time included: the backend may wait for a crashed session's name.
func TestClaimIsBoundedByTheCall(t *testing.T) { synctest.Test(t, testClaimIsBoundedByTheCall) }

func testClaimIsBoundedByTheCall(t *testing.T) {
	fm := newFakeMesh()
	p := fm.peer()
	ss := startSession(t, p, testConfig(t))
	before := time.Now()
	ss.ok("paf_register", map[string]any{"name": "me"})
	ss2 := startSession(t, fm.peer(), testConfig(t))
	ss2.ok("paf_listen", map[string]any{"session_name": "you", "timeout_seconds": 1})
	fm.mu.Lock()
	defer fm.mu.Unlock()
	for _, dls := range [][]time.Time{p.claimDeadlines, ss2.p.claimDeadlines} {
		if len(dls) != 1 || dls[0].IsZero() || dls[0].After(before.Add(claimBudget+5*time.Second)) {
			t.Fatalf("claim deadlines %v, want one within %s of the call", dls, claimBudget)
		}
	}
}
