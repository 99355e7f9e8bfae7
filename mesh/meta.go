package mesh

import (
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf8"
)

// metaVersion is the version of the node metadata encoding. A peer ignores
// metadata of a higher version it does not understand rather than guessing.
const metaVersion = 1

// metaLimit is memberlist's cap on node metadata (memberlist.MetaMaxSize);
// more panics inside memberlist.Create.
const metaLimit = 512

// Activity is what a peer advertises about its agent.
type Activity int

const (
	ActivityIdle      Activity = 0 // named but not waiting for anyone
	ActivityListening Activity = 1 // blocked in a listen: happy to take a conversation
	ActivityBusy      Activity = 2 // in a conversation
)

func (a Activity) String() string {
	switch a {
	case ActivityIdle:
		return "idle"
	case ActivityListening:
		return "listening"
	case ActivityBusy:
		return "busy"
	}
	return fmt.Sprintf("activity(%d)", int(a))
}

// Meta is what a peer tells the mesh about itself, carried in memberlist's
// node metadata and so gossiped with membership.
type Meta struct {
	Name        string   `json:"n,omitempty"` // the name held, "" for none
	ClaimedAt   int64    `json:"c,omitempty"` // unix ms of the claim; orders concurrent claims
	Description string   `json:"d,omitempty"` // free text; truncated to fit the size cap
	Host        string   `json:"h,omitempty"`
	RelayAddr   string   `json:"r,omitempty"` // host:port of the peer's relay listener
	Activity    Activity `json:"l,omitempty"`
	Secure      bool     `json:"s,omitempty"` // secure (shared secret) or open mode
	Version     string   `json:"pv,omitempty"`
	Held        int      `json:"hm,omitempty"` // messages this peer holds for absent names
	HeldNames   int      `json:"hn,omitempty"` // how many names those are for
	Focus       string   `json:"f,omitempty"`  // current conversation focus, truncated
	// Leaving is set just before a graceful leave. memberlist tells its
	// event delegate that a node is gone but not whether it left or failed,
	// so the peer says so itself; others release its name at once.
	Leaving bool `json:"x,omitempty"`
	// Transient marks a short-lived peer (a shell command acting as a name
	// for a moment): it is never chosen to hold messages for others.
	Transient bool `json:"t,omitempty"`
	V         int  `json:"v"`
}

var errMetaTooNew = errors.New("mesh: node metadata from a newer version")

// encodeMeta encodes m within limit bytes, shortening the free-text fields
// (focus first, then description, then host) when it does not fit. Names are
// at most 64 bytes and addresses short, so shortening those three always
// makes it fit.
func encodeMeta(m Meta, limit int) []byte {
	m.V = metaVersion
	for {
		b, err := json.Marshal(m)
		if err != nil || len(b) <= limit {
			return b
		}
		over := len(b) - limit
		// Every round removes at least one byte, and at least the excess,
		// so the loop ends.
		shorten := func(s string) string { return truncateUTF8(s, min(len(s)-1, len(s)-over)) }
		switch {
		case m.Focus != "":
			m.Focus = shorten(m.Focus)
		case m.Description != "":
			m.Description = shorten(m.Description)
		case m.Host != "":
			m.Host = shorten(m.Host)
		default:
			return nil // unreachable with validated fields; never exceed the cap
		}
	}
}

// decodeMeta decodes metadata received from another peer.
func decodeMeta(b []byte) (Meta, error) {
	var m Meta
	if len(b) == 0 {
		return m, nil // a peer that has not set metadata yet
	}
	if len(b) > metaLimit {
		return Meta{}, fmt.Errorf("mesh: node metadata of %d bytes exceeds %d", len(b), metaLimit)
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return Meta{}, fmt.Errorf("mesh: decode node metadata: %w", err)
	}
	if m.V > metaVersion {
		return Meta{}, errMetaTooNew
	}
	if m.Name != "" {
		n, err := NormalizeName(m.Name)
		if err != nil || n != m.Name {
			return Meta{}, fmt.Errorf("mesh: node metadata carries an invalid name")
		}
	}
	return m, nil
}

// truncateUTF8 cuts s to at most n bytes without splitting a rune, marking
// the cut with an ellipsis (which counts towards n).
func truncateUTF8(s string, n int) string {
	const ell = "…"
	if len(s) <= n {
		return s
	}
	cut := n - len(ell)
	if cut <= 0 {
		return ""
	}
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	if cut == 0 {
		return ""
	}
	return s[:cut] + ell
}
