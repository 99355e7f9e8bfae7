// Command paf-peer is a peer of the paf mesh: an MCP server for one AI agent
// session (paf-peer mcp), a headless peer (serve), and the shell tools to
// inspect the mesh and send and read messages.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], stdio{in: os.Stdin, out: os.Stdout, err: os.Stderr}, os.Getenv)
	stop()
	os.Exit(code)
}
