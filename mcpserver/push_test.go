package mcpserver

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/mark3labs/mcp-go/mcp"

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

// writeLog is an output that keeps each Write apart.
type writeLog struct{ writes chan string }

func (w *writeLog) Write(p []byte) (int, error) {
	w.writes <- string(p)
	return len(p), nil
}

// TestPushInResultWrite: a message a paf_listen served by the stdio loop
// returns is pushed once, right behind the result, in the same write (one
// write(2) and no wake of the push loop for it), and never again.
func TestPushInResultWrite(t *testing.T) {
	fm := newFakeMesh()
	cfg := testConfig(t)
	cfg.Backend = fm.peer()
	s := New(cfg)
	inR, inW := io.Pipe()
	out := &writeLog{writes: make(chan string, 100)}
	done := make(chan error, 1)
	go func() { done <- s.ServeStdio(context.Background(), inR, out) }()
	t.Cleanup(func() {
		inW.Close()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	send := func(line string) {
		t.Helper()
		if _, err := io.WriteString(inW, line+"\n"); err != nil {
			t.Fatal(err)
		}
	}
	// until returns the write that holds the answer to id, and the channel
	// notifications written before it.
	until := func(id string) (string, []string) {
		t.Helper()
		var notes []string
		for {
			select {
			case w := <-out.writes:
				if strings.Contains(w, `"id":`+id+`,`) {
					return w, notes
				}
				if strings.Contains(w, channelMethod) {
					notes = append(notes, w)
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("no answer to %s", id)
			}
		}
	}
	send(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`)
	until("1")
	send(`{"jsonrpc":"2.0","method":"notifications/initialized"}`)
	send(toolLine("2", `{"name":"paf_register","arguments":{"name":"me"}}`))
	until("2")
	for round := range 3 {
		id := fmt.Sprint(10 + round)
		send(toolLine(id, `{"name":"paf_listen","arguments":{"timeout_seconds":600}}`))
		testutil.WaitForEvery(t, waitPoll, 5*time.Second, "paf_listen to block", func() bool {
			s.mu.Lock()
			defer s.mu.Unlock()
			return s.listening == 1
		})
		body := fmt.Sprintf("arrival <%d> & more", round)
		fm.inject(relay.Message{From: "alice", To: "me", Kind: relay.KindMessage, Body: body})
		w, notes := until(id)
		if len(notes) != 0 {
			t.Fatalf("round %d: pushed before the result: %q", round, notes)
		}
		lines := strings.SplitAfter(strings.TrimSuffix(w, "\n"), "\n")
		if len(lines) != 2 || !strings.HasSuffix(w, "\n") {
			t.Fatalf("round %d: the write holds %d lines, want the result and the push: %q", round, len(lines), w)
		}
		var res struct {
			Result struct {
				StructuredContent struct {
					Messages []relay.JSONMessage `json:"messages"`
				} `json:"structuredContent"`
			} `json:"result"`
		}
		var note struct {
			Method string `json:"method"`
			Params struct {
				Content string            `json:"content"`
				Meta    map[string]string `json:"meta"`
			} `json:"params"`
		}
		if err := json.Unmarshal([]byte(lines[0]), &res); err != nil || len(res.Result.StructuredContent.Messages) != 1 {
			t.Fatalf("round %d: result %q (%v)", round, lines[0], err)
		}
		if err := json.Unmarshal([]byte(lines[1]), &note); err != nil || note.Method != channelMethod ||
			note.Params.Content != body || note.Params.Meta["message_id"] != res.Result.StructuredContent.Messages[0].ID {
			t.Fatalf("round %d: push %q (%v)", round, lines[1], err)
		}
		// Not pushed again: by the push loop, which a paf_check's
		// reading of the inbox wakes.
		send(toolLine(id+"0", `{"name":"paf_check","arguments":{}}`))
		if _, notes := until(id + "0"); len(notes) != 0 {
			t.Fatalf("round %d: pushed again: %q", round, notes)
		}
	}
}

// TestChannelNoteAsMCPGo: the stdio loop's own encoding of a channel
// notification is, byte for byte, mcp-go's of channelParams.
func TestChannelNoteAsMCPGo(t *testing.T) {
	at := time.Date(2026, 12, 7, 1, 2, 3, 4, time.UTC)
	for name, m := range map[string]relay.Message{
		"plain":     {ID: "m1", From: "alice", To: "me", Kind: relay.KindMessage, Body: "hi", SentAt: at},
		"all facts": {ID: "m2", From: "bob", To: "me", Kind: relay.KindReply, Body: "<b>&\u2028é\n\"x\"", SentAt: at, ConversationID: "c-1", Intent: "why <not>", ForwardedFrom: "old", File: "/tmp/f", Broadcast: true},
		"refocus":   {ID: "m3", From: "c", Kind: relay.KindRefocus, Intent: "new", ConversationID: "c-2"},
		"empty":     {},
		"system":    {ID: "m4", From: "x", Kind: relay.KindSystem, Body: "notice"},
	} {
		var got, want strings.Builder
		if err := json.NewEncoder(&got).Encode(newChannelNote(&m)); err != nil {
			t.Fatal(err)
		}
		if err := json.NewEncoder(&want).Encode(mcp.JSONRPCNotification{JSONRPC: mcp.JSONRPC_VERSION, Notification: mcp.Notification{
			Method: channelMethod, Params: mcp.NotificationParams{AdditionalFields: channelParams(m)},
		}}); err != nil {
			t.Fatal(err)
		}
		if got.String() != want.String() {
			t.Errorf("%s:\n got %s\nwant %s", name, got.String(), want.String())
		}
	}
}

// TestWaitReadsInboxOnlyWhenUnread runs in a synctest bubble: a paf_listen
// that waits reads the inbox (Peek) neither when it starts with nothing
// unread nor when it is woken by another change of the session, only once
// a message is there; and pushLoop does not read it for nothing either.
func TestWaitReadsInboxOnlyWhenUnread(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fm := newFakeMesh()
		ss := startSession(t, fm.peer(), testConfig(t))
		ss.ok("paf_register", map[string]any{"name": "me"})
		synctest.Wait()
		peeks := func() int {
			fm.mu.Lock()
			defer fm.mu.Unlock()
			return ss.p.peeks
		}
		before := peeks()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		listen := mcptest.Async(ctx, ss.c, "paf_listen", map[string]any{"timeout_seconds": 600}, nil)
		synctest.Wait()
		for range 3 {
			ss.s.mu.Lock()
			ss.s.bumpLocked() // wakes the waiting listen
			ss.s.mu.Unlock()
			synctest.Wait()
		}
		if n := peeks() - before; n != 0 {
			t.Fatalf("%d reads of an empty inbox while paf_listen waits, want 0", n)
		}
		fm.inject(relay.Message{From: "alice", To: "me", Kind: relay.KindMessage, Body: "hi"})
		res := await(t, listen, time.Minute)
		if ms := messages(t, mcptest.Structured(t, res)); len(ms) != 1 {
			t.Fatalf("paf_listen: %s", mcptest.Text(res))
		}
		synctest.Wait()
		if n := peeks() - before; n != 1 {
			t.Fatalf("%d reads of the inbox for one message, want 1", n)
		}
	})
}
