package mcpserver

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/mark3labs/mcp-go/mcp"

	"github.com/paf-mesh/paf-mesh/mesh"
	"github.com/paf-mesh/paf-mesh/relay"
)

// recipient normalises a recipient name and refuses this session's own.
func recipient(to, self string) (string, error) {
	n, err := mesh.NormalizeName(to)
	if err != nil {
		return "", err
	}
	if n == self {
		return "", fmt.Errorf("%w (%q)", relay.ErrToSelf, n)
	}
	return n, nil
}

// sentText says what happened to a sent message.
func sentText(res relay.Result) string {
	via := ""
	if res.ForwardedFrom != "" {
		via = fmt.Sprintf(" (sent to %s, which was renamed: forwarded to %s)", res.ForwardedFrom, res.To)
	}
	why := ""
	if res.Reason != "" {
		why = " Why: " + res.Reason + "."
	}
	switch {
	case res.Status == relay.StatusQueued:
		return fmt.Sprintf("Queued for %s%s: not confirmed yet. This session keeps the message (id %s) on disk and retries it with the same id until %s's peer or its holders confirm it; do not send it again (the retries cannot make it arrive twice, a resend would).%s",
			res.To, via, res.ID, res.To, why)
	case res.Status == relay.StatusStored && res.Unanswered:
		return fmt.Sprintf("%s's session is not answering (it may have just stopped): the message is stored, held by %s, and delivered when %s is back%s.%s",
			res.To, plural(res.Holders, "peer", "peers"), res.To, via, why)
	case res.Status == relay.StatusStored:
		return fmt.Sprintf("%s is not online: the message is stored, held by %s, and delivered when %s appears%s.%s",
			res.To, plural(res.Holders, "peer", "peers"), res.To, via, why)
	}
	return fmt.Sprintf("Delivered to %s%s.", res.To, via)
}

// queuedNext is the guidance for a queued message outside a conversation.
const queuedNext = "Nothing to do for this message: it is retried automatically, so do not send it again. Carry on with your work."

func resultData(res relay.Result) map[string]any {
	d := map[string]any{"id": res.ID, "status": res.Status, "to": res.To}
	if res.Status == relay.StatusStored {
		d["holders"] = res.Holders
	}
	if res.Reason != "" {
		d["reason"] = res.Reason
	}
	if res.ForwardedFrom != "" {
		d["forwarded_from"] = res.ForwardedFrom
	}
	return d
}

// convArgLocked looks up the conversation named by a conversation_id argument.
func (s *Server) convArgLocked(id, tool string) (*conversation, error) {
	c := s.convs[id]
	if c == nil {
		var ids []string
		for _, c := range s.openConvsLocked() {
			ids = append(ids, c.ID+" (with "+c.Peer+")")
		}
		known := "This session has no open conversation"
		if len(ids) > 0 {
			known = "Open conversations: " + strings.Join(ids, ", ")
		}
		return nil, userErrorf("No conversation %q in this session. %s. Call %s again with one of those ids, or without conversation_id.", clip(id, 64), known, tool)
	}
	return c, nil
}

func endedErr(c *conversation, tool string) error {
	by := c.EndedBy
	switch by {
	case "you":
		by = "this session"
	case "idle":
		by = "the idle timeout"
	}
	return userErrorf("Conversation %s with %s has ended (by %s). Open a new one with paf_connect, or call %s without conversation_id.", c.ID, c.Peer, by, tool)
}

func (s *Server) send(ctx context.Context, _ mcp.CallToolRequest, a sendArgs) (*reply, error) {
	from, err := s.ensureName(ctx, a.MyName, "my_name")
	if err != nil {
		return nil, err
	}
	to, err := recipient(a.To, from)
	if err != nil {
		return nil, err
	}
	o := relay.Outgoing{From: from, To: to, Body: a.Message, Kind: relay.KindMessage}
	forwards := s.b.Forwards()
	s.mu.Lock()
	var c *conversation
	if a.ConversationID != "" {
		if c, err = s.convArgLocked(a.ConversationID, "paf_send"); err != nil {
			s.mu.Unlock()
			return nil, err
		}
		if c.Ended {
			s.mu.Unlock()
			return nil, endedErr(c, "paf_send")
		}
		if !samePeer(forwards, c.Peer, to) {
			s.mu.Unlock()
			return nil, userErrorf("Conversation %s is with %s, not %s: send to %s, or leave conversation_id out to message %s directly.", c.ID, c.Peer, to, c.Peer, to)
		}
	} else {
		c = s.openWithLocked(to, forwards)
	}
	if c != nil {
		o.ConversationID, o.Intent = c.ID, c.Intent
		if !c.Caller {
			o.Kind = relay.KindReply
		}
	}
	s.mu.Unlock()
	res, err := s.b.Send(ctx, o)
	if err != nil {
		return nil, err
	}
	r := &reply{text: sentText(res), data: resultData(res)}
	if c != nil {
		s.mu.Lock()
		s.touchLocked(c)
		s.mu.Unlock()
		r.next = "Wait for the answer with paf_wait_response."
		r.text += fmt.Sprintf(" In conversation %s. %s", c.ID, r.next)
		r.data["conversation_id"] = c.ID
	} else if res.Status == relay.StatusQueued {
		r.next = queuedNext
		r.text += " " + queuedNext
	}
	return r, nil
}

func (s *Server) broadcast(ctx context.Context, _ mcp.CallToolRequest, a broadcastArgs) (*reply, error) {
	from := s.b.Name()
	if from == "" {
		return nil, userErrorf("This session has no name yet: call paf_register first, then paf_broadcast.")
	}
	res, err := s.b.Broadcast(ctx, from, a.Message)
	if err != nil {
		return nil, err
	}
	var b strings.Builder
	switch len(res.Delivered) {
	case 0:
		if len(res.Failed) == 0 {
			b.WriteString("No other named session is online, so nobody got the broadcast (broadcasts are not stored; paf_send to a name stores a message for later).")
		} else {
			b.WriteString("Nobody got the broadcast.")
		}
	default:
		fmt.Fprintf(&b, "Broadcast delivered to %s: %s.", plural(len(res.Delivered), "session", "sessions"), strings.Join(res.Delivered, ", "))
	}
	if len(res.Failed) > 0 {
		var names []string
		for n := range res.Failed {
			names = append(names, n)
		}
		sort.Strings(names)
		fmt.Fprintf(&b, "\nNot delivered to:")
		for _, n := range names {
			fmt.Fprintf(&b, "\n- %s: %s", n, trimPkg(fmt.Errorf("%s", res.Failed[n])))
		}
	}
	failed := res.Failed
	if failed == nil {
		failed = map[string]string{}
	}
	return &reply{text: b.String(), data: map[string]any{"delivered": nonNil(res.Delivered), "failed": failed, "count": len(res.Delivered)}}, nil
}

func (s *Server) check(ctx context.Context, _ mcp.CallToolRequest, _ noArgs) (*reply, error) {
	name := s.b.Name()
	if name == "" {
		return nil, userErrorf("This session has no name, so no one can have written to it: call paf_register first.")
	}
	items, err := s.take(ctx, name, pickAll, nil)
	if err != nil {
		return nil, err
	}
	if len(items) == 0 {
		return &reply{text: "No unread messages.", data: map[string]any{"messages": []msgJSON{}}}, nil
	}
	return s.messagesReply(items), nil
}

func (s *Server) listen(ctx context.Context, req mcp.CallToolRequest, a listenArgs) (*reply, error) {
	timeout, err := s.timeoutArg("paf_listen", a.TimeoutSeconds)
	if err != nil {
		return nil, err
	}
	if _, err := s.ensureName(ctx, a.SessionName, "session_name"); err != nil {
		return nil, err
	}
	if a.Description != "" {
		if err := s.b.SetDescription(ctx, a.Description); err != nil {
			return nil, err
		}
	}
	return s.wait(ctx, req, waitSpec{tool: "paf_listen", timeout: timeout, pick: pickAll, listen: true})
}

func (s *Server) waitResponse(ctx context.Context, req mcp.CallToolRequest, a waitArgs) (*reply, error) {
	timeout, err := s.timeoutArg("paf_wait_response", a.TimeoutSeconds)
	if err != nil {
		return nil, err
	}
	if s.b.Name() == "" {
		return nil, userErrorf("This session has no name and so no conversation: paf_connect(target_session, intent, my_name) opens one.")
	}
	w := waitSpec{tool: "paf_wait_response", timeout: timeout}
	s.mu.Lock()
	if a.ConversationID != "" {
		c, err := s.convArgLocked(a.ConversationID, "paf_wait_response")
		if err != nil {
			s.mu.Unlock()
			return nil, err
		}
		w.pick = func(_ *relay.Message, cl msgClass) bool { return cl.conv == c }
		w.over = func() string {
			if c.Ended {
				return fmt.Sprintf("Conversation %s with %s has ended; nothing more will come in it.", c.ID, c.Peer)
			}
			return ""
		}
	} else {
		if len(s.convs) == 0 {
			s.mu.Unlock()
			return nil, userErrorf("This session has no open conversation to wait in. Open one with paf_connect, or wait for any message with paf_listen.")
		}
		// With every conversation ended the wait still returns what is
		// unread in them (the ends themselves), then says they ended.
		w.pick = func(_ *relay.Message, cl msgClass) bool { return cl.conv != nil }
		w.over = func() string {
			if len(s.openConvsLocked()) == 0 {
				return "All of this session's conversations have ended. Open a new one with paf_connect, or wait for any message with paf_listen."
			}
			return ""
		}
	}
	s.mu.Unlock()
	return s.wait(ctx, req, w)
}
