package node

import (
	"context"
	"fmt"
	"time"

	"github.com/paf-mesh/paf-mesh/node/control"
	"github.com/paf-mesh/paf-mesh/relay"
)

// controlHandler serves the control socket: the status op for anyone, the
// message operations only as the name this peer holds.
type controlHandler Node

var _ control.Handler = (*controlHandler)(nil)

func (h *controlHandler) node() *Node { return (*Node)(h) }

func (h *controlHandler) Status() any { return h.node().Status() }

// holds checks that as is the name this peer holds: a control client acts as
// one name, and must not read or send as another.
func (h *controlHandler) holds(as string) error {
	if held := h.peer.Name(); as == "" || as != held {
		return fmt.Errorf("this peer holds %q, not %q", held, as)
	}
	return nil
}

func (h *controlHandler) Send(ctx context.Context, as, to, body string) (relay.Result, error) {
	if err := h.holds(as); err != nil {
		return relay.Result{}, err
	}
	return h.relay.Send(ctx, relay.Outgoing{From: as, To: to, Body: body})
}

func (h *controlHandler) Wait(ctx context.Context, as string) error {
	if err := h.holds(as); err != nil {
		return err
	}
	if err := h.relay.Wait(ctx, as); err != nil && ctx.Err() == nil {
		return err
	}
	return nil
}

// nameCheck is how often WaitNew checks that this peer still holds the name
// it waits on: the change channel of an inbox whose name moved away (a
// rename) is never closed.
const nameCheck = time.Second

func (h *controlHandler) WaitNew(ctx context.Context, as string, seen []string) error {
	if err := h.holds(as); err != nil {
		return err
	}
	shown := make(map[string]bool, len(seen))
	for _, id := range seen {
		shown[id] = true
	}
	t := time.NewTicker(nameCheck)
	defer t.Stop()
	for {
		// The state first: a message that arrives after the Peek closes changed.
		_, changed, err := h.relay.InboxState(as)
		if err != nil {
			return err
		}
		ms, err := h.relay.Peek(as)
		if err != nil {
			return err
		}
		for i := range ms {
			if !shown[ms[i].ID] {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
		case <-t.C:
			if err := h.holds(as); err != nil {
				return err
			}
		}
	}
}

func (h *controlHandler) Peek(as string) ([]relay.JSONMessage, error) {
	if err := h.holds(as); err != nil {
		return nil, err
	}
	ms, err := h.relay.Peek(as)
	if err != nil {
		return nil, err
	}
	return JSONMessages(ms), nil
}

func (h *controlHandler) Ack(as string, ids []string) error {
	if err := h.holds(as); err != nil {
		return err
	}
	_, err := h.relay.Ack(as, ids)
	return err
}

// JSONMessages is ms in the shape of `check --json` and `listen --json`.
func JSONMessages(ms []relay.Message) []relay.JSONMessage {
	out := make([]relay.JSONMessage, 0, len(ms))
	for i := range ms {
		out = append(out, ms[i].JSON())
	}
	return out
}
