package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/paf-mesh/paf-mesh/node"
)

func runStatus(ctx context.Context, args []string, io stdio, getenv func(string) string) error {
	fs := newFlagSet("status", "[--json] [--watch] [flags]", io)
	var cf commonFlags
	cf.register(fs, false)
	jsonOut := fs.Bool("json", false, "print one JSON object (the shape is stable)")
	watch := fs.Bool("watch", false, "redraw every second until interrupted")
	if err := parseNoArgs(fs, args); err != nil {
		return err
	}
	s, err := cf.resolve(getenv)
	if err != nil {
		return err
	}
	for {
		r, err := node.FetchStatus(ctx, s.config(nil))
		if err != nil {
			if *watch && ctx.Err() != nil {
				return nil // interrupted while asking: the normal end of --watch
			}
			return err
		}
		if *watch && !*jsonOut {
			fmt.Fprint(io.out, "\x1b[H\x1b[2J") // home and clear: redraw in place
		}
		if *jsonOut {
			enc := json.NewEncoder(io.out)
			if !*watch {
				enc.SetIndent("", "  ")
			}
			if err := enc.Encode(r); err != nil {
				return err
			}
		} else {
			printStatus(io.out, r, time.Now())
		}
		if !*watch {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
	}
}

func printStatus(w io.Writer, r *node.Status, now time.Time) { r.WriteText(w, now) }
