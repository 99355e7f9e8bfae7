package node

import (
	"context"
	"fmt"
	"sync"

	"github.com/paf-mesh/paf-mesh/mcpserver"
	"github.com/paf-mesh/paf-mesh/mesh"
	"github.com/paf-mesh/paf-mesh/relay"
)

// Backend is the mcpserver.Backend of one agent session: a Node that starts
// in the background, so the MCP server answers the client's initialize at
// once while the peer joins the mesh; the tools wait for it (Ready).
type Backend struct {
	readyCh chan struct{} // closed once n or err is set
	done    chan struct{} // closed when the start has returned
	n       *Node
	err     error
	cancel  context.CancelFunc
	once    sync.Once
}

var _ mcpserver.Backend = (*Backend)(nil)

// StartBackend starts a Node with cfg in the background and returns at once.
// cfg.Name is claimed after the start rather than by New, so that a taken
// name leaves a working peer whose agent can register another one (the
// failure is logged). started, if not nil, is called once the peer runs,
// before it claims the name. Close stops the start or the peer.
func StartBackend(ctx context.Context, cfg Config, started func(*Node)) *Backend {
	ctx, cancel := context.WithCancel(ctx)
	b := &Backend{readyCh: make(chan struct{}), done: make(chan struct{}), cancel: cancel}
	go b.start(ctx, cfg, started)
	return b
}

// NewBackend is the Backend of a Node already running, for a caller that
// serves MCP in the same process as other peers (the demo). Closing it
// closes n.
func NewBackend(n *Node) *Backend {
	b := &Backend{readyCh: make(chan struct{}), done: make(chan struct{}), n: n, cancel: func() {}}
	close(b.readyCh)
	close(b.done)
	return b
}

func (b *Backend) start(ctx context.Context, cfg Config, started func(*Node)) {
	defer close(b.done)
	name := cfg.Name
	cfg.Name = ""
	log := cfg.withDefaults().Logger
	n, err := New(ctx, cfg)
	if err != nil {
		log.Error("the peer could not start; the MCP tools will say so", "err", err)
		b.err = fmt.Errorf("start the peer: %w", err)
		close(b.readyCh)
		return
	}
	if started != nil {
		started(n)
	}
	if name != "" {
		if err := n.ClaimAndCollect(ctx, name); err != nil {
			log.Warn("could not claim the name given with --name / PAF_NAME; the agent can register another with paf_register", "name", name, "err", err)
		}
	}
	log.Info("peer ready", "peer", n.ID(), "name", n.Name(), "addr", n.Addr(), "mode", n.Mode())
	b.n = n
	close(b.readyCh)
}

// Node is the running peer once Ready has returned nil; nil before.
func (b *Backend) Node() *Node {
	select {
	case <-b.readyCh:
		return b.n
	default:
		return nil
	}
}

// Close stops the start if it is still under way, waits for it, and closes
// the peer. It is idempotent.
func (b *Backend) Close() {
	b.cancel()
	<-b.done
	b.once.Do(func() {
		if b.n != nil {
			b.n.Close()
		}
	})
}

func (b *Backend) Ready(ctx context.Context) error {
	select {
	case <-b.readyCh:
		return b.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (b *Backend) Name() string { return b.n.peer.Name() }

func (b *Backend) Claim(ctx context.Context, name string) error {
	return b.n.ClaimAndCollect(ctx, name)
}

// Rename moves the name and then the unread messages of the old name to the
// new one: the inbox belongs to the session, not to the name.
func (b *Backend) Rename(ctx context.Context, newName string) error {
	return b.n.Rename(ctx, newName)
}

// Rename moves this peer's name to newName (the old one forwards for
// ForwardTTL), then moves the old name's unread messages to the new name.
func (n *Node) Rename(ctx context.Context, newName string) error {
	old := n.peer.Name()
	if err := n.peer.Rename(ctx, newName); err != nil {
		return err
	}
	newName = n.peer.Name()
	if old != "" && old != newName {
		if err := n.relay.MoveInbox(old, newName); err != nil {
			return fmt.Errorf("renamed to %s, but the unread messages of %s stayed behind: %w", newName, old, err)
		}
	}
	return nil
}

func (b *Backend) SetDescription(ctx context.Context, d string) error {
	return b.n.peer.SetMeta(ctx, func(m *mesh.Meta) { mcpserver.SetMetaDescription(m, d) })
}

func (b *Backend) SetActivity(ctx context.Context, a mcpserver.Activity, focus string) error {
	return b.n.peer.SetMeta(ctx, func(m *mesh.Meta) { mcpserver.SetMetaPresence(m, a, focus) })
}

func (b *Backend) Members() []mesh.Member   { return b.n.peer.Members() }
func (b *Backend) Forwards() []mesh.Forward { return b.n.peer.Forwards() }

func (b *Backend) Send(ctx context.Context, o relay.Outgoing) (relay.Result, error) {
	return b.n.relay.Send(ctx, o)
}

func (b *Backend) Broadcast(ctx context.Context, from, body string) (relay.BroadcastResult, error) {
	return b.n.relay.Broadcast(ctx, from, body)
}

func (b *Backend) Peek(name string) ([]relay.Message, error) { return b.n.relay.Peek(name) }

func (b *Backend) Ack(name string, ids []string) (int, error) { return b.n.relay.Ack(name, ids) }

func (b *Backend) InboxState(name string) (int, <-chan struct{}, error) {
	return b.n.relay.InboxState(name)
}

// Subscribe delivers the mesh's events to ch, without blocking, except the loss of this
// peer's name to a brief peer, which the node takes back by itself (Node.reclaims): a
// session told "lost its name" would register another. If taking it back fails, ch gets the
// loss then.
func (b *Backend) Subscribe(ch chan<- mesh.Event) func() {
	n := b.n
	mid := make(chan mesh.Event, cap(ch)+1)
	cancel := n.peer.Subscribe(mid)
	n.lostMu.Lock()
	if n.lostSubs == nil {
		n.lostSubs = map[chan<- mesh.Event]struct{}{}
	}
	n.lostSubs[ch] = struct{}{}
	n.lostMu.Unlock()
	done := make(chan struct{})
	go n.sessionEvents(mid, ch, done)
	var once sync.Once
	return func() {
		once.Do(func() {
			cancel()
			n.lostMu.Lock()
			delete(n.lostSubs, ch)
			n.lostMu.Unlock()
			close(done)
		})
	}
}

// sessionEvents passes the events of in to out, without blocking, leaving out the losses
// this node takes back by itself (reclaims), until done is closed.
func (n *Node) sessionEvents(in <-chan mesh.Event, out chan<- mesh.Event, done <-chan struct{}) {
	for {
		select {
		case <-done:
			return
		case e := <-in:
			if n.reclaims(e) {
				continue
			}
			select {
			case out <- e:
			default:
			}
		}
	}
}
