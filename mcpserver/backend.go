package mcpserver

import (
	"context"

	"github.com/paf-mesh/paf-mesh/mesh"
	"github.com/paf-mesh/paf-mesh/relay"
)

// Backend is what the tools need of the peer: its name, the mesh's
// membership, and the relay's sending and inbox. cmd/paf-peer adapts a
// running node to it; tests use an in-memory mesh.
//
// Every method may be called concurrently. Ready may be called at any time;
// the other methods only after Ready has returned nil. Methods that take a
// context may block until it ends; the others return promptly.
type Backend interface {
	// Ready blocks until the peer has joined the mesh and can serve (nil),
	// ctx ends (ctx.Err()), or the peer failed to start (that error, for
	// good: the server reports it to the model). Once it has returned nil
	// it returns nil for ever (the server stops asking).
	Ready(ctx context.Context) error

	// Name is the name this peer holds, "" for none.
	Name() string
	// Claim takes name (mesh.ErrNameTaken, mesh.ErrInvalidName).
	Claim(ctx context.Context, name string) error
	// Rename moves this peer's name to newName, forwarding the old name,
	// and moves the unread messages of the old name to the new one.
	Rename(ctx context.Context, newName string) error
	// SetDescription announces what this session is for.
	SetDescription(ctx context.Context, description string) error
	// SetActivity announces whether the session is listening or busy, and
	// the focus of its current conversation.
	SetActivity(ctx context.Context, a Activity, focus string) error

	// Members is every peer known, this one included.
	Members() []mesh.Member
	// Forwards is the renames in force (old name -> new name).
	Forwards() []mesh.Forward

	// Send delivers (or stores, for a name not online) one message.
	Send(ctx context.Context, o relay.Outgoing) (relay.Result, error)
	// Broadcast sends body to every named peer online but this one.
	Broadcast(ctx context.Context, from, body string) (relay.BroadcastResult, error)

	// Peek returns name's unread messages, oldest first, without marking
	// them read; Ack marks the given ones read.
	Peek(name string) ([]relay.Message, error)
	Ack(name string, ids []string) (int, error)
	// InboxState returns name's unread count and a channel closed at the
	// inbox's next change. The channel of a name this peer no longer holds
	// may never close.
	InboxState(name string) (unread int, changed <-chan struct{}, err error)

	// Subscribe delivers mesh events to ch, without blocking (events that
	// do not fit are dropped), until cancel is called.
	Subscribe(ch chan<- mesh.Event) (cancel func())
}
