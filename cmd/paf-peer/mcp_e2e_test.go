package main

// End-to-end tests of `paf-peer mcp`: real processes sharing a run dir, each
// with its own state dir, driven by mcp-go's client over stdio as an agent
// would drive them.

import (
	"context"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/mcp"

	"github.com/paf-mesh/paf-mesh/internal/testutil"
	"github.com/paf-mesh/paf-mesh/internal/testutil/mcptest"
)

// seeDeadline bounds how long one peer takes to see another's name,
// description or activity through gossip.
const seeDeadline = 15 * time.Second

var channelKey = regexp.MustCompile(`^[A-Za-z0-9_]+$`)

// checkPushed asserts that every message in ms was pushed to mp as a
// notifications/claude/channel with the SPEC's meta.
func checkPushed(t *testing.T, mp *mcpPeer, ms []e2eMessage) {
	t.Helper()
	testutil.WaitFor(t, 5*time.Second, mp.who+" to receive a channel notification for each message", func() bool {
		got := mp.pushed()
		for _, m := range ms {
			if got[m.ID] == nil {
				return false
			}
		}
		return true
	})
	got := mp.pushed()
	for _, m := range ms {
		meta := got[m.ID]
		for k, v := range meta {
			if k == "content" {
				continue
			}
			if !channelKey.MatchString(k) {
				t.Errorf("channel meta key %q: only letters, digits and _ are allowed", k)
			}
			if _, ok := v.(string); !ok {
				t.Errorf("channel meta %s=%v is not a string", k, v)
			}
		}
		if meta["from"] != m.From || meta["sent_at"] == "" || meta["conversation_id"] != nonEmpty(m.ConversationID) || meta["intent"] != nonEmpty(m.Intent) {
			t.Errorf("channel meta %v does not match the message %+v", meta, m)
		}
		if c, _ := meta["content"].(string); !strings.Contains(c, firstLine(m.Body)) {
			t.Errorf("channel content %q does not carry the message %q", c, m.Body)
		}
	}
}

// nonEmpty is what a meta value should be: absent (nil) when empty.
func nonEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}

// TestE2EMCPConversation: the Phone-a-Friend flow between real processes,
// with two callers, push notifications, progress and cancellation.
func TestE2EMCPConversation(t *testing.T) {
	m := newTestMesh(t)
	expert := m.mcp("expert")
	alice := m.mcp("alice")
	bob := m.mcp("bob")

	// initialize: the channel capability and instructions; tools/list is small.
	if _, ok := expert.init.Capabilities.Experimental["claude/channel"]; !ok {
		t.Errorf("initialize: no experimental claude/channel capability: %+v", expert.init.Capabilities)
	}
	if !strings.Contains(expert.init.Instructions, `<channel source="paf"`) {
		t.Errorf("initialize: instructions do not explain channel messages:\n%s", expert.init.Instructions)
	}
	tools, err := expert.c.ListTools(context.Background(), mcp.ListToolsRequest{})
	if err != nil || len(tools.Tools) != 12 {
		t.Fatalf("tools/list: %d tools, %v", len(tools.Tools), err)
	}
	expert.mu.Lock()
	size := expert.toolsList
	expert.mu.Unlock()
	// The response line: compact JSON and its newline (SPEC section 10: <= 4,096 bytes).
	if size == 0 || size > 4097 {
		t.Errorf("tools/list response is %d bytes; want at most 4,096 and a newline", size)
	}
	t.Logf("tools/list: %d bytes", size)

	expert.ok("paf_register", map[string]any{"name": "expert", "description": "expert on the billing service"})
	alice.ok("paf_register", map[string]any{"name": "alice"})
	testutil.WaitFor(t, seeDeadline, "alice to see the expert with its description", func() bool {
		return alice.sessions()["expert"].Description == "expert on the billing service"
	})

	// A cancelled listen stops at once and takes nothing with it.
	ctx, cancel := context.WithCancel(context.Background())
	cancelled := mcptest.Async(ctx, expert.c, "paf_listen", map[string]any{"timeout_seconds": 600}, nil)
	testutil.WaitFor(t, seeDeadline, "alice to see the expert listening", func() bool {
		return alice.sessions()["expert"].Activity == "listening"
	})
	cancel()
	select {
	case <-cancelled:
	case <-time.After(5 * time.Second):
		t.Fatal("the client's cancelled call did not return")
	}
	took := testutil.WaitFor(t, seeDeadline, "the expert's cancelled listen to stop (no longer listening)", func() bool {
		return alice.sessions()["expert"].Activity != "listening"
	})
	t.Logf("the expert stopped listening %s after the cancellation (gossip included)", took.Round(time.Millisecond))
	alice.ok("paf_send", map[string]any{"to": "expert", "message": "ping after the cancel"})
	_, d := expert.ok("paf_check", nil)
	if ms := msgsOf(t, d); len(ms) != 1 || ms[0].Body != "ping after the cancel" {
		t.Fatalf("after a cancelled listen, check returned %+v; want the message sent after it", ms)
	}

	// The expert listens; alice connects with an intent and asks.
	listen := mcptest.Async(context.Background(), expert.c, "paf_listen", map[string]any{"timeout_seconds": 60}, nil)
	testutil.WaitFor(t, seeDeadline, "alice to see the expert listening", func() bool {
		return alice.sessions()["expert"].Activity == "listening"
	})
	const intentA = "why do payment retries double-charge?"
	_, d = alice.ok("paf_connect", map[string]any{"target_session": "expert", "intent": intentA})
	convA, _ := d["conversation_id"].(string)
	if convA == "" || d["status"] != "delivered" {
		t.Fatalf("connect: %v", d)
	}
	_, d = alice.ok("paf_send", map[string]any{"to": "expert", "message": "Retries after a gateway timeout charge twice. Why?"})
	if d["conversation_id"] != convA || d["status"] != "delivered" {
		t.Fatalf("send: %v", d)
	}
	txt, d := expert.await(listen, 30*time.Second)
	ms := msgsOf(t, d)
	if len(ms) != 2 || !ms[0].NewConversation || ms[1].Body != "Retries after a gateway timeout charge twice. Why?" {
		t.Fatalf("the expert's listen returned %+v:\n%s", ms, txt)
	}
	for _, mm := range ms {
		if mm.ConversationID != convA || mm.Intent != intentA || mm.From != "alice" {
			t.Errorf("message %+v: want conversation %s, intent %q, from alice", mm, convA, intentA)
		}
	}
	for _, want := range []string{"intent: " + intentA, "Guidelines: stay on the intent", "paf_respond"} {
		if !strings.Contains(txt, want) {
			t.Errorf("the listen's text lacks %q:\n%s", want, txt)
		}
	}
	checkPushed(t, expert, ms)
	testutil.WaitFor(t, seeDeadline, "alice to see the expert busy with the intent", func() bool {
		s := alice.sessions()["expert"]
		return s.Activity == "busy" && s.Focus == intentA
	})

	expert.ok("paf_respond", map[string]any{"message": "The idempotency key is made per attempt."})
	_, d = alice.ok("paf_wait_response", map[string]any{"timeout_seconds": 30})
	ms = msgsOf(t, d)
	if len(ms) != 1 || ms[0].Kind != "reply" || ms[0].ConversationID != convA || ms[0].From != "expert" {
		t.Fatalf("alice's wait_response: %+v", ms)
	}
	checkPushed(t, alice, ms)

	// A second caller is kept apart.
	const intentB = "how are invoices numbered?"
	_, d = bob.ok("paf_connect", map[string]any{"target_session": "expert", "intent": intentB, "my_name": "bob"})
	convB, _ := d["conversation_id"].(string)
	if convB == "" || convB == convA {
		t.Fatalf("bob's conversation id %q (alice's %q)", convB, convA)
	}
	bob.ok("paf_send", map[string]any{"to": "expert", "message": "Are invoice numbers gapless?"})
	_, d = expert.ok("paf_listen", map[string]any{"timeout_seconds": 30})
	ms = msgsOf(t, d)
	if len(ms) != 2 || ms[1].ConversationID != convB || ms[1].From != "bob" || ms[1].Intent != intentB {
		t.Fatalf("the expert's second listen: %+v", ms)
	}
	expert.ok("paf_respond", map[string]any{"message": "answer for bob", "conversation_id": convB})
	expert.ok("paf_respond", map[string]any{"message": "answer for alice", "conversation_id": convA})
	_, d = bob.ok("paf_wait_response", map[string]any{"timeout_seconds": 30})
	if ms = msgsOf(t, d); len(ms) != 1 || ms[0].Body != "answer for bob" || ms[0].ConversationID != convB {
		t.Fatalf("bob got %+v", ms)
	}
	_, d = alice.ok("paf_wait_response", map[string]any{"conversation_id": convA, "timeout_seconds": 30})
	if ms = msgsOf(t, d); len(ms) != 1 || ms[0].Body != "answer for alice" {
		t.Fatalf("alice got %+v", ms)
	}

	// Refocus reaches the expert, with the new intent.
	const intentA2 = "how to make retries idempotent"
	alice.ok("paf_refocus", map[string]any{"new_intent": intentA2})
	txt, d = expert.ok("paf_listen", map[string]any{"timeout_seconds": 30})
	if ms = msgsOf(t, d); len(ms) != 1 || ms[0].Kind != "refocus" || ms[0].Intent != intentA2 || ms[0].ConversationID != convA {
		t.Fatalf("refocus: %+v", ms)
	}
	if !strings.Contains(txt, "new intent: "+intentA2) {
		t.Errorf("refocus text:\n%s", txt)
	}

	// One long wait, with a progress token: progress every 10 s, then a
	// normal result saying nothing arrived.
	start := time.Now()
	long := mcptest.Async(context.Background(), alice.c, "paf_wait_response", map[string]any{"conversation_id": convA, "timeout_seconds": 12}, "alice-progress")

	// Meanwhile the expert ends bob's conversation: bob's wait returns the end.
	expert.ok("paf_end_session", map[string]any{"conversation_id": convB})
	_, d = bob.ok("paf_wait_response", map[string]any{"timeout_seconds": 30})
	if ms = msgsOf(t, d); len(ms) != 1 || ms[0].Kind != "end" || ms[0].ConversationID != convB {
		t.Fatalf("bob's wait after the end: %+v", ms)
	}
	bob.fails("paf_respond", map[string]any{"message": "one more thing"}, "no open conversation")
	bob.fails("paf_send", map[string]any{"to": "expert", "message": "x", "conversation_id": convB}, "has ended")

	txt, d = alice.await(long, 60*time.Second)
	if d["timed_out"] != true || !strings.Contains(txt, "Nothing arrived in 12 s") {
		t.Fatalf("the long wait: %s %v", txt, d)
	}
	if el := time.Since(start); el < 12*time.Second {
		t.Fatalf("the 12 s wait returned after %s", el)
	}
	var progress []mcp.JSONRPCNotification
	testutil.WaitFor(t, 5*time.Second, "a progress notification", func() bool {
		progress = alice.notes.Of(string(mcp.MethodNotificationProgress))
		return len(progress) > 0
	})
	if p := progress[0].Params.AdditionalFields; p["progressToken"] != "alice-progress" || p["total"] != float64(12) {
		t.Errorf("progress notification: %v", p)
	}

	// Alice ends hers; the expert is told.
	alice.ok("paf_end_session", nil)
	_, d = expert.ok("paf_listen", map[string]any{"timeout_seconds": 30})
	if ms = msgsOf(t, d); len(ms) != 1 || ms[0].Kind != "end" || ms[0].ConversationID != convA {
		t.Fatalf("the expert after alice's end: %+v", ms)
	}
	expert.fails("paf_respond", map[string]any{"message": "x", "conversation_id": convA}, "has ended")
	testutil.WaitFor(t, seeDeadline, "alice to see the expert idle", func() bool {
		return alice.sessions()["expert"].Activity == "idle"
	})
}

// TestE2EMCPMessaging: broadcast, rename with forwarding, and a large
// message saved to a file, each pushed as it arrives.
func TestE2EMCPMessaging(t *testing.T) {
	m := newTestMesh(t)
	a := m.mcp("a", "--name", "ann")
	b := m.mcp("b")
	c := m.mcp("c")
	b.ok("paf_register", map[string]any{"name": "ben"})
	c.ok("paf_register", map[string]any{"name": "cat"})
	testutil.WaitFor(t, seeDeadline, "ann to see ann, ben and cat", func() bool {
		s := a.sessions()
		return s["ann"].You && s["ben"].Name != "" && s["cat"].Name != ""
	})

	txt, d := a.ok("paf_broadcast", map[string]any{"message": "deploy at noon"})
	if d["count"] != float64(2) || !strings.Contains(txt, "ben, cat") {
		t.Fatalf("broadcast: %s %v", txt, d)
	}
	for _, p := range []*mcpPeer{b, c} {
		_, d := p.ok("paf_check", nil)
		ms := msgsOf(t, d)
		if len(ms) != 1 || !ms[0].Broadcast || ms[0].Body != "deploy at noon" || ms[0].From != "ann" {
			t.Fatalf("%s: broadcast received as %+v", p.who, ms)
		}
		checkPushed(t, p, ms)
	}

	// Rename: a message to the old name arrives, marked forwarded.
	txt, d = c.ok("paf_rename", map[string]any{"new_name": "cathy"})
	if d["name"] != "cathy" || !strings.Contains(txt, "forwarded to cathy") {
		t.Fatalf("rename: %s %v", txt, d)
	}
	var sent map[string]any
	testutil.WaitFor(t, seeDeadline, "a message to cat to be forwarded to cathy", func() bool {
		_, sent = a.ok("paf_send", map[string]any{"to": "cat", "message": "still there, cat?"})
		if sent["to"] == "cathy" {
			return true
		}
		// Sent before ann heard of the rename: it went to cat's name and
		// is forwarded by cathy's peer all the same; check it below.
		return sent["status"] == "delivered"
	})
	txt, d = c.ok("paf_check", nil)
	ms := msgsOf(t, d)
	if len(ms) == 0 || ms[len(ms)-1].Body != "still there, cat?" || ms[len(ms)-1].ForwardedFrom != "cat" || ms[len(ms)-1].To != "cathy" {
		t.Fatalf("after the rename cathy got %+v", ms)
	}
	if !strings.Contains(txt, "sent to cat, forwarded to cathy") {
		t.Errorf("the forwarded message is not marked:\n%s", txt)
	}
	checkPushed(t, c, ms)
	testutil.WaitFor(t, seeDeadline, "ann to list the forward", func() bool {
		txt, _ := a.ok("paf_list_sessions", nil)
		return strings.Contains(txt, "cat -> cathy")
	})

	// A 50 KiB message arrives as a file, with a preview.
	big := strings.Repeat("0123456789abcdef", 50<<10/16)
	a.ok("paf_send", map[string]any{"to": "ben", "message": big})
	txt, d = b.ok("paf_check", nil)
	ms = msgsOf(t, d)
	if len(ms) != 1 || ms[0].File == "" {
		t.Fatalf("the large message: %+v", ms)
	}
	if len(ms[0].Body) >= len(big) || !strings.HasPrefix(ms[0].Body, "0123456789abcdef") {
		t.Errorf("the large message's body is not a preview: %d bytes", len(ms[0].Body))
	}
	if !strings.Contains(txt, ms[0].File) {
		t.Errorf("the text does not name the file:\n%.400s", txt)
	}
	content, err := os.ReadFile(ms[0].File)
	if err != nil || string(content) != big {
		t.Fatalf("the file holds %d bytes (%v); want the %d sent", len(content), err, len(big))
	}
	if fi, err := os.Stat(ms[0].File); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("the file's mode: %v %v; want 0600", fi.Mode(), err)
	}
	checkPushed(t, b, ms)
	if meta := b.pushed()[ms[0].ID]; meta["file"] != ms[0].File {
		t.Errorf("the channel notification does not name the file: %v", meta)
	}
}

// An agent session that registers the name of a session that just crashed
// gets it once the mesh releases it, within the call, with the message sent
// to the name meanwhile.
func TestE2EMCPRegisterAfterCrash(t *testing.T) {
	m := newTestMesh(t)
	a := m.mcp("a", "--name", "ann")
	old := m.serve("old", "--name", "bob")
	if !old.serving() {
		t.Fatalf("serve --name bob: exit %d\n%s", old.code, old.stderr())
	}
	testutil.WaitFor(t, seeDeadline, "ann to see bob", func() bool { return a.sessions()["bob"].Name != "" })
	old.kill(t)
	if _, d := a.ok("paf_send", map[string]any{"to": "bob", "message": "are you back?"}); d["status"] != "stored" {
		t.Fatalf("send to bob after its peer was killed: %v, want stored", d)
	}
	b := m.mcp("old") // the same user's new session: the same state dir and identity
	txt, d := b.ok("paf_register", map[string]any{"name": "bob"})
	if d["name"] != "bob" && !strings.Contains(txt, "Registered as bob") {
		t.Fatalf("paf_register bob after its old session crashed:\n%s", txt)
	}
	if !strings.Contains(txt, "1 unread message") {
		t.Errorf("paf_register as bob does not report the message kept for it:\n%s", txt)
	}
	_, d = b.ok("paf_check", nil)
	if ms := msgsOf(t, d); len(ms) != 1 || ms[0].Body != "are you back?" {
		t.Fatalf("bob's first check: %+v", ms)
	}
}
