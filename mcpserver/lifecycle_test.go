package mcpserver

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/mark3labs/mcp-go/mcp"

	"github.com/paf-mesh/paf-mesh/internal/testutil"
	"github.com/paf-mesh/paf-mesh/internal/testutil/mcptest"
	"github.com/paf-mesh/paf-mesh/relay"
)

// Conversations over time: idle ends, grace periods, caps, renames, timeouts and claims.

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
