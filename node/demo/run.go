package demo

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/paf-mesh/paf-mesh/node"
)

// Timeout bounds the whole demo: it takes seconds; longer means stuck.
const Timeout = 2 * time.Minute

// Run is `paf-peer demo`: Play in a temporary directory of its own, which it
// removes at the end, so it touches no state outside it. The peers' logs go
// to logs when verbose, else nowhere.
func Run(ctx context.Context, out, logs io.Writer, verbose bool, version string) error {
	root, err := os.MkdirTemp("", "paf-demo")
	if err != nil {
		return fmt.Errorf("demo: temporary directory: %w", err)
	}
	defer os.RemoveAll(root)
	level := slog.LevelError + 4 // silent
	if verbose {
		level = slog.LevelInfo
	}
	cfg := node.Config{
		StateDir: filepath.Join(root, "state"), RunDir: filepath.Join(root, "run"), Version: version,
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: level})),
	}
	ctx, cancel := context.WithTimeout(ctx, Timeout)
	defer cancel()
	if err := Play(ctx, out, cfg); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	return nil
}
