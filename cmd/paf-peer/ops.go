package main

import (
	"context"
	"fmt"
	"time"

	"github.com/paf-mesh/paf-mesh/relay"
)

// jsonMessage is one message in `check --json` and `listen --json`.
type jsonMessage = relay.JSONMessage

func toJSONMessages(ms []relay.Message) []jsonMessage {
	out := make([]jsonMessage, 0, len(ms))
	for i := range ms {
		out = append(out, ms[i].JSON())
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
