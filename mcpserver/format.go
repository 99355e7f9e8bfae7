package mcpserver

import (
	"cmp"
	"fmt"
	"strings"
	"time"

	"github.com/paf-mesh/paf-mesh/relay"
)

// guidelines open every conversation (SPEC section 4). They travel in the
// first message's body, so that any reader of it (an agent through MCP, or a
// person with `paf-peer check`) sees them.
const guidelines = "Guidelines: stay on the intent; conclude naturally once it is resolved; either side may end the conversation (paf_end_session)."

func openingBody(from, id, intent string) string {
	return fmt.Sprintf("%s opened conversation %s with you.\nIntent: %s\n%s\nAnswer with paf_respond; the question follows.", from, id, intent, guidelines)
}

// shown is an incoming message on its way into a tool result, with what it
// means to this session.
type shown struct {
	m    relay.Message
	cl   msgClass
	conv *conversation // after applying: the conversation it belongs to
}

// msgJSON is a message in structuredContent: the shape of `paf-peer check
// --json` (SPEC section 6, relay.JSONMessage), plus what this session made of it.
type msgJSON struct {
	relay.JSONMessage
	NewConversation bool `json:"new_conversation,omitempty"`
	// NotInConversation: it names a conversation this session has with
	// someone else, so it was not taken as part of it.
	NotInConversation bool `json:"not_in_conversation,omitempty"`
}

func toMsgJSON(it shown) msgJSON {
	return msgJSON{JSONMessage: it.m.JSON(), NewConversation: it.cl.opens, NotInConversation: it.cl.foreign}
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

// writeMessages renders messages for the model, oldest first. The intent is
// shown with the first message of each conversation in the batch and with
// every refocus, so the focus is always in view without repeating it.
func writeMessages(b *strings.Builder, items []shown) {
	plural := "s"
	if len(items) == 1 {
		plural = ""
	}
	fmt.Fprintf(b, "%d message%s:\n", len(items), plural)
	intentShown := map[string]bool{}
	for _, it := range items {
		m := it.m
		b.WriteString("\n── ")
		b.WriteString(header(it))
		fmt.Fprintf(b, " · %s\n", stamp(m.SentAt))
		if m.Intent != "" && m.ConversationID != "" && !it.cl.foreign &&
			(!intentShown[m.ConversationID] || m.Kind == relay.KindRefocus) {
			label := "intent"
			if m.Kind == relay.KindRefocus {
				label = "new intent"
			}
			fmt.Fprintf(b, "%s: %s\n", label, m.Intent)
			intentShown[m.ConversationID] = true
		}
		b.WriteString(m.Body)
		if !strings.HasSuffix(m.Body, "\n") {
			b.WriteByte('\n')
		}
	}
}

func header(it shown) string {
	m := it.m
	var parts []string
	from := "from " + m.From
	switch {
	case m.Kind == relay.KindSystem:
		// A holder's notice, signed by the holder: never shown as a message from a name.
		from = fmt.Sprintf("notice from a holder (identity %s) about your message to %s", cmp.Or(m.Signer(), "unknown"), m.From)
	case it.cl.opens:
		from = fmt.Sprintf("%s opened conversation %s", m.From, m.ConversationID)
	case it.cl.foreign:
		from += fmt.Sprintf(" (names conversation %s, which is not with %s: treated as a plain message)", m.ConversationID, m.From)
	case m.ConversationID != "" && m.Kind == relay.KindEnd:
		from = fmt.Sprintf("%s ended conversation %s", m.From, m.ConversationID)
	case m.ConversationID != "" && m.Kind == relay.KindRefocus:
		from = fmt.Sprintf("%s changed the focus of conversation %s", m.From, m.ConversationID)
	case m.ConversationID != "":
		from += " · conversation " + m.ConversationID
	}
	parts = append(parts, from)
	switch m.Kind {
	case relay.KindReply:
		parts = append(parts, "reply")
	case relay.KindSystem:
		parts = append(parts, "system notice")
	}
	if m.Broadcast {
		parts = append(parts, "broadcast")
	}
	if m.ForwardedFrom != "" {
		parts = append(parts, fmt.Sprintf("sent to %s, forwarded to %s", m.ForwardedFrom, m.To))
	}
	return strings.Join(parts, " · ")
}

// unreadLine is the one line every result carries when messages wait
// (SPEC section 5), so an agent that never polls still learns of them.
func unreadLine(n int) string {
	switch n {
	case 0:
		return ""
	case 1:
		return "1 unread message is waiting: call paf_check to read it."
	}
	return fmt.Sprintf("%d unread messages are waiting: call paf_check to read them.", n)
}

func plural(n int, one, many string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, one)
	}
	return fmt.Sprintf("%d %s", n, many)
}

// ago renders a duration for people: "45s", "12m", "3h5m".
func ago(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	}
	h := int(d.Hours())
	return fmt.Sprintf("%dh%dm", h, int(d.Minutes())-60*h)
}

// clip shortens text from elsewhere for a one-line mention.
func clip(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && (s[cut]&0xC0) == 0x80 {
		cut--
	}
	return s[:cut] + "…"
}

func secondsDur(n int64) time.Duration { return time.Duration(n) * time.Second }
