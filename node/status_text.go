package node

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/paf-mesh/paf-mesh/internal/termsafe"
)

// WriteText writes r as `paf-peer status` prints it: a header line, a table of the peers
// (shell commands that came and went only counted), what went wrong, and the forwards. Other
// peers' text is escaped for the terminal (internal/termsafe).
func (r *Status) WriteText(w io.Writer, now time.Time) {
	if r.Self == nil {
		fmt.Fprintf(w, "mode: %s\n%s\n", r.Mode, r.Message)
		return
	}
	// Shell commands that came and went (each send, check or listen runs a
	// brief peer) would crowd out the sessions: they are only counted.
	var shown []StatusPeer
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
