package main

import (
	"cmp"
	"context"
	"runtime"

	"github.com/paf-mesh/paf-mesh/internal/stdoutguard"
	"github.com/paf-mesh/paf-mesh/mcpserver"
	"github.com/paf-mesh/paf-mesh/node"
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
	out, restore := stdoutguard.Guard(io.out)
	defer restore()
	log, closeLog, err := s.logger(io.err)
	if err != nil {
		return err
	}
	defer closeLog()

	cfg := s.config(log)
	cfg.Description = desc
	// One processor, unless GOMAXPROCS says otherwise: a session's peer does
	// little work at a time, on the latency path of its agent's calls, and
	// with more processors each hand-off between goroutines woke another
	// thread (-20 % CPU, -10 to -25 % question -> answer p50 on 2 cores).
	if getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(1)
	}
	b := node.StartBackend(ctx, cfg, func(*node.Node) { noticeMode(io, s) })
	srv := mcpserver.New(mcpserver.Config{Backend: b, Logger: log, Version: version, IdleTimeout: cmp.Or(s.ConversationIdle, node.DefaultConversationIdle)})
	err = srv.ServeStdio(ctx, io.in, out)
	b.Close()
	return err
}
