package mcpserver

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/mark3labs/mcp-go/mcp"

	"github.com/paf-mesh/paf-mesh/relay"
)

// picker chooses which unread messages a call returns; it runs under s.mu.
type picker func(m *relay.Message, cl msgClass) bool

func pickAll(*relay.Message, msgClass) bool { return true }

// take returns the unread messages of name that pick chooses, marked read
// and applied to the conversations, oldest first. accept, when set, may
// decline the batch (it stays unread). Nothing is marked read when ctx has
// ended: the caller's result would not reach the agent.
func (s *Server) take(ctx context.Context, name string, pick picker, accept func([]shown) bool) ([]shown, error) {
	s.takeMu.Lock()
	defer s.takeMu.Unlock()
	msgs, err := s.b.Peek(name)
	if err != nil {
		return nil, err
	}
	if len(msgs) == 0 {
		return nil, nil
	}
	forwards := s.b.Forwards()
	var items []shown
	opened := map[string]bool{} // conversations opened earlier in this batch
	s.mu.Lock()
	for i := range msgs {
		cl := s.classifyLocked(&msgs[i], forwards)
		if cl.opens {
			// Only the first message of a new conversation opens it; the
			// ones after it (the question) follow the opening.
			cl.opens, cl.follows = !opened[msgs[i].ConversationID], opened[msgs[i].ConversationID]
			opened[msgs[i].ConversationID] = true
		}
		if pick(&msgs[i], cl) {
			items = append(items, shown{m: msgs[i], cl: cl})
		}
	}
	s.mu.Unlock()
	if len(items) == 0 || (accept != nil && !accept(items)) {
		return nil, nil
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	ids := make([]string, len(items))
	for i, it := range items {
		ids[i] = it.m.ID
	}
	// Between the Ack and the deletes from s.pushed below, pushNew would
	// see these ids pushed and no longer unread, and tell subscribers of a
	// change this take tells of itself: two resources/updated for one read.
	s.mu.Lock()
	for _, id := range ids {
		s.taking[id] = true
	}
	s.mu.Unlock()
	if _, err := s.b.Ack(name, ids); err != nil {
		// Shown but not marked read: they will be shown again, which is
		// better than losing them.
		s.log.Warn("mark messages read", "name", name, "count", len(ids), "err", err)
	}
	gate, _ := ctx.Value(pushGateKey{}).(*pushGate)
	s.mu.Lock()
	unpushed := false
	for i := range items {
		// Classify again in order: an opening earlier in the batch makes
		// the messages after it part of its conversation.
		items[i].cl = s.classifyLocked(&items[i].m, forwards)
		items[i].conv = s.applyLocked(&items[i].m, items[i].cl)
		if !s.pushed[items[i].m.ID] && len(s.pushAfter) < maxPushAfter {
			// Not pushed yet: pushed after the result (pushNew).
			s.pushAfter = append(s.pushAfter, pushItem{m: items[i].m, held: gate != nil})
			if gate != nil {
				gate.ids = append(gate.ids, items[i].m.ID)
			}
			unpushed = true
		}
		delete(s.pushed, items[i].m.ID)
		delete(s.taking, items[i].m.ID)
	}
	s.bumpLocked()
	sub := s.subscribed[inboxURI]
	s.mu.Unlock()
	s.kickPresence()
	if unpushed && gate == nil {
		kick(s.pushKick)
	}
	if sub {
		// Told here: pushLoop, which tells of arrivals, sees nothing gone once the taken
		// ids have left s.pushed above (it used to be kicked for this, and told nothing).
		s.resourceUpdated(inboxURI)
	}
	return items, nil
}

// messagesReply renders taken messages.
func (s *Server) messagesReply(items []shown) *reply {
	var b strings.Builder
	writeMessages(&b, items)
	ms := make([]msgJSON, len(items))
	var convs []convJSON
	seen := map[string]bool{}
	s.mu.Lock()
	for i, it := range items {
		ms[i] = toMsgJSON(it)
		if c := it.conv; c != nil && !seen[c.ID] {
			seen[c.ID] = true
			convs = append(convs, c.json())
		}
	}
	s.mu.Unlock()
	hint := replyHint(items)
	if hint != "" {
		b.WriteString("\n" + hint + "\n")
	}
	return &reply{text: b.String(), data: map[string]any{"messages": ms, "conversations": nonNil(convs)}, next: hint}
}

// replyHint says how to answer, when the batch holds conversation messages.
func replyHint(items []shown) string {
	var open []string
	seen := map[string]bool{}
	for _, it := range items {
		if c := it.conv; c != nil && !seen[c.ID] {
			seen[c.ID] = true
			if !c.Ended && !c.Caller {
				open = append(open, c.ID)
			}
		}
	}
	switch len(open) {
	case 0:
		return ""
	case 1:
		return "Answer with paf_respond (conversation " + open[0] + ")."
	}
	return "Answer each with paf_respond(conversation_id=...): " + strings.Join(open, ", ") + "."
}

// callStartKey keys the time a tool call began in its context.
type callStartKey struct{}

// callStart is when the tool call of ctx began (now, outside one).
func callStart(ctx context.Context) time.Time {
	if t, ok := ctx.Value(callStartKey{}).(time.Time); ok {
		return t
	}
	return time.Now()
}

// waitSpec describes one blocking call.
type waitSpec struct {
	tool    string
	timeout time.Duration
	pick    picker
	// listen: a paf_listen, which makes the session "listening", is woken
	// by paf_end_session, and gives a new conversation's opening a moment
	// for the question that follows it.
	listen bool
	// over, when set, is checked under s.mu on every wake: a reason to
	// return with nothing (the awaited conversation ended).
	over func() string
}

// wait blocks until pick chooses at least one unread message, the timeout
// passes, over says so, or ctx ends; it sends progress notifications while
// it waits if the request asked for them.
func (s *Server) wait(ctx context.Context, req mcp.CallToolRequest, w waitSpec) (*reply, error) {
	// timeout_seconds bounds the whole call: time spent before the wait
	// (the peer joining, a name being released) counts, so that a call
	// never outlasts what its client allows for it.
	start := callStart(ctx)
	timer := time.NewTimer(max(w.timeout-time.Since(start), 0))
	defer timer.Stop()
	var progress <-chan time.Time
	token := progressToken(req)
	if token != nil {
		t := time.NewTicker(s.cfg.ProgressInterval)
		defer t.Stop()
		progress = t.C
	}
	if w.listen {
		s.mu.Lock()
		s.listening++
		s.mu.Unlock()
		s.kickPresence()
		defer func() {
			s.mu.Lock()
			s.listening--
			s.mu.Unlock()
			s.kickPresence()
			kick(s.pushKick) // what it left unread is pushed now (pushNew)
		}()
	}
	var graceUntil time.Time
	var grace <-chan time.Time
	for {
		name := s.b.Name()
		if name == "" {
			return nil, userErrorf("This session has no name (it was lost or released): paf_register one, then call %s again.", w.tool)
		}
		// Take the channels before looking, so no change is missed.
		unread, inboxChanged, err := s.b.InboxState(name)
		if err != nil {
			return nil, err
		}
		s.mu.Lock()
		changed, stop := s.changed, s.stopListen
		s.mu.Unlock()

		accept := func(items []shown) bool {
			if !w.listen || s.cfg.OpeningGrace == 0 || !allOpenings(items) {
				return true
			}
			now := time.Now()
			if graceUntil.IsZero() {
				graceUntil = now.Add(s.cfg.OpeningGrace)
				grace = time.After(s.cfg.OpeningGrace)
			}
			return !now.Before(graceUntil)
		}
		// With nothing unread there is nothing to take (a listen that
		// starts before the question arrives; a wake for another change):
		// an arrival after InboxState closes inboxChanged.
		var items []shown
		if unread > 0 {
			if items, err = s.take(ctx, name, w.pick, accept); err != nil && ctx.Err() == nil {
				return nil, err
			}
		}
		if len(items) > 0 {
			r := s.messagesReply(items)
			if r.next == "" && w.listen {
				r.next = "Call paf_listen again to wait for the next message."
			}
			return r, nil
		}
		if w.over != nil {
			s.mu.Lock()
			why := w.over()
			s.mu.Unlock()
			if why != "" {
				return &reply{text: why, data: map[string]any{"messages": []msgJSON{}, "ended": true}, next: why}, nil
			}
		}
		select {
		case <-ctx.Done():
			// The client gave up on this call (notifications/cancelled):
			// nothing was marked read, so nothing is lost.
			return &reply{text: "Cancelled; nothing was marked read.", data: map[string]any{"messages": []msgJSON{}, "cancelled": true}}, nil
		case <-timer.C:
			secs := int(w.timeout.Round(time.Second) / time.Second)
			next := fmt.Sprintf("Call %s again to keep waiting.", w.tool)
			return &reply{
				text: fmt.Sprintf("Nothing arrived in %d s. %s", secs, next),
				data: map[string]any{"messages": []msgJSON{}, "timed_out": true, "waited_seconds": secs},
				next: next,
			}, nil
		case <-stop:
			if w.listen {
				return &reply{text: "Stopped listening (paf_end_session).", data: map[string]any{"messages": []msgJSON{}, "stopped": true}}, nil
			}
		case <-progress:
			s.progress(ctx, token, time.Since(start), w)
		case <-grace:
		case <-inboxChanged:
		case <-changed:
		}
	}
}

func allOpenings(items []shown) bool {
	for _, it := range items {
		if !it.cl.opens {
			return false
		}
	}
	return true
}

func progressToken(req mcp.CallToolRequest) mcp.ProgressToken {
	if req.Params.Meta == nil {
		return nil
	}
	return req.Params.Meta.ProgressToken
}

// progress sends one notifications/progress for a blocked call. Failure
// (the notification queue is full) is harmless: the next one follows.
func (s *Server) progress(ctx context.Context, token mcp.ProgressToken, elapsed time.Duration, w waitSpec) {
	secs := elapsed.Round(time.Second).Seconds()
	err := s.mcp.SendNotificationToClient(ctx, string(mcp.MethodNotificationProgress), map[string]any{
		"progressToken": token,
		"progress":      secs,
		"total":         w.timeout.Seconds(),
		"message":       fmt.Sprintf("%s: waited %.0f s of %.0f s", w.tool, secs, w.timeout.Seconds()),
	})
	if err != nil {
		s.log.Debug("progress notification", "err", err)
	}
}

// timeoutArg checks timeout_seconds.
func (s *Server) timeoutArg(tool string, v *float64) (time.Duration, error) {
	if v == nil {
		return s.cfg.DefaultWait, nil
	}
	limit := s.cfg.MaxWait.Seconds()
	if !(*v >= 1 && *v <= limit) { // also refuses NaN
		return 0, userErrorf("timeout_seconds must be between 1 and %.0f (default %.0f); call %s again with a value in that range.",
			limit, s.cfg.DefaultWait.Seconds(), tool)
	}
	return time.Duration(*v * float64(time.Second)), nil
}
