package main

import (
	"context"
	"fmt"
	"log/slog"
	"sync"

	"github.com/paf-mesh/paf-mesh/mcpserver"
	"github.com/paf-mesh/paf-mesh/mesh"
	"github.com/paf-mesh/paf-mesh/relay"
)

// runMCP is `paf-peer mcp`: the MCP server of one agent session, on stdio.
// The MCP server answers at once; the peer joins the mesh in the background
// and the tools wait for it (bounded), so a slow start never delays the
// client's initialize.
func runMCP(ctx context.Context, args []string, io stdio, getenv func(string) string) error {
	s, desc, err := peerFlags("mcp", "what this session is for, shown to others", args, io, getenv)
	if err != nil {
		return err
	}
	// stdout is the MCP channel: from here on nothing else may write there.
	out, restore := guardStdout(io)
	defer restore()
	log, closeLog, err := s.logger(io.err)
	if err != nil {
		return err
	}
	defer closeLog()

	b := &mcpBackend{readyCh: make(chan struct{}), done: make(chan struct{})}
	startCtx, cancelStart := context.WithCancel(ctx)
	defer cancelStart()
	go b.start(startCtx, s, nodeOptions{Description: desc}, log, io)

	srv := mcpserver.New(mcpserver.Config{Backend: b, Logger: log, Version: version, IdleTimeout: s.Tune.ConversationIdle})
	err = srv.ServeStdio(ctx, io.in, out)
	cancelStart()
	b.close()
	return err
}

// mcpBackend adapts a node, started in the background, to mcpserver.Backend.
type mcpBackend struct {
	readyCh chan struct{} // closed once n or err is set
	done    chan struct{} // closed when start has returned
	n       *node
	err     error
	once    sync.Once
}

var _ mcpserver.Backend = (*mcpBackend)(nil)

func (b *mcpBackend) start(ctx context.Context, s *settings, o nodeOptions, log *slog.Logger, io stdio) {
	defer close(b.done)
	n, err := startNode(ctx, s, o, log)
	if err != nil {
		log.Error("the peer could not start; the MCP tools will say so", "err", err)
		b.err = fmt.Errorf("start the peer: %w", err)
		close(b.readyCh)
		return
	}
	noticeMode(io, s)
	// Claimed here rather than by startNode, so that a taken name leaves a
	// working peer whose agent can register another one.
	if s.Name != "" {
		if err := claimAndCollect(ctx, n, s.Name); err != nil {
			log.Warn("could not claim the name given with --name / PAF_NAME; the agent can register another with paf_register", "name", s.Name, "err", err)
		}
	}
	log.Info("peer ready", "peer", n.peer.ID(), "name", n.peer.Name(), "addr", n.peer.Addr(), "mode", s.mode())
	b.n = n
	close(b.readyCh)
}

// close stops the peer once its start has finished.
func (b *mcpBackend) close() {
	<-b.done
	b.once.Do(func() {
		if b.n != nil {
			b.n.Close()
		}
	})
}

func (b *mcpBackend) Ready(ctx context.Context) error {
	select {
	case <-b.readyCh:
		return b.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (b *mcpBackend) Name() string { return b.n.peer.Name() }

func (b *mcpBackend) Claim(ctx context.Context, name string) error {
	return claimAndCollect(ctx, b.n, name)
}

func (b *mcpBackend) Rename(ctx context.Context, newName string) error {
	old := b.n.peer.Name()
	if err := b.n.peer.Rename(ctx, newName); err != nil {
		return err
	}
	newName = b.n.peer.Name()
	if old != "" && old != newName {
		if err := b.n.relay.MoveInbox(old, newName); err != nil {
			return fmt.Errorf("renamed to %s, but the unread messages of %s stayed behind: %w", newName, old, err)
		}
	}
	return nil
}

func (b *mcpBackend) SetDescription(ctx context.Context, d string) error {
	return b.n.peer.SetMeta(ctx, func(m *mesh.Meta) { mcpserver.SetMetaDescription(m, d) })
}

func (b *mcpBackend) SetActivity(ctx context.Context, a mcpserver.Activity, focus string) error {
	return b.n.peer.SetMeta(ctx, func(m *mesh.Meta) { mcpserver.SetMetaPresence(m, a, focus) })
}

func (b *mcpBackend) Members() []mesh.Member   { return b.n.peer.Members() }
func (b *mcpBackend) Forwards() []mesh.Forward { return b.n.peer.Forwards() }

func (b *mcpBackend) Send(ctx context.Context, o relay.Outgoing) (relay.Result, error) {
	return b.n.relay.Send(ctx, o)
}

func (b *mcpBackend) Broadcast(ctx context.Context, from, body string) (relay.BroadcastResult, error) {
	return b.n.relay.Broadcast(ctx, from, body)
}

func (b *mcpBackend) Peek(name string) ([]relay.Message, error) { return b.n.relay.Peek(name) }

func (b *mcpBackend) Ack(name string, ids []string) (int, error) { return b.n.relay.Ack(name, ids) }

func (b *mcpBackend) InboxState(name string) (int, <-chan struct{}, error) {
	return b.n.relay.InboxState(name)
}

func (b *mcpBackend) Subscribe(ch chan<- mesh.Event) func() { return b.n.peer.Subscribe(ch) }
