package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/paf-mesh/paf-mesh/internal/termsafe"
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

func printStatus(w io.Writer, r *node.Status, now time.Time) {
	if r.Self == nil {
		fmt.Fprintf(w, "mode: %s\n%s\n", r.Mode, r.Message)
		return
	}
	// Shell commands that came and went (each send, check or listen runs a
	// brief peer) would crowd out the sessions: they are only counted.
	var shown []node.StatusPeer
	alive, gone := 0, 0
	for _, p := range r.Peers {
		if p.Transient && p.State == "left" {
			gone++
			continue
		}
		shown = append(shown, p)
		if p.State == "alive" {
			alive++
		}
	}
	fmt.Fprintf(w, "mode: %s   identity: %s   peers: %d alive, %d known   (view of peer %s)\n\n", r.Mode, r.Self.Identity, alive, len(shown), r.Self.ID)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSTATE\tACTIVITY\tHOST\tADDR\tSTORED\tID\tDESCRIPTION")
	for _, p := range shown {
		name := p.Name
		if name == "" {
			name = "-"
		}
		if p.ID == r.Self.ID {
			name += " (this)"
		}
		if p.Transient {
			name += " (cli)"
		}
		state := p.State
		if p.State != "alive" && p.Since != "" {
			if t, err := time.Parse(time.RFC3339, p.Since); err == nil {
				state += fmt.Sprintf(" %s ago", now.Sub(t).Round(time.Second))
			}
		}
		if p.ClockSkew != "" {
			state += " (clock " + p.ClockSkew + ")"
		}
		stored := "-"
		if p.Stored > 0 {
			stored = fmt.Sprintf("%d for %d", p.Stored, p.StoredNames)
		}
		addr := p.Addr
		if addr == "" {
			addr = "-" // a failed peer known only from another's report (its name reserved)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", name, state, p.Activity, termsafe.EscapeLine(p.Host), addr, stored, p.ID, termsafe.Clip(p.Description, 40))
	}
	tw.Flush()
	if gone > 0 {
		what := "shell commands"
		if gone == 1 {
			what = "shell command"
		}
		fmt.Fprintf(w, "(and %d %s (send, check, listen) that came and went recently, not listed)\n", gone, what)
	}
	var notes []string
	for _, k := range []string{"queued", "expired", "too_large_undelivered", "rejected_gossip", "rejected_frames", "rejected_forwards", "refused_claims", "refused_messages", "rate_limited", "mdns_foreign_mesh"} {
		if v := r.Counters[k]; v > 0 {
			notes = append(notes, fmt.Sprintf("%s %d", strings.ReplaceAll(k, "_", " "), v))
		}
	}
	if len(notes) > 0 {
		fmt.Fprintf(w, "\nthis peer has seen: %s\n", strings.Join(notes, ", "))
	}
	if len(r.Forwards) > 0 {
		fmt.Fprintln(w, "\nforwarding names:")
		for _, f := range r.Forwards {
			left := ""
			if t, err := time.Parse(time.RFC3339, f.ExpiresAt); err == nil {
				left = fmt.Sprintf(" (for %s more)", t.Sub(now).Round(time.Minute))
			}
			fmt.Fprintf(w, "  %s -> %s%s\n", f.From, f.To, left)
		}
	}
}
