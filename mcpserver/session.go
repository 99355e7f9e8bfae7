package mcpserver

import (
	"crypto/rand"
	"encoding/base32"
	"sort"
	"strings"
	"time"

	"github.com/paf-mesh/paf-mesh/mesh"
	"github.com/paf-mesh/paf-mesh/relay"
)

// A conversation is one caller talking to one listener about an intent
// (SPEC section 4). Both sides keep their own record of it, built from the
// messages: the caller's paf_connect creates it, the listener learns of it
// from the first message that carries its id.
type conversation struct {
	ID     string
	Peer   string   // the other side's name (follows its renames)
	Intent string   // the current focus
	Former []string // earlier intents, oldest first (refocus history)
	Caller bool     // this session opened it

	OpenedAt     time.Time
	LastActivity time.Time // last message sent or received in it

	Ended   bool
	EndedBy string // "you", the peer's name, or "idle"
	EndedAt time.Time
}

func (c *conversation) open() bool { return !c.Ended }

// convJSON is a conversation in structuredContent.
type convJSON struct {
	ID           string   `json:"conversation_id"`
	With         string   `json:"with"`
	Intent       string   `json:"intent"`
	Former       []string `json:"former_intents,omitempty"`
	Role         string   `json:"role"` // caller or listener
	OpenedAt     string   `json:"opened_at"`
	LastActivity string   `json:"last_activity"`
	Ended        bool     `json:"ended,omitempty"`
	EndedBy      string   `json:"ended_by,omitempty"`
}

func (c *conversation) json() convJSON {
	role := "listener"
	if c.Caller {
		role = "caller"
	}
	return convJSON{
		ID: c.ID, With: c.Peer, Intent: c.Intent, Former: c.Former, Role: role,
		OpenedAt: stamp(c.OpenedAt), LastActivity: stamp(c.LastActivity),
		Ended: c.Ended, EndedBy: c.EndedBy,
	}
}

// newConversationID returns a short random id of printable ASCII (the relay
// accepts up to 64 such characters): "c-" and 10 base32 characters, 50 bits,
// so that ids chosen by different sessions do not collide.
func newConversationID() string {
	var b [7]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	s := strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:]))
	return "c-" + s[:10]
}

// The session state below is guarded by Server.mu.

// latestOpenLocked is the conversation this session used last (sent or was
// shown a message in), if it is still open; otherwise the most recently
// active open one; nil when none is open.
func (s *Server) latestOpenLocked() *conversation {
	if c := s.convs[s.latest]; c != nil && c.open() {
		return c
	}
	var best *conversation
	for _, c := range s.convs {
		if c.open() && (best == nil || c.LastActivity.After(best.LastActivity)) {
			best = c
		}
	}
	return best
}

// openWithLocked is the most recently active open conversation with peer
// (under this name or one it was renamed from or to).
func (s *Server) openWithLocked(peer string, forwards []mesh.Forward) *conversation {
	var best *conversation
	for _, c := range s.convs {
		if c.open() && samePeer(forwards, c.Peer, peer) && (best == nil || c.LastActivity.After(best.LastActivity)) {
			best = c
		}
	}
	return best
}

func (s *Server) openConvsLocked() []*conversation {
	var out []*conversation
	for _, c := range s.convs {
		if c.open() {
			out = append(out, c)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].OpenedAt.Before(out[j].OpenedAt) })
	return out
}

// addConvLocked records c, forgetting the oldest ended (then the least
// recently active) conversations beyond MaxConversations.
func (s *Server) addConvLocked(c *conversation) {
	s.convs[c.ID] = c
	for len(s.convs) > s.cfg.MaxConversations {
		var victim *conversation
		for _, x := range s.convs {
			if x == c {
				continue
			}
			if victim == nil || (x.Ended && !victim.Ended) ||
				(x.Ended == victim.Ended && x.LastActivity.Before(victim.LastActivity)) {
				victim = x
			}
		}
		if victim == nil {
			return
		}
		delete(s.convs, victim.ID)
	}
}

// touchLocked marks c active now and the one this session used last.
func (s *Server) touchLocked(c *conversation) {
	c.LastActivity = s.cfg.Now()
	s.latest = c.ID
}

// Incoming messages and conversations.

// msgClass is what an incoming message means to this session.
type msgClass struct {
	conv *conversation // the conversation it belongs to, nil for none
	// opens: the first message of a conversation this session has not seen
	// (a caller's paf_connect); conv is then nil until it is applied.
	opens bool
	// foreign: it names a conversation this session has with someone else;
	// it is shown as a plain message and changes nothing.
	foreign bool
	// follows: it belongs to a conversation whose opening comes earlier in
	// the same batch of unread messages.
	follows bool
}

// classifyLocked tells what m means without changing anything.
func (s *Server) classifyLocked(m *relay.Message, forwards []mesh.Forward) msgClass {
	if m.ConversationID == "" || m.Kind == relay.KindSystem {
		return msgClass{}
	}
	c := s.convs[m.ConversationID]
	if c == nil {
		// An end for a conversation we never knew (one of an earlier session
		// under this name) opens nothing.
		return msgClass{opens: m.Kind != relay.KindEnd}
	}
	if m.From == c.Peer || renamedTo(forwards, c.Peer, m.From) {
		return msgClass{conv: c}
	}
	return msgClass{foreign: true}
}

// samePeer reports whether names a and b are one session: equal, or one
// renamed to the other.
func samePeer(forwards []mesh.Forward, a, b string) bool {
	return a == b || renamedTo(forwards, a, b) || renamedTo(forwards, b, a)
}

// renamedTo reports whether name from now forwards (perhaps over several
// renames) to name to.
func renamedTo(forwards []mesh.Forward, from, to string) bool {
	seen := map[string]bool{}
	for hop := 0; hop < 8 && !seen[from]; hop++ {
		seen[from] = true
		next := ""
		for _, f := range forwards {
			if f.From == from && f.To != "" {
				next = f.To
				break
			}
		}
		if next == "" {
			return false
		}
		if next == to {
			return true
		}
		from = next
	}
	return false
}

// applyLocked updates the conversations for a message that is being shown
// to the agent, and returns the conversation it belongs to (nil for none).
func (s *Server) applyLocked(m *relay.Message, cl msgClass) *conversation {
	now := s.cfg.Now()
	switch {
	case cl.foreign || (cl.conv == nil && !cl.opens):
		return nil
	case cl.opens:
		c := &conversation{ID: m.ConversationID, Peer: m.From, Intent: m.Intent, OpenedAt: now, LastActivity: now}
		s.addConvLocked(c)
		s.latest = c.ID
		return c
	}
	c := cl.conv
	c.Peer = m.From // it may have renamed
	switch m.Kind {
	case relay.KindRefocus:
		if m.Intent != "" && m.Intent != c.Intent {
			c.Former = append(c.Former, c.Intent)
			if len(c.Former) > 32 {
				c.Former = c.Former[len(c.Former)-32:]
			}
			c.Intent = m.Intent
		}
	case relay.KindEnd:
		if !c.Ended {
			c.Ended, c.EndedBy, c.EndedAt = true, m.From, now
		}
	}
	if !c.Ended || m.Kind == relay.KindEnd {
		s.touchLocked(c)
	}
	return c
}
