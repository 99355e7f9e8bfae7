package node

import (
	"context"
	"path/filepath"
	"slices"

	"github.com/paf-mesh/paf-mesh/internal/keys"
)

// IdentityInfo is what `paf-peer identity --json` prints (SPEC section 6).
type IdentityInfo struct {
	// Fingerprint identifies this user's identity key on this machine.
	Fingerprint string `json:"fingerprint"`
	// File is where the key is kept (mode 0600).
	File string `json:"file"`
	// Names are the names held now by peers of this identity, as a running peer on this
	// machine sees them; empty when none holds one, or when no peer runs (Note says so).
	Names []string `json:"names"`
	Note  string   `json:"note,omitempty"`
}

// Identity loads (creating on first use) the identity of cfg's state dir and lists the names
// bound to it, asking a running peer of this machine.
func Identity(ctx context.Context, cfg Config) (*IdentityInfo, error) {
	s := cfg.withDefaults()
	id, err := keys.LoadIdentity(s.StateDir)
	if err != nil {
		return nil, err
	}
	info := &IdentityInfo{Fingerprint: id.Fingerprint(), File: filepath.Join(s.StateDir, keys.IdentityFile), Names: []string{}}
	st, err := FetchStatus(ctx, cfg)
	switch {
	case err != nil:
		info.Note = "names not known: " + err.Error()
	case st.Self == nil:
		info.Note = "names not known: no peer is running on this machine"
	default:
		for _, p := range st.Peers {
			if p.Identity == info.Fingerprint && p.Name != "" && p.State == "alive" {
				info.Names = append(info.Names, p.Name)
			}
		}
		slices.Sort(info.Names)
	}
	return info, nil
}
