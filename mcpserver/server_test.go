package mcpserver

import (
	"context"
	"encoding/json"
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
