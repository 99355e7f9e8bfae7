package mcpserver

import (
	"context"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/paf-mesh/paf-mesh/internal/testutil"
	"github.com/paf-mesh/paf-mesh/internal/testutil/mcptest"
)

// Claude Code and Codex show the model a result's structuredContent, not its text: the
// guidance of what to call next must be there too, as "next" (SPEC section 5).
//
// In a synctest bubble: the timed-out paf_wait_response below takes its 1 s
// on the bubble's clock.
func TestStructuredResultsCarryNext(t *testing.T) { synctest.Test(t, testStructuredResultsCarryNext) }

func testStructuredResultsCarryNext(t *testing.T) {
	fm := newFakeMesh()
	cfg := testConfig(t)
	expert := startSession(t, fm.peer(), cfg)
	caller := startSession(t, fm.peer(), cfg)
	expert.ok("paf_register", map[string]any{"name": "expert"})

	next := func(who string, d map[string]any, want ...string) {
		t.Helper()
		n, _ := d["next"].(string)
		for _, w := range want {
			if !strings.Contains(n, w) {
				t.Errorf("%s: next = %q, want it to mention %q (structured: %v)", who, n, w, d)
			}
		}
	}
	_, d := caller.ok("paf_connect", map[string]any{"target_session": "expert", "intent": "retries", "my_name": "alice"})
	conv := d["conversation_id"].(string)
	next("connect", d, "paf_send", "paf_wait_response")
	_, d = caller.ok("paf_send", map[string]any{"to": "expert", "message": "why?"})
	next("send in a conversation", d, "paf_wait_response")

	_, d = expert.ok("paf_listen", map[string]any{"timeout_seconds": 5})
	next("listen with a question", d, "paf_respond", conv)
	_, d = expert.ok("paf_respond", map[string]any{"message": "because"})
	next("respond", d, "paf_listen")

	_, d = caller.ok("paf_wait_response", map[string]any{"timeout_seconds": 5})
	if ms := messages(t, d); len(ms) != 1 || ms[0].Body != "because" {
		t.Fatalf("wait_response: %+v", ms)
	}
	_, d = caller.ok("paf_wait_response", map[string]any{"timeout_seconds": 1})
	if d["timed_out"] != true {
		t.Fatalf("wait_response with nothing to come: %v", d)
	}
	next("timed out", d, "paf_wait_response", "again")

	// A plain message the caller has not read: every result says so in "next".
	expert.ok("paf_send", map[string]any{"to": "alice", "message": "one more thing", "conversation_id": ""})
	var got map[string]any
	testutil.WaitForEvery(t, waitPoll, 5*time.Second, "the caller to see the unread message", func() bool {
		_, got = caller.ok("paf_list_sessions", nil)
		return got["unread"] != float64(0)
	})
	next("unread waiting", got, "paf_check")

	// A plain message picked up by paf_listen: listen again.
	caller.ok("paf_check", nil)
	other := startSession(t, fm.peer(), cfg)
	other.ok("paf_register", map[string]any{"name": "bob"})
	ch := mcptest.Async(context.Background(), other.c, "paf_listen", map[string]any{"timeout_seconds": 5}, nil)
	caller.ok("paf_send", map[string]any{"to": "bob", "message": "fyi"})
	res := await(t, ch, 5*time.Second)
	next("listen with a plain message", mcptest.Structured(t, res), "paf_listen")
}

// A queued message (SPEC section 3): the structured result says queued, why, and that there
// is nothing to resend; so does the text.
func TestQueuedSendResult(t *testing.T) {
	fm := newFakeMesh()
	cfg := testConfig(t)
	alice := startSession(t, fm.peer(), cfg)
	bob := startSession(t, fm.peer(), cfg)
	alice.ok("paf_register", map[string]any{"name": "alice"})
	bob.ok("paf_register", map[string]any{"name": "bob"})
	fm.mu.Lock()
	fm.queueReason = "not answering: no confirmation from bob's peer yet"
	fm.mu.Unlock()
	text, d := alice.ok("paf_send", map[string]any{"to": "bob", "message": "are you there?"})
	if d["status"] != "queued" || d["reason"] != "not answering: no confirmation from bob's peer yet" || d["id"] == "" {
		t.Fatalf("structured result %v; want status queued with its reason and id", d)
	}
	if n, _ := d["next"].(string); !strings.Contains(n, "do not send it again") {
		t.Fatalf("next = %q; want it to say not to resend", n)
	}
	for _, want := range []string{"Queued for bob", "retries it with the same id", "not answering"} {
		if !strings.Contains(text, want) {
			t.Errorf("text %q does not say %q", text, want)
		}
	}
}
