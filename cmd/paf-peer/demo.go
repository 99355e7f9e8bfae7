package main

import (
	"context"

	"github.com/paf-mesh/paf-mesh/node/demo"
)

// runDemo is `paf-peer demo`: a few peers in this process play what the
// product does through the MCP tools an agent calls (node/demo).
func runDemo(ctx context.Context, args []string, io stdio, _ func(string) string) error {
	fs := newFlagSet("demo", "[--verbose]", io)
	verbose := fs.Bool("verbose", false, "show the peers' logs on stderr")
	if err := parseNoArgs(fs, args); err != nil {
		return err
	}
	return demo.Run(ctx, io.out, io.err, *verbose, version)
}
