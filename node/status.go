package node

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/paf-mesh/paf-mesh/discovery"
	"github.com/paf-mesh/paf-mesh/internal/keys"
	"github.com/paf-mesh/paf-mesh/mcpserver"
	"github.com/paf-mesh/paf-mesh/mesh"
	"github.com/paf-mesh/paf-mesh/node/control"
	"github.com/paf-mesh/paf-mesh/relay"
)

// StatusPeer is one peer in `status --json` (SPEC section 6). Fields beyond
// the SPEC's are additions, never renames.
type StatusPeer struct {
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
	// ClockSkew is what the reporting peer knows of this peer's clock compared with its own
	// (from the stamps of its requests, or a refusal of ours), e.g. "5m0s ahead, outside the
	// ±2m0s window"; empty when nothing is known.
	ClockSkew string `json:"clock_skew,omitempty"`
	// ClockOutside: the two clocks differ by more than the accepted window, so requests
	// between the two peers are refused (their messages wait with holders, or queued).
	ClockOutside bool `json:"clock_outside,omitempty"`
	// Identity is the fingerprint of the identity the peer's id is bound to (the
	// relay proves it on every connection); empty for an id bound to none.
	Identity string `json:"identity"`
}

// StatusForward is one rename in force.
type StatusForward struct {
	From      string `json:"from"`
	To        string `json:"to"`
	ExpiresAt string `json:"expires_at"`
}

// Status is one peer's view of the mesh: `status --json` (SPEC section 6).
type Status struct {
	Self     *StatusPeer     `json:"self"`
	Mode     string          `json:"mode"`
	Peers    []StatusPeer    `json:"peers"`
	Forwards []StatusForward `json:"forwards"`
	// Counters of the reporting peer: what it refused or lost sight of.
	Counters map[string]uint64 `json:"counters,omitempty"`
	// Queued is how many messages the reporting peer keeps in its outbox, not yet confirmed
	// delivered or stored (SPEC section 3): it retries them with the same ids.
	Queued int `json:"queued"`
	// Message is set when there is nothing to report (no peer running).
	Message string `json:"message,omitempty"`
}

func toStatusPeer(m mesh.Member) StatusPeer {
	mode := "open"
	if m.Meta.Secure {
		mode = "secure"
	}
	activity, _ := mcpserver.MetaPresence(m.Meta)
	held, heldNames := relay.MetaHeld(m.Meta)
	p := StatusPeer{
		ID: m.ID, Name: m.Meta.Name, Description: mcpserver.MetaDescription(m.Meta), Host: m.Meta.Host,
		Addr: m.Addr, Relay: relay.MetaAddr(m.Meta), State: m.State.String(),
		Listening: activity == mcpserver.ActivityListening, Activity: activity.String(),
		Stored: held, StoredNames: heldNames, Mode: mode, Version: m.Meta.Version,
		Transient: m.Meta.Transient,
	}
	p.Identity, _ = keys.PeerIDFingerprint(m.ID)
	if !m.Since.IsZero() {
		p.Since = m.Since.UTC().Format(time.RFC3339)
	}
	return p
}

// Status is this peer's view of the mesh.
func (n *Node) Status() Status {
	self := toStatusPeer(n.peer.Self())
	r := Status{Self: &self, Mode: n.cfg.Mode(), Peers: []StatusPeer{}, Forwards: []StatusForward{}}
	skews := n.relay.ClockSkews()
	for _, m := range n.peer.Members() {
		p := toStatusPeer(m)
		if pc, ok := skews[m.ID]; ok {
			p.ClockSkew = clockSkew(pc)
			p.ClockOutside = pc.Outside || (pc.Measured && (pc.Skew > relay.DefaultClockWindow || pc.Skew < -relay.DefaultClockWindow))
		}
		r.Peers = append(r.Peers, p)
	}
	r.Queued = n.relay.Queued()
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
		"over_quota": rs.OverQuota, "rejected_forwards": ms.RejectedForwards, "refused_claims": ms.RefusedClaims,
		"queued": uint64(r.Queued),
	}
	if m := n.mdns.Load(); m != nil {
		st := m.Stats()
		r.Counters["mdns_peers"] = uint64(st.Peers)
		r.Counters["mdns_foreign_mesh"] = st.ForeignMesh
		r.Counters["mdns_malformed"] = st.Malformed
	}
	for _, f := range n.peer.Forwards() {
		r.Forwards = append(r.Forwards, StatusForward{From: f.From, To: f.To, ExpiresAt: f.Expires.UTC().Format(time.RFC3339)})
	}
	return r
}

// clockSkew says what is known of a peer's clock, for status.
func clockSkew(pc relay.PeerClock) string {
	out := ""
	if pc.Outside {
		out = "outside the accepted window: requests refused"
	}
	if !pc.Measured {
		return out
	}
	if out == "" {
		return relay.DescribeSkew(pc.Skew)
	}
	return relay.DescribeSkew(pc.Skew) + ", " + out
}

// statusAskTimeout bounds asking one peer for its status: a local peer
// answers in milliseconds; one that does not within seconds is stuck, and
// the next one is asked.
const statusAskTimeout = 3 * time.Second

// FetchStatus asks a live peer on this machine (found in cfg.RunDir) for
// its view of the mesh. With no peer running it returns a Status whose
// Message says so and how to start one; it fails only when peers are
// advertised but none answers.
func FetchStatus(ctx context.Context, cfg Config) (*Status, error) {
	local, err := discovery.NewLocal(cfg.RunDir, nil)
	if err != nil {
		return nil, err
	}
	entries, err := local.Entries()
	if err != nil {
		return nil, err
	}
	for i, e := range entries {
		if entries[i].Control, err = local.ControlSocket(e); err != nil {
			entries[i].Control = "" // not where our peers put theirs, or not ours
		}
	}
	var lastErr error
	for _, e := range entries {
		if e.Control == "" {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, statusAskTimeout)
		resp, err := control.Call(cctx, e.Control, control.Request{Op: control.OpStatus})
		cancel()
		if err == nil && resp.Status != nil {
			var st Status
			if err = json.Unmarshal(resp.Status, &st); err == nil {
				return &st, nil
			}
		}
		lastErr = err
	}
	if lastErr != nil {
		return nil, fmt.Errorf("no running peer answered (last error: %v)", lastErr)
	}
	return &Status{
		Mode: cfg.Mode(), Peers: []StatusPeer{}, Forwards: []StatusForward{},
		Message: fmt.Sprintf("no paf-peer is running on this machine (looked in %s); start one with: paf-peer serve --name NAME", cfg.RunDir),
	}, nil
}
