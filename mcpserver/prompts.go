package mcpserver

import (
	"context"
	"fmt"
	"strings"

	"github.com/mark3labs/mcp-go/mcp"
)

func (s *Server) addPrompts() {
	s.mcp.AddPrompt(mcp.NewPrompt("listen_as_expert",
		mcp.WithPromptDescription("Register as an expert on a topic and answer other sessions' questions"),
		mcp.WithArgument("topic", mcp.RequiredArgument(), mcp.ArgumentDescription("What you are the expert on")),
	), s.promptListen)
	s.mcp.AddPrompt(mcp.NewPrompt("ask_peer",
		mcp.WithPromptDescription("Ask another session a question and bring back its answer"),
		mcp.WithArgument("peer", mcp.RequiredArgument(), mcp.ArgumentDescription("The session to ask")),
		mcp.WithArgument("question", mcp.RequiredArgument(), mcp.ArgumentDescription("What to ask")),
	), s.promptAsk)
}

func (s *Server) promptListen(_ context.Context, req mcp.GetPromptRequest) (*mcp.GetPromptResult, error) {
	topic := strings.TrimSpace(req.Params.Arguments["topic"])
	if topic == "" {
		return nil, fmt.Errorf("listen_as_expert needs a topic: what you are the expert on")
	}
	text := fmt.Sprintf(`Act as the expert on %s for other agent sessions.
1. Call paf_register with a short name for this expertise and description %q (skip if already registered).
2. Call paf_listen. When it times out, call it again; keep listening until told to stop.
3. When a question arrives, answer it from what you know and can check in this workspace, with paf_respond (it goes to the right caller). Stay on the conversation's intent; keep answers concrete.
4. When a conversation ends (either side may end it), go back to paf_listen.`, topic, "Expert on "+topic)
	return mcp.NewGetPromptResult("Listen as the expert on "+topic,
		[]mcp.PromptMessage{mcp.NewPromptMessage(mcp.RoleUser, mcp.NewTextContent(text))}), nil
}

func (s *Server) promptAsk(_ context.Context, req mcp.GetPromptRequest) (*mcp.GetPromptResult, error) {
	peer := strings.TrimSpace(req.Params.Arguments["peer"])
	question := strings.TrimSpace(req.Params.Arguments["question"])
	if peer == "" || question == "" {
		return nil, fmt.Errorf("ask_peer needs a peer (the session to ask) and a question")
	}
	text := fmt.Sprintf(`Ask the session %q this question and bring back its answer:

%s

1. Call paf_list_sessions to check that %s is online and what it does (if it is not, paf_send still stores the question for it).
2. Call paf_connect(target_session=%q, intent=<the question in one sentence>); register a name first with paf_register if you have none.
3. paf_send the full question to %s, then call paf_wait_response until the answer arrives (call it again when it times out).
4. Ask follow-ups the same way if needed; when the question is resolved, call paf_end_session and report the answer.`, peer, question, peer, peer, peer)
	return mcp.NewGetPromptResult("Ask "+peer,
		[]mcp.PromptMessage{mcp.NewPromptMessage(mcp.RoleUser, mcp.NewTextContent(text))}), nil
}
