package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/paf-mesh/paf-mesh/node"
	"github.com/paf-mesh/paf-mesh/node/demo"
)

// demoTimeout bounds the whole demo: it takes seconds; longer means stuck.
const demoTimeout = 2 * time.Minute

// runDemo is `paf-peer demo`: a few peers in this process, in a temporary
// directory of their own, play what the product does through the same MCP
// tools an agent calls, and the transcript is printed. It touches no state
// outside that directory and removes it at the end.
func runDemo(ctx context.Context, args []string, io stdio, _ func(string) string) error {
	fs := newFlagSet("demo", "[--verbose]", io)
	verbose := fs.Bool("verbose", false, "show the peers' logs on stderr")
	if err := parseNoArgs(fs, args); err != nil {
		return err
	}
	root, err := os.MkdirTemp("", "paf-demo")
	if err != nil {
		return fmt.Errorf("demo: temporary directory: %w", err)
	}
	defer os.RemoveAll(root)
	level := slog.LevelError + 4 // silent
	if *verbose {
		level = slog.LevelInfo
	}
	cfg := node.Config{
		StateDir: filepath.Join(root, "state"), RunDir: filepath.Join(root, "run"), Version: version,
		Logger: slog.New(slog.NewTextHandler(io.err, &slog.HandlerOptions{Level: level})),
	}
	ctx, cancel := context.WithTimeout(ctx, demoTimeout)
	defer cancel()
	if err := demo.Play(ctx, io.out, cfg); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	return nil
}
