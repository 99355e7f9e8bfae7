package mcpserver

import (
	"context"
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"github.com/paf-mesh/paf-mesh/internal/testutil"
	"github.com/paf-mesh/paf-mesh/internal/testutil/mcptest"
	"github.com/paf-mesh/paf-mesh/relay"
)

// TestPushFollowsListenResult: a message that arrives while paf_listen
// waits is written to the client first in the listen's result, then pushed
// once as a channel notification.
func TestPushFollowsListenResult(t *testing.T) {
	r := startRaw(t, testConfig(t))
	r.send(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}` + "\n")
	r.next()
	r.send(`{"jsonrpc":"2.0","method":"notifications/initialized"}` + "\n")
	r.send(toolLine("2", `{"name":"paf_register","arguments":{"name":"me"}}`) + "\n")
	r.nextID(float64(2))
	for round := range 3 {
		id := float64(10 + round)
		r.send(toolLine(fmt.Sprint(id), `{"name":"paf_listen","arguments":{"timeout_seconds":600}}`) + "\n")
		testutil.WaitForEvery(t, waitPoll, 5*time.Second, "paf_listen to block", func() bool {
			r.s.mu.Lock()
			defer r.s.mu.Unlock()
			return r.s.listening == 1
		})
		body := fmt.Sprintf("arrival %d", round)
		r.fm.inject(relay.Message{From: "alice", To: "me", Kind: relay.KindMessage, Body: body})
		var order []string
		for len(order) < 2 {
			m := r.next()
			params, _ := m["params"].(map[string]any)
			switch {
			case m["id"] == id:
				order = append(order, "result")
			case m["method"] == channelMethod && params["content"] == body:
				order = append(order, "push")
			}
		}
		if order[0] != "result" || order[1] != "push" {
			t.Fatalf("round %d: %v, want the listen's result, then the push", round, order)
		}
	}
}

// TestListenLeavesUnreadPushed runs in a synctest bubble: an opening that a
// paf_listen leaves unread (cancelled within the opening grace) is not
// pushed while the listen waits, and is pushed once, as it leaves.
func TestListenLeavesUnreadPushed(t *testing.T) { synctest.Test(t, testListenLeavesUnreadPushed) }

func testListenLeavesUnreadPushed(t *testing.T) {
	fm := newFakeMesh()
	cfg := testConfig(t)
	cfg.OpeningGrace = time.Minute
	ss := startSession(t, fm.peer(), cfg)
	ss.ok("paf_register", map[string]any{"name": "me"})
	ctx, cancel := context.WithCancel(context.Background())
	listen := mcptest.Async(ctx, ss.c, "paf_listen", map[string]any{"timeout_seconds": 600}, nil)
	synctest.Wait()
	fm.inject(relay.Message{From: "bob", To: "me", Kind: relay.KindMessage, ConversationID: "c-bob", Intent: "a question",
		Body: openingBody("bob", "c-bob", "a question")})
	synctest.Wait()
	if n := len(ss.notes.Of(channelMethod)); n != 0 {
		t.Fatalf("%d channel notifications while paf_listen waits, want 0", n)
	}
	cancel()
	<-listen
	synctest.Wait()
	notes := ss.notes.Of(channelMethod)
	if len(notes) != 1 {
		t.Fatalf("%d channel notifications after paf_listen left the opening unread, want 1", len(notes))
	}
	if meta, _ := notes[0].Params.AdditionalFields["meta"].(map[string]any); meta["conversation_id"] != "c-bob" {
		t.Fatalf("pushed: %v", notes[0].Params.AdditionalFields)
	}
	if n, _, _ := ss.p.InboxState("me"); n != 1 {
		t.Fatalf("unread %d after the cancelled paf_listen, want 1", n)
	}
	// The listen after it returns the opening, which is not pushed again.
	lctx, lcancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer lcancel()
	res := await(t, mcptest.Async(lctx, ss.c, "paf_listen", map[string]any{"timeout_seconds": 600}, nil), 3*time.Minute)
	if ms := messages(t, mcptest.Structured(t, res)); len(ms) != 1 || ms[0].ConversationID != "c-bob" {
		t.Fatalf("paf_listen: %s", mcptest.Text(res))
	}
	synctest.Wait()
	if n := len(ss.notes.Of(channelMethod)); n != 1 {
		t.Fatalf("%d channel notifications after the opening was read, want still 1", n)
	}
}
