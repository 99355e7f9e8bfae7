package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/paf-mesh/paf-mesh/discovery"
	"github.com/paf-mesh/paf-mesh/mcpserver"
	"github.com/paf-mesh/paf-mesh/mesh"
	"github.com/paf-mesh/paf-mesh/relay"
)

// statusPeer is one peer in `status --json` (SPEC section 6). Fields beyond
// the SPEC's are additions, never renames.
type statusPeer struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	Description string `json:"description"`
	Host        string `json:"host"`
	Addr        string `json:"addr"`
	Relay       string `json:"relay,omitempty"`
	State       string `json:"state"`
	Listening   bool   `json:"listening"`
	Activity    string `json:"activity"`
	Stored      int    `json:"stored"`
	StoredNames int    `json:"stored_names"`
	Mode        string `json:"mode"`
	Version     string `json:"version,omitempty"`
	Since       string `json:"since,omitempty"`
	// Transient marks a short-lived peer: a send, check or listen command
	// acting as a name.
	Transient bool `json:"transient,omitempty"`
}

type statusForward struct {
	From      string `json:"from"`
	To        string `json:"to"`
	ExpiresAt string `json:"expires_at"`
}

type statusReport struct {
	Self     *statusPeer     `json:"self"`
	Mode     string          `json:"mode"`
	Peers    []statusPeer    `json:"peers"`
	Forwards []statusForward `json:"forwards"`
	// Counters of the reporting peer: what it refused or lost sight of.
	Counters map[string]uint64 `json:"counters,omitempty"`
	// Message is set when there is nothing to report (no peer running).
	Message string `json:"message,omitempty"`
}

func toStatusPeer(m mesh.Member) statusPeer {
	mode := "open"
	if m.Meta.Secure {
		mode = "secure"
	}
	activity, _ := mcpserver.MetaPresence(m.Meta)
	held, heldNames := relay.MetaHeld(m.Meta)
	p := statusPeer{
		ID: m.ID, Name: m.Meta.Name, Description: mcpserver.MetaDescription(m.Meta), Host: m.Meta.Host,
		Addr: m.Addr, Relay: relay.MetaAddr(m.Meta), State: m.State.String(),
		Listening: activity == mcpserver.ActivityListening, Activity: activity.String(),
		Stored: held, StoredNames: heldNames, Mode: mode, Version: m.Meta.Version,
		Transient: m.Meta.Transient,
	}
	if !m.Since.IsZero() {
		p.Since = m.Since.UTC().Format(time.RFC3339)
	}
	return p
}

// status is this node's view of the mesh.
func (n *node) status() statusReport {
	self := toStatusPeer(n.peer.Self())
	r := statusReport{Self: &self, Mode: n.set.mode(), Peers: []statusPeer{}, Forwards: []statusForward{}}
	for _, m := range n.peer.Members() {
		r.Peers = append(r.Peers, toStatusPeer(m))
	}
	ms, rs, ts := n.peer.Stats(), n.relay.Stats(), n.relay.TransportStats()
	var rejectedFrames uint64
	for _, c := range ts.Rejected {
		rejectedFrames += c
	}
	r.Counters = map[string]uint64{
		"rejected_gossip": ms.RejectedGossip, "rejected_frames": rejectedFrames,
		"refused_messages": rs.Refused, "rate_limited": rs.RateLimited,
		"delivered": rs.Delivered, "stored": rs.Stored, "received": rs.Received,
		"handed_over": rs.HandedOver, "expired": rs.Expired, "too_large_undelivered": rs.TooLarge, "dropped_events": ms.DroppedEvents,
	}
	if m := n.mdns.Load(); m != nil {
		st := m.Stats()
		r.Counters["mdns_peers"] = uint64(st.Peers)
		r.Counters["mdns_foreign_mesh"] = st.ForeignMesh
		r.Counters["mdns_malformed"] = st.Malformed
	}
	for _, f := range n.peer.Forwards() {
		r.Forwards = append(r.Forwards, statusForward{From: f.From, To: f.To, ExpiresAt: f.Expires.UTC().Format(time.RFC3339)})
	}
	return r
}

func runStatus(ctx context.Context, args []string, io stdio, getenv func(string) string) error {
	fs := newFlagSet("status", "[--json] [--watch] [flags]", io)
	var cf commonFlags
	cf.register(fs, false)
	jsonOut := fs.Bool("json", false, "print one JSON object (the shape is stable)")
	watch := fs.Bool("watch", false, "redraw every second until interrupted")
	rest, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return usagef("unexpected argument %q", rest[0])
	}
	s, err := cf.resolve(getenv)
	if err != nil {
		return err
	}
	for {
		r, err := fetchStatus(ctx, s)
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

// fetchStatus asks a live peer on this machine for its view of the mesh.
func fetchStatus(ctx context.Context, s *settings) (*statusReport, error) {
	local, err := discovery.NewLocal(s.RunDir, nil)
	if err != nil {
		return nil, err
	}
	entries, err := local.Entries()
	if err != nil {
		return nil, err
	}
	var lastErr error
	for _, e := range entries {
		if e.Control == "" {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		resp, err := callControl(cctx, e.Control, controlRequest{Op: "status"})
		cancel()
		if err == nil && resp.Status != nil {
			return resp.Status, nil
		}
		lastErr = err
	}
	if lastErr != nil {
		return nil, fmt.Errorf("no running peer answered (last error: %v)", lastErr)
	}
	return &statusReport{
		Mode: s.mode(), Peers: []statusPeer{}, Forwards: []statusForward{},
		Message: fmt.Sprintf("no paf-peer is running on this machine (looked in %s); start one with: paf-peer serve --name NAME", s.RunDir),
	}, nil
}

func printStatus(w io.Writer, r *statusReport, now time.Time) {
	if r.Self == nil {
		fmt.Fprintf(w, "mode: %s\n%s\n", r.Mode, r.Message)
		return
	}
	// Shell commands that came and went (each send, check or listen runs a
	// brief peer) would crowd out the sessions: they are only counted.
	var shown []statusPeer
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
	fmt.Fprintf(w, "mode: %s   peers: %d alive, %d known   (view of peer %s)\n\n", r.Mode, alive, len(shown), r.Self.ID)
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
		stored := "-"
		if p.Stored > 0 {
			stored = fmt.Sprintf("%d for %d", p.Stored, p.StoredNames)
		}
		addr := p.Addr
		if addr == "" {
			addr = "-" // a failed peer known only from another's report (its name reserved)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", name, state, p.Activity, p.Host, addr, stored, p.ID, clipText(p.Description, 40))
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
	for _, k := range []string{"expired", "too_large_undelivered", "rejected_gossip", "rejected_frames", "refused_messages", "rate_limited", "mdns_foreign_mesh"} {
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

func clipText(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len([]rune(s)) <= n {
		return s
	}
	return string([]rune(s)[:n-1]) + "…"
}
