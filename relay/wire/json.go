package wire

import "time"

// JSONMessage is a message in the stable JSON shape of SPEC section 6
// (`paf-peer check --json`, `listen --json`, and the MCP tools'
// structuredContent). Empty fields are omitted.
type JSONMessage struct {
	ID             string `json:"id"`
	From           string `json:"from"`
	To             string `json:"to"`
	Body           string `json:"body"`
	Kind           string `json:"kind"`
	ConversationID string `json:"conversation_id,omitempty"`
	Intent         string `json:"intent,omitempty"`
	SentAt         string `json:"sent_at"`
	ForwardedFrom  string `json:"forwarded_from,omitempty"`
	File           string `json:"file,omitempty"`
	Broadcast      bool   `json:"broadcast,omitempty"`
}

// JSON returns m in the stable JSON shape.
func (m *Message) JSON() JSONMessage {
	return JSONMessage{
		ID: m.ID, From: m.From, To: m.To, Body: m.Body, Kind: m.Kind.String(),
		ConversationID: m.ConversationID, Intent: m.Intent, SentAt: m.SentAt.UTC().Format(time.RFC3339Nano),
		ForwardedFrom: m.ForwardedFrom, File: m.File, Broadcast: m.Broadcast,
	}
}
