package mesh

import (
	"crypto/ed25519"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/paf-mesh/paf-mesh/internal/keys"
)

// Forward says that messages for From go to To until Expires. An entry with an
// empty To is a tombstone: it cancels an older forward for From (the name was
// claimed again, or the forward was withdrawn) and is kept until Expires so the
// cancellation wins over stale copies still travelling through the mesh.
type Forward struct {
	From    string    `json:"from"`
	To      string    `json:"to,omitempty"`
	Expires time.Time `json:"exp"`
	// Stamp orders versions of the entry for From: last writer wins, ties
	// broken by Origin, so every peer keeps the same entry.
	Stamp  int64  `json:"st"`
	Origin string `json:"o"` // peer id that wrote the entry
	// Key and Sig: the identity key of Origin's peer and its signature of the entry
	// (sign). A peer takes an entry from another only if it verifies, from the identity of
	// Origin, within the bounds on Stamp and Expires, and not for a name another identity
	// holds (Peer.checkForwardLocked).
	Key keys.Raw `json:"k,omitempty"`
	Sig keys.Raw `json:"sig,omitempty"`
}

// forwardDomain separates forward signatures from everything else an identity signs.
const forwardDomain = "forward"

func (f *Forward) signedBytes() []byte {
	b := make([]byte, 0, 128)
	for _, s := range []string{f.From, f.To, f.Origin} {
		b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
		b = append(b, s...)
	}
	b = binary.BigEndian.AppendUint64(b, uint64(f.Expires.UnixMilli()))
	return binary.BigEndian.AppendUint64(b, uint64(f.Stamp))
}

// sign signs f as written by id.
func (f *Forward) sign(id *keys.Identity) {
	f.Key = keys.Raw(id.Public())
	f.Sig = keys.Raw(id.Sign(forwardDomain, f.signedBytes()))
}

// verify checks f's signature and that it is by the identity f.Origin is bound to, and
// returns that identity's fingerprint.
func (f *Forward) verify() (string, error) {
	if f.Sig == "" {
		return "", errors.New("mesh: unsigned forward (a peer of a version before signed forwards?)")
	}
	if !keys.Verify(ed25519.PublicKey(f.Key), forwardDomain, f.signedBytes(), []byte(f.Sig)) {
		return "", errors.New("mesh: forward signature does not verify")
	}
	fp := keys.Fingerprint(ed25519.PublicKey(f.Key))
	if o, ok := keys.PeerIDFingerprint(f.Origin); !ok || o != fp {
		return "", fmt.Errorf("mesh: forward from peer %s signed by identity %s", clip(f.Origin, 40), fp)
	}
	return fp, nil
}

// newer reports whether f supersedes g (both for the same From).
func (f Forward) newer(g Forward) bool {
	if f.Stamp != g.Stamp {
		return f.Stamp > g.Stamp
	}
	return f.Origin > g.Origin
}

func (f Forward) validate() error {
	if n, err := NormalizeName(f.From); err != nil || n != f.From {
		return fmt.Errorf("mesh: forward has invalid from %q", clip(f.From, 70))
	}
	if f.To != "" {
		if n, err := NormalizeName(f.To); err != nil || n != f.To {
			return fmt.Errorf("mesh: forward has invalid to %q", clip(f.To, 70))
		}
		if f.To == f.From {
			return fmt.Errorf("mesh: forward from %q to itself", f.From)
		}
	}
	if f.Origin == "" || len(f.Origin) > 64 {
		return fmt.Errorf("mesh: forward has a bad origin")
	}
	return nil
}

// forwardTable is the replicated set of forwards, keyed by From. It is not
// safe for concurrent use; Peer guards it with its mutex.
type forwardTable map[string]Forward

// apply merges f and reports whether it changed the table (new information
// that should be re-gossiped and persisted).
func (t forwardTable) apply(f Forward, now time.Time) bool {
	if !f.Expires.After(now) {
		return false
	}
	if cur, ok := t[f.From]; ok && !f.newer(cur) {
		return false
	}
	t[f.From] = f
	return true
}

// expire drops entries past their expiry and reports those that were live
// forwards (not tombstones), for events.
func (t forwardTable) expire(now time.Time) []Forward {
	var gone []Forward
	for k, f := range t {
		if !f.Expires.After(now) {
			delete(t, k)
			if f.To != "" {
				gone = append(gone, f)
			}
		}
	}
	return gone
}

// live returns the forwards that are in force (no tombstones), sorted by From.
func (t forwardTable) live() []Forward {
	out := make([]Forward, 0, len(t))
	for _, f := range t {
		if f.To != "" {
			out = append(out, f)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].From < out[j].From })
	return out
}

func (t forwardTable) all() []Forward {
	out := make([]Forward, 0, len(t))
	for _, f := range t {
		out = append(out, f)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].From < out[j].From })
	return out
}

// maxForwardState bounds a decoded forward set (push/pull state or a file):
// far more forwards than a real mesh has, small enough to never exhaust memory.
const maxForwardState = 4 << 20

// decodeForwards decodes a list of forwards from another peer or from disk,
// dropping (and counting) invalid entries rather than failing the whole set.
func decodeForwards(b []byte) (fs []Forward, bad int, err error) {
	if len(b) > maxForwardState {
		return nil, 0, fmt.Errorf("mesh: forward state of %d bytes exceeds %d", len(b), maxForwardState)
	}
	var raw []Forward
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, 0, fmt.Errorf("mesh: decode forwards: %w", err)
	}
	fs = raw[:0]
	for _, f := range raw {
		if f.validate() != nil {
			bad++
			continue
		}
		fs = append(fs, f)
	}
	return fs, bad, nil
}
