package keys

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"

	"golang.org/x/crypto/hkdf"
)

// MinSecretLen is the shortest shared secret accepted, in bytes after trimming whitespace.
// 16 bytes is the least that still resists offline guessing if a frame is captured; the
// suggested `openssl rand -base64 32` gives 44.
const MinSecretLen = 16

// KeyLen is the length of every derived key and of the local key file: 32 bytes selects
// AES-256 in memberlist and matches the HMAC-SHA256 block output.
const KeyLen = 32

// meshIDLen is the number of derived bytes behind the mesh id (16 hex characters): enough that
// two unrelated meshes on one LAN do not collide, short enough for an mDNS TXT record.
const meshIDLen = 8

// Sentinel errors. They are returned wrapped with the path or rule involved; test with
// errors.Is.
var (
	// ErrSecretEmpty means a secret was given but is empty or only whitespace.
	ErrSecretEmpty = errors.New("keys: secret is empty")
	// ErrSecretTooShort means the secret is shorter than MinSecretLen.
	ErrSecretTooShort = errors.New("keys: secret is too short")
	// ErrLoosePerms means a secret or key file can be read or written by group or others.
	ErrLoosePerms = errors.New("keys: file permissions too open")
)

// hkdfSalt is fixed on purpose: every peer of a mesh must derive the same keys from the same
// secret without exchanging anything first. It versions the derivation so a future change of
// scheme yields unrelated keys instead of subtly compatible ones.
var hkdfSalt = []byte("paf-mesh v1 hkdf salt")

// The info strings separate the purposes: each derived key is independent of the others.
const (
	infoGossip = "paf-mesh v1 gossip"
	infoRelay  = "paf-mesh v1 relay"
	infoMeshID = "paf-mesh v1 mesh-id"
)

// howToMake is appended to secret errors so the user knows what to do next.
const howToMake = "use at least 16 characters, best a new random one from: paf-peer secret new (or: openssl rand -base64 32)"

// Keys are the per-purpose keys of one peer. Treat the byte slices as read-only; they are
// shared, not copied, by whoever holds the *Keys.
type Keys struct {
	// Secure is true when the keys come from a shared secret (LAN mode) and false when they
	// come from the local key file (open mode, loopback only).
	Secure bool
	// Gossip is the 32-byte memberlist SecretKey (AES-256-GCM).
	Gossip []byte
	// Relay is the 32-byte HMAC-SHA256 key for relay frames.
	Relay []byte
	// MeshID is 16 lowercase hex characters identifying the mesh. It is announced in mDNS
	// TXT: a separate HKDF output of the master key, so it reveals nothing of the other keys,
	// and testing a guessed secret against it costs one memory-hard derivation (masterKey).
	MeshID string
}

// FromSecret derives Keys (Secure=true) from a shared secret: the memory-hard master key
// (masterKey, argon2id), then each per-purpose key from it by HKDF. Surrounding whitespace is
// trimmed first, so a secret file ending in a newline and the same secret in an environment
// variable give the same keys. An empty secret wraps ErrSecretEmpty and one shorter than
// MinSecretLen wraps ErrSecretTooShort; both errors say how to make a good one. Peers use
// FromSecretCached, which pays for the derivation once per user and secret.
func FromSecret(secret []byte) (*Keys, error) {
	s, err := checkSecret(secret)
	if err != nil {
		return nil, err
	}
	return derive(masterKey(s, kdf), true)
}

// checkSecret trims and validates a secret.
func checkSecret(secret []byte) ([]byte, error) {
	s := bytes.TrimSpace(secret)
	if len(s) == 0 {
		return nil, fmt.Errorf("%w; %s", ErrSecretEmpty, howToMake)
	}
	if len(s) < MinSecretLen {
		return nil, fmt.Errorf("%w: %d bytes after trimming whitespace, need at least %d; %s",
			ErrSecretTooShort, len(s), MinSecretLen, howToMake)
	}
	return s, nil
}

// derive expands input keying material into the three per-purpose keys. In secure mode the
// input is the master key, never the secret itself (see masterKey); in open mode it is the
// random local key.
func derive(ikm []byte, secure bool) (*Keys, error) {
	gossip, err := expand(ikm, infoGossip, KeyLen)
	if err != nil {
		return nil, err
	}
	relay, err := expand(ikm, infoRelay, KeyLen)
	if err != nil {
		return nil, err
	}
	id, err := expand(ikm, infoMeshID, meshIDLen)
	if err != nil {
		return nil, err
	}
	return &Keys{Secure: secure, Gossip: gossip, Relay: relay, MeshID: hex.EncodeToString(id)}, nil
}

func expand(ikm []byte, info string, n int) ([]byte, error) {
	out := make([]byte, n)
	// HKDF-SHA256 can produce 255*32 bytes per info; n is far below, so this cannot fail in
	// practice, but the error is still reported rather than ignored.
	if _, err := io.ReadFull(hkdf.New(sha256.New, ikm, hkdfSalt, []byte(info)), out); err != nil {
		return nil, fmt.Errorf("keys: derive %q: %w", info, err)
	}
	return out, nil
}

// String describes the keys without any key bytes, e.g. "keys{secure mesh=abcd…}". Only a
// prefix of the (public) mesh id is shown: enough to tell meshes apart in a log line.
func (k *Keys) String() string {
	if k == nil {
		return "keys{nil}"
	}
	mode := "open"
	if k.Secure {
		mode = "secure"
	}
	id := k.MeshID
	if len(id) > 4 {
		id = id[:4] + "…"
	}
	return "keys{" + mode + " mesh=" + id + "}"
}

// GoString keeps %#v from printing the key bytes.
func (k *Keys) GoString() string { return k.String() }

// LogValue keeps slog handlers (notably the JSON handler, which would otherwise marshal the
// exported byte fields) from logging key material.
func (k *Keys) LogValue() slog.Value { return slog.StringValue(k.String()) }

var _ slog.LogValuer = (*Keys)(nil)
