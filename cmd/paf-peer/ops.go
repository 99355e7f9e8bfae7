package main

import (
	"context"
	"fmt"
	"time"

	"github.com/paf-mesh/paf-mesh/relay"
)

// jsonMessage is one message in `check --json` and `listen --json` (SPEC
// section 6). Empty fields are omitted.
type jsonMessage struct {
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

func toJSONMessages(ms []relay.Message) []jsonMessage {
	out := make([]jsonMessage, 0, len(ms))
	for _, m := range ms {
		out = append(out, jsonMessage{
			ID: m.ID, From: m.From, To: m.To, Body: m.Body, Kind: m.Kind.String(),
			ConversationID: m.ConversationID, Intent: m.Intent, SentAt: m.SentAt.UTC().Format(time.RFC3339Nano),
			ForwardedFrom: m.ForwardedFrom, File: m.File, Broadcast: m.Broadcast,
		})
	}
	return out
}

// op serves the message operations of the control socket for the name this
// peer holds. check and listen return messages without marking them read;
// the client acknowledges (op ack) once it has printed them, so a client
// killed in between loses nothing.
func (n *node) op(ctx context.Context, req controlRequest, resp *controlResponse) {
	if req.As == "" || req.As != n.peer.Name() {
		resp.Error = fmt.Sprintf("this peer holds %q, not %q", n.peer.Name(), req.As)
		return
	}
	switch req.Op {
	case "send":
		res, err := n.relay.Send(ctx, relay.Outgoing{From: req.As, To: req.To, Body: req.Message})
		if err != nil {
			resp.Error = err.Error()
			return
		}
		resp.Result = &res
	case "listen":
		if req.Timeout > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, time.Duration(req.Timeout*float64(time.Second)))
			defer cancel()
		}
		if err := n.relay.Wait(ctx, req.As); err != nil && ctx.Err() == nil {
			resp.Error = err.Error()
			return
		}
		fallthrough
	case "check":
		ms, err := n.relay.Peek(req.As)
		if err != nil {
			resp.Error = err.Error()
			return
		}
		resp.Messages = toJSONMessages(ms)
	case "ack":
		if _, err := n.relay.Ack(req.As, req.IDs); err != nil {
			resp.Error = err.Error()
		}
	default:
		resp.Error = fmt.Sprintf("control: unknown op %q", req.Op)
	}
}
