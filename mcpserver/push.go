package mcpserver

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/mark3labs/mcp-go/mcp"

	"github.com/paf-mesh/paf-mesh/mesh"
	"github.com/paf-mesh/paf-mesh/relay"
)

// The background work of a session: pushing arrivals to the client,
// announcing the session's activity, ending idle conversations, and
// following the mesh for the peers resource.

const (
	channelMethod = "notifications/claude/channel"
	inboxURI      = "paf://inbox"
	peersURI      = "paf://peers"
)

// waitReady waits for the backend without a deadline; false when ctx ended
// or the peer failed to start.
func (s *Server) waitReady(ctx context.Context) bool {
	return s.b.Ready(ctx) == nil
}

// pushLoop sends each arriving message once as a Claude Code channel
// notification (SPEC section 5), and tells subscribers when the inbox
// changed. Pushed messages stay unread.
func (s *Server) pushLoop(ctx context.Context) {
	select {
	case <-ctx.Done():
		return
	case <-s.clientReady:
	}
	if !s.waitReady(ctx) {
		return
	}
	for {
		var changed <-chan struct{}
		if name := s.b.Name(); name != "" {
			unread, ch, err := s.b.InboxState(name)
			if err == nil {
				changed = ch
				s.pushNew(name, unread)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-changed:
		case <-s.pushKick:
		}
	}
}

// maxPushAfter bounds Server.pushAfter, for a server whose pushLoop does not
// run (served by a transport that never started it): past it a message a
// tool returned is not pushed, as mcp-go drops notifications past its queue.
const maxPushAfter = notificationQueue

// pushItem is a message a tool returned before it was pushed. held: the
// result that returned it is not written yet (pushGate).
type pushItem struct {
	m    relay.Message
	held bool
}

// pushGateKey keys a *pushGate in the context of a tool call the stdio loop
// serves itself: the messages the call returns are pushed only once its
// result is written (release), so that the client reads the result first.
// Without one (mcp-go's transports) they are pushed once pushLoop next runs.
type pushGateKey struct{}

type pushGate struct{ ids []string } // used by the call's own goroutine only

// release lets pushLoop push what the call behind g returned.
func (s *Server) release(g *pushGate) {
	if len(g.ids) == 0 {
		return
	}
	s.mu.Lock()
	for i := range s.pushAfter {
		if slices.Contains(g.ids, s.pushAfter[i].m.ID) {
			s.pushAfter[i].held = false
		}
	}
	s.mu.Unlock()
	kick(s.pushKick)
}

// takeHeld removes from pushAfter the messages the call behind g returned,
// and returns them, oldest first: the stdio loop pushes them itself right
// behind the call's result, in the same write (callTool), instead of waking
// pushLoop for them. release is then a no-op for g.
func (s *Server) takeHeld(g *pushGate) []relay.Message {
	if len(g.ids) == 0 {
		return nil
	}
	var out []relay.Message
	s.mu.Lock()
	kept := s.pushAfter[:0]
	for _, it := range s.pushAfter {
		if it.held && slices.Contains(g.ids, it.m.ID) {
			out = append(out, it.m)
		} else {
			kept = append(kept, it)
		}
	}
	clear(s.pushAfter[len(kept):])
	s.pushAfter = kept
	s.mu.Unlock()
	g.ids = nil
	return out
}

// pushNew pushes the messages a tool returned before they were pushed, then
// the unread messages not pushed yet. While a paf_listen waits it leaves the
// unread ones to it: paf_listen takes everything that arrives, and its
// result is what its agent waits for, so the notifications follow it
// (pushAfter) instead of going before it, with a read of the inbox, on the
// question -> answer path of SPEC section 10 (both ways). A paf_listen that
// returns without them (cancelled, stopped, or within the opening grace)
// kicks pushLoop as it leaves. unread is the inbox's count at the moment
// pushLoop took the channel it waits on next: with none unread the inbox is
// not read (a change after that wakes pushLoop again).
func (s *Server) pushNew(name string, unread int) {
	s.mu.Lock()
	var after []relay.Message
	held := s.pushAfter[:0]
	for _, it := range s.pushAfter {
		if it.held {
			held = append(held, it)
		} else {
			after = append(after, it.m)
		}
	}
	clear(s.pushAfter[len(held):])
	s.pushAfter = held
	listening := s.listening > 0
	s.mu.Unlock()
	for _, m := range after {
		s.mcp.SendNotificationToAllClients(channelMethod, channelParams(m))
	}
	if listening {
		return
	}
	var msgs []relay.Message
	if unread > 0 {
		var err error
		if msgs, err = s.b.Peek(name); err != nil {
			s.log.Debug("push: read inbox", "err", err)
			return
		}
	}
	var fresh []relay.Message
	forwards := s.b.Forwards()
	ended := false
	s.mu.Lock()
	now := s.cfg.Now()
	isUnread := make(map[string]bool, len(msgs))
	for _, m := range msgs {
		isUnread[m.ID] = true
		// A tool took it since it was read above: it is in pushAfter,
		// pushed next time.
		if s.pushed[m.ID] || slices.ContainsFunc(s.pushAfter, func(a pushItem) bool { return a.m.ID == m.ID }) {
			continue
		}
		s.pushed[m.ID] = true
		fresh = append(fresh, m)
		// An arrival is activity in its conversation, read or not yet; an
		// end ends it at once, so this side neither sends in it nor ends it
		// again for idleness.
		if cl := s.classifyLocked(&m, forwards); cl.conv != nil && cl.conv.open() {
			cl.conv.LastActivity = now
			if m.Kind == relay.KindEnd {
				cl.conv.Ended, cl.conv.EndedBy, cl.conv.EndedAt = true, m.From, now
				ended = true
			}
		}
	}
	gone := false
	for id := range s.pushed {
		if !isUnread[id] && !s.taking[id] {
			delete(s.pushed, id)
			gone = true
		}
	}
	sub := s.subscribed[inboxURI]
	if ended {
		s.bumpLocked()
	}
	s.mu.Unlock()
	if ended {
		s.kickPresence()
	}
	for _, m := range fresh {
		s.mcp.SendNotificationToAllClients(channelMethod, channelParams(m))
	}
	if sub && (len(fresh) > 0 || gone) {
		s.resourceUpdated(inboxURI)
	}
}

// channelNote is the notifications/claude/channel notification for m, as
// mcp-go encodes it from channelParams (its params are a map, encoded with
// sorted keys: the fields below are in that order), for the stdio loop to
// encode without building the maps (callTool).
type channelNote struct {
	JSONRPC string `json:"jsonrpc"`
	Method  string `json:"method"`
	Params  struct {
		Content string      `json:"content"`
		Meta    channelMeta `json:"meta"`
	} `json:"params"`
}

type channelMeta struct {
	Broadcast      string `json:"broadcast,omitempty"`
	ConversationID string `json:"conversation_id,omitempty"`
	File           string `json:"file,omitempty"`
	ForwardedFrom  string `json:"forwarded_from,omitempty"`
	From           string `json:"from"`
	Intent         string `json:"intent,omitempty"`
	Kind           string `json:"kind"`
	MessageID      string `json:"message_id"`
	SentAt         string `json:"sent_at"`
}

func newChannelNote(m *relay.Message) *channelNote {
	n := &channelNote{JSONRPC: mcp.JSONRPC_VERSION, Method: channelMethod}
	n.Params.Content = m.Body
	n.Params.Meta = channelMeta{
		ConversationID: m.ConversationID, File: m.File, ForwardedFrom: m.ForwardedFrom,
		From: m.From, Intent: m.Intent, Kind: m.Kind.String(), MessageID: m.ID, SentAt: stamp(m.SentAt),
	}
	if m.Broadcast {
		n.Params.Meta.Broadcast = "true"
	}
	return n
}

// channelParams is the notifications/claude/channel payload for m: the
// text as content, and the facts as meta, whose keys are letters, digits
// and underscores only (Claude Code drops other keys).
func channelParams(m relay.Message) map[string]any {
	content := m.Body // a body saved to a file is a preview that names the file
	meta := map[string]any{
		"from":       m.From,
		"message_id": m.ID,
		"sent_at":    stamp(m.SentAt),
		"kind":       m.Kind.String(),
	}
	for k, v := range map[string]string{
		"conversation_id": m.ConversationID, "intent": m.Intent,
		"forwarded_from": m.ForwardedFrom, "file": m.File,
	} {
		if v != "" {
			meta[k] = v
		}
	}
	if m.Broadcast {
		meta["broadcast"] = "true"
	}
	return map[string]any{"content": content, "meta": meta}
}

func (s *Server) resourceUpdated(uri string) {
	s.mcp.SendNotificationToAllClients(mcp.MethodNotificationResourceUpdated, map[string]any{"uri": uri})
}

// notify tells this session's agent something no message carries (its own
// conversation ended for idleness, its name lost): in the next tool result,
// and pushed at once.
func (s *Server) notify(text string, meta map[string]any) {
	s.mu.Lock()
	s.notices = append(s.notices, text)
	if len(s.notices) > 20 {
		s.notices = s.notices[len(s.notices)-20:]
	}
	s.bumpLocked()
	s.mu.Unlock()
	meta["from"] = "paf"
	meta["kind"] = "notice"
	meta["sent_at"] = stamp(s.cfg.Now())
	select {
	case <-s.clientReady:
		s.mcp.SendNotificationToAllClients(channelMethod, map[string]any{"content": text, "meta": meta})
	default:
	}
}

// presence is what this session announces about itself.
type presence struct {
	activity Activity
	focus    string
}

// presenceLoop announces the session's activity (SPEC section 5): busy with
// the focus of its latest open conversation while it has one, listening
// while a paf_listen is blocked, idle otherwise. Announcing waits for the
// gossip, so it runs here rather than in the handlers.
func (s *Server) presenceLoop(ctx context.Context) {
	if !s.waitReady(ctx) {
		return
	}
	var last presence
	var lastAt time.Time // when last was announced
	first := true
	// settle fires when a change made too soon after the last announcement
	// may be announced (Config.PresenceInterval); nil while none waits.
	var settle <-chan time.Time
	for {
		s.mu.Lock()
		want := presence{activity: ActivityIdle}
		if c := s.latestOpenLocked(); c != nil {
			want = presence{activity: ActivityBusy, focus: clip(c.Intent, 200)}
		} else if s.listening > 0 {
			want.activity = ActivityListening
		}
		s.mu.Unlock()
		if (first || want != last) && settle == nil {
			if wait := s.cfg.PresenceInterval - time.Since(lastAt); !first && wait > 0 {
				settle = time.After(wait)
			} else {
				sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
				err := s.b.SetActivity(sctx, want.activity, want.focus)
				cancel()
				if err != nil && ctx.Err() == nil {
					s.log.Debug("announce activity", "err", err)
				} else {
					last, first = want, false
				}
				lastAt = time.Now()
			}
		}
		s.presenceSettling.Store(settle != nil)
		select {
		case <-ctx.Done():
			return
		case <-s.presenceKick:
		case <-settle:
			settle = nil
			// Before looking at the state: a change made after this is kicked (see
			// kickPresence).
			s.presenceSettling.Store(false)
		}
	}
}

// kickPresence tells presenceLoop that what it announces may have changed; call it after
// the change. While the loop waits for PresenceInterval to end it looks at the state then
// anyway, so the kick is left out: under an agent that leaves and re-enters paf_listen
// back to back, a few wake-ups per call fewer.
func (s *Server) kickPresence() {
	if !s.presenceSettling.Load() {
		kick(s.presenceKick)
	}
}

// idleLoop ends conversations idle for Config.IdleTimeout, telling both
// sides.
func (s *Server) idleLoop(ctx context.Context) {
	every := min(max(s.cfg.IdleTimeout/10, 10*time.Millisecond), time.Minute)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s.mu.Lock()
		now := s.cfg.Now()
		var idle []*conversation
		for _, c := range s.convs {
			if c.open() && now.Sub(c.LastActivity) >= s.cfg.IdleTimeout {
				idle = append(idle, c)
			}
		}
		s.mu.Unlock()
		if len(idle) == 0 || !s.waitReady(ctx) {
			continue
		}
		reason := "nothing was said in it for " + ago(s.cfg.IdleTimeout)
		s.endConvs(ctx, idle, "idle", reason)
		for _, c := range idle {
			s.notify(fmt.Sprintf("Conversation %s with %s ended: %s.", c.ID, c.Peer, reason),
				map[string]any{"conversation_id": c.ID})
		}
	}
}

// eventLoop follows the mesh: it tells subscribers of paf://peers when the
// membership changes, wakes the push loop when names move, and tells the
// agent when its name was lost to a concurrent claim.
func (s *Server) eventLoop(ctx context.Context) {
	if !s.waitReady(ctx) {
		return
	}
	ch := make(chan mesh.Event, 256)
	cancel := s.b.Subscribe(ch)
	defer cancel()
	for {
		var e mesh.Event
		select {
		case <-ctx.Done():
			return
		case e = <-ch:
		}
		batch := []mesh.Event{e}
	drain: // one notification for a burst of events
		for {
			select {
			case e := <-ch:
				batch = append(batch, e)
			default:
				break drain
			}
		}
		for _, e := range batch {
			switch e.Type {
			case mesh.EventNameLost:
				s.notify(fmt.Sprintf("This session lost its name %s to another peer that claimed it at the same moment. Register another name with paf_register.", e.Name),
					map[string]any{})
				s.nameChanged()
			case mesh.EventNameClaimed, mesh.EventNameReleased, mesh.EventNameRenamed:
				kick(s.pushKick)
			}
		}
		s.mu.Lock()
		sub := s.subscribed[peersURI]
		s.mu.Unlock()
		if sub {
			s.resourceUpdated(peersURI)
		}
	}
}
