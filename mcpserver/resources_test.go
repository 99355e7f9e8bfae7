package mcpserver

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/paf-mesh/paf-mesh/internal/testutil"
	"github.com/paf-mesh/paf-mesh/relay"
)

func TestResourcesAndPrompts(t *testing.T) {
	fm := newFakeMesh()
	ss := startSession(t, fm.peer(), testConfig(t))
	ss.ok("paf_register", map[string]any{"name": "me", "description": "tester"})
	sub := mcp.SubscribeRequest{}
	sub.Params.URI = inboxURI
	//lint:ignore SA1019 the agent clients speak the initialize-era protocol, where resources/subscribe is how a client asks for updates
	if err := ss.c.Subscribe(context.Background(), sub); err != nil {
		t.Fatal(err)
	}
	fm.inject(relay.Message{From: "x", To: "me", Kind: relay.KindMessage, Body: "in the inbox"})
	testutil.WaitForEvery(t, waitPoll, 2*time.Second, "resources/updated for the inbox", func() bool {
		for _, n := range ss.notes.Of(mcp.MethodNotificationResourceUpdated) {
			if n.Params.AdditionalFields["uri"] == inboxURI {
				return true
			}
		}
		return false
	})
	read := func(uri string) string {
		req := mcp.ReadResourceRequest{}
		req.Params.URI = uri
		res, err := ss.c.ReadResource(context.Background(), req)
		if err != nil {
			t.Fatalf("read %s: %v", uri, err)
		}
		return res.Contents[0].(mcp.TextResourceContents).Text
	}
	for range 2 { // reading does not mark read
		if got := read(inboxURI); !strings.Contains(got, "in the inbox") {
			t.Fatalf("inbox resource: %s", got)
		}
	}
	if got := read(peersURI); !strings.Contains(got, `"description": "tester"`) {
		t.Fatalf("peers resource: %s", got)
	}
	sub.Params.URI = peersURI
	//lint:ignore SA1019 the agent clients speak the initialize-era protocol, where resources/subscribe is how a client asks for updates
	if err := ss.c.Subscribe(context.Background(), sub); err != nil {
		t.Fatal(err)
	}
	if err := fm.peer().Claim(context.Background(), "newcomer"); err != nil {
		t.Fatal(err)
	}
	testutil.WaitForEvery(t, waitPoll, 2*time.Second, "resources/updated for the peers", func() bool {
		for _, n := range ss.notes.Of(mcp.MethodNotificationResourceUpdated) {
			if n.Params.AdditionalFields["uri"] == peersURI {
				return true
			}
		}
		return false
	})
	if got := read(peersURI); !strings.Contains(got, `"newcomer"`) {
		t.Fatalf("peers resource: %s", got)
	}

	prompts, err := ss.c.ListPrompts(context.Background(), mcp.ListPromptsRequest{})
	if err != nil || len(prompts.Prompts) != 2 {
		t.Fatalf("prompts: %v %v", prompts, err)
	}
	req := mcp.GetPromptRequest{}
	req.Params.Name = "ask_peer"
	req.Params.Arguments = map[string]string{"peer": "expert", "question": "how?"}
	p, err := ss.c.GetPrompt(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if got := p.Messages[0].Content.(mcp.TextContent).Text; !strings.Contains(got, "paf_connect") || !strings.Contains(got, "how?") {
		t.Fatalf("ask_peer: %s", got)
	}
	req.Params.Name = "listen_as_expert"
	req.Params.Arguments = map[string]string{"topic": "billing"}
	if p, err = ss.c.GetPrompt(context.Background(), req); err != nil || !strings.Contains(p.Messages[0].Content.(mcp.TextContent).Text, "paf_listen") {
		t.Fatalf("listen_as_expert: %v %v", p, err)
	}
}

// Taking messages (paf_check) tells a subscriber of the inbox resource that it changed, as an
// arrival does.
func TestInboxResourceUpdatedWhenRead(t *testing.T) {
	fm := newFakeMesh()
	ss := startSession(t, fm.peer(), testConfig(t))
	ss.ok("paf_register", map[string]any{"name": "me"})
	sub := mcp.SubscribeRequest{}
	sub.Params.URI = inboxURI
	//lint:ignore SA1019 the agent clients speak the initialize-era protocol, where resources/subscribe is how a client asks for updates
	if err := ss.c.Subscribe(context.Background(), sub); err != nil {
		t.Fatal(err)
	}
	updates := func() int {
		n := 0
		for _, note := range ss.notes.Of(mcp.MethodNotificationResourceUpdated) {
			if note.Params.AdditionalFields["uri"] == inboxURI {
				n++
			}
		}
		return n
	}
	fm.inject(relay.Message{From: "x", To: "me", Kind: relay.KindMessage, Body: "to be read"})
	testutil.WaitForEvery(t, waitPoll, 2*time.Second, "resources/updated for the arrival", func() bool { return updates() == 1 })
	if txt, _ := ss.ok("paf_check", nil); !strings.Contains(txt, "to be read") {
		t.Fatalf("paf_check: %s", txt)
	}
	testutil.WaitForEvery(t, waitPoll, 2*time.Second, "resources/updated for the read", func() bool { return updates() == 2 })
}
