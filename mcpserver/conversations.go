package mcpserver

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/mark3labs/mcp-go/mcp"

	"github.com/paf-mesh/paf-mesh/relay"
)

// maxIntent is the relay's limit on an intent (4 KiB): a sentence or two is
// what belongs there.
const maxIntent = 4 << 10

func checkIntent(intent, param, tool string) (string, error) {
	intent = strings.TrimSpace(intent)
	switch {
	case intent == "":
		return "", userErrorf("%s is empty: say in a sentence what the conversation is for, and call %s again.", param, tool)
	case len(intent) > maxIntent:
		return "", userErrorf("%s is %d bytes; the limit is %d. Say it in a sentence or two and send the details as a message.", param, len(intent), maxIntent)
	}
	return intent, nil
}

func (s *Server) connect(ctx context.Context, _ mcp.CallToolRequest, a connectArgs) (*reply, error) {
	from, err := s.ensureName(ctx, a.MyName, "my_name")
	if err != nil {
		return nil, err
	}
	to, err := recipient(a.TargetSession, from)
	if err != nil {
		return nil, err
	}
	intent, err := checkIntent(a.Intent, "intent", "paf_connect")
	if err != nil {
		return nil, err
	}
	now := s.cfg.Now()
	c := &conversation{ID: newConversationID(), Peer: to, Intent: intent, Caller: true, OpenedAt: now, LastActivity: now}
	// Recorded before sending: the answer can arrive before Send returns.
	s.mu.Lock()
	s.addConvLocked(c)
	s.touchLocked(c)
	s.bumpLocked()
	s.mu.Unlock()
	res, err := s.b.Send(ctx, relay.Outgoing{
		From: from, To: to, Kind: relay.KindMessage,
		ConversationID: c.ID, Intent: intent, Body: openingBody(from, c.ID, intent),
	})
	if err != nil {
		s.mu.Lock()
		delete(s.convs, c.ID)
		s.bumpLocked()
		s.mu.Unlock()
		return nil, err
	}
	s.mu.Lock()
	c.Peer = res.To // after forwards: the name that answers
	s.mu.Unlock()
	s.kickPresence()
	next := fmt.Sprintf("Now send your question with paf_send(to=%q, message=...), then wait for the answer with paf_wait_response.", res.To)
	text := fmt.Sprintf("Conversation %s opened with %s. %s\nIntent: %s\n%s", c.ID, res.To, sentText(res), intent, next)
	data := resultData(res)
	data["conversation_id"] = c.ID
	data["intent"] = intent
	return &reply{text: text, data: data, next: next}, nil
}

// pickConv is the conversation a respond or refocus acts on: the one named,
// or the latest open one.
func (s *Server) pickConv(id, tool string) (*conversation, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if id != "" {
		c, err := s.convArgLocked(id, tool)
		if err != nil {
			return nil, err
		}
		if c.Ended {
			return nil, endedErr(c, tool)
		}
		return c, nil
	}
	c := s.latestOpenLocked()
	if c == nil {
		return nil, userErrorf("This session has no open conversation to %s: nobody has opened one with it, or all have ended. Use paf_send to message a session directly, paf_connect to open a conversation, or paf_listen to wait for a caller.", strings.TrimPrefix(tool, "paf_"))
	}
	return c, nil
}

func (s *Server) respond(ctx context.Context, _ mcp.CallToolRequest, a respondArgs) (*reply, error) {
	from, err := s.ensureName(ctx, a.SessionName, "session_name")
	if err != nil {
		return nil, err
	}
	c, err := s.pickConv(a.ConversationID, "paf_respond")
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	o := relay.Outgoing{From: from, To: c.Peer, Body: a.Message, Kind: relay.KindReply, ConversationID: c.ID, Intent: c.Intent}
	s.mu.Unlock()
	res, err := s.b.Send(ctx, o)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.touchLocked(c)
	s.mu.Unlock()
	next := "Call paf_listen for the next message."
	if c.Caller {
		next = "Call paf_wait_response for the answer."
	}
	data := resultData(res)
	data["conversation_id"] = c.ID
	return &reply{text: fmt.Sprintf("Replied in conversation %s. %s %s", c.ID, sentText(res), next), data: data, next: next}, nil
}

func (s *Server) refocus(ctx context.Context, _ mcp.CallToolRequest, a refocusArgs) (*reply, error) {
	from := s.b.Name()
	if from == "" {
		return nil, userErrorf("This session has no name and so no conversation to refocus: paf_connect opens one.")
	}
	intent, err := checkIntent(a.NewIntent, "new_intent", "paf_refocus")
	if err != nil {
		return nil, err
	}
	c, err := s.pickConv(a.ConversationID, "paf_refocus")
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	old := c.Intent
	o := relay.Outgoing{
		From: from, To: c.Peer, Kind: relay.KindRefocus, ConversationID: c.ID, Intent: intent,
		Body: fmt.Sprintf("%s changed the focus of conversation %s.\nBefore: %s\nNow: %s", from, c.ID, old, intent),
	}
	s.mu.Unlock()
	res, err := s.b.Send(ctx, o)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	if c.Intent != intent {
		c.Former = append(c.Former, c.Intent)
		c.Intent = intent
	}
	s.touchLocked(c)
	s.bumpLocked()
	s.mu.Unlock()
	s.kickPresence()
	data := resultData(res)
	data["conversation_id"] = c.ID
	data["intent"] = intent
	data["former_intent"] = old
	return &reply{text: fmt.Sprintf("Focus of conversation %s changed to: %s\n%s", c.ID, intent, sentText(res)), data: data}, nil
}

func (s *Server) endSession(ctx context.Context, _ mcp.CallToolRequest, a endArgs) (*reply, error) {
	if a.ConversationID != "" {
		s.mu.Lock()
		c, err := s.convArgLocked(a.ConversationID, "paf_end_session")
		if err != nil {
			s.mu.Unlock()
			return nil, err
		}
		if c.Ended {
			s.mu.Unlock()
			return &reply{text: fmt.Sprintf("Conversation %s with %s had already ended.", c.ID, c.Peer), data: map[string]any{"ended": []string{}}}, nil
		}
		s.mu.Unlock()
		failed := s.endConvs(ctx, []*conversation{c}, "you", "")
		return endReply([]*conversation{c}, failed, false), nil
	}
	// No id: stop listening, and end everything.
	s.mu.Lock()
	close(s.stopListen)
	s.stopListen = make(chan struct{})
	open := s.openConvsLocked()
	s.bumpLocked()
	s.mu.Unlock()
	failed := s.endConvs(ctx, open, "you", "")
	return endReply(open, failed, true), nil
}

func endReply(ended []*conversation, failed map[string]error, all bool) *reply {
	var b strings.Builder
	if all {
		b.WriteString("Stopped listening. ")
	}
	ids := []string{}
	switch len(ended) {
	case 0:
		b.WriteString("No conversation was open.")
	default:
		var parts []string
		for _, c := range ended {
			ids = append(ids, c.ID)
			parts = append(parts, c.ID+" with "+c.Peer)
		}
		fmt.Fprintf(&b, "Ended %s: %s.", plural(len(ended), "conversation", "conversations"), strings.Join(parts, ", "))
	}
	notTold := map[string]string{}
	for id, err := range failed {
		notTold[id] = trimPkg(err)
		fmt.Fprintf(&b, "\nCould not tell the other side of %s: %s.", id, trimPkg(err))
	}
	return &reply{text: b.String(), data: map[string]any{"ended": ids, "not_told": notTold}}
}

// endConvs marks the conversations ended (by who: "you" or "idle") and
// tells each other side with an end message, in parallel. It returns the
// conversations whose other side could not be told.
func (s *Server) endConvs(ctx context.Context, convs []*conversation, who, reason string) map[string]error {
	from := s.b.Name()
	now := s.cfg.Now()
	type job struct {
		id string
		o  relay.Outgoing
	}
	var jobs []job
	s.mu.Lock()
	for _, c := range convs {
		if c.Ended {
			continue
		}
		c.Ended, c.EndedBy, c.EndedAt = true, who, now
		body := fmt.Sprintf("%s ended conversation %s.", from, c.ID)
		if reason != "" {
			body = fmt.Sprintf("Conversation %s ended: %s.", c.ID, reason)
		}
		jobs = append(jobs, job{c.ID, relay.Outgoing{From: from, To: c.Peer, Kind: relay.KindEnd, ConversationID: c.ID, Intent: c.Intent, Body: body}})
	}
	s.bumpLocked()
	s.mu.Unlock()
	s.kickPresence()
	failed := map[string]error{}
	if from == "" {
		return failed
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, j := range jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sctx, cancel := context.WithTimeout(ctx, s.cfg.SendTimeout)
			defer cancel()
			if _, err := s.b.Send(sctx, j.o); err != nil {
				s.log.Info("could not tell the other side that a conversation ended", "conversation", j.id, "to", j.o.To, "err", err)
				mu.Lock()
				failed[j.id] = err
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return failed
}

// endAll ends every open conversation when the session closes.
func (s *Server) endAll(ctx context.Context, reason string) {
	rctx, cancel := context.WithTimeout(ctx, s.cfg.SendTimeout)
	defer cancel()
	if s.b.Ready(rctx) != nil {
		return
	}
	s.mu.Lock()
	open := s.openConvsLocked()
	s.mu.Unlock()
	if len(open) > 0 {
		s.endConvs(ctx, open, "you", reason)
	}
}
