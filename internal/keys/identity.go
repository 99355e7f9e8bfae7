package keys

import (
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	voi "github.com/oasisprotocol/curve25519-voi/primitives/ed25519"
	"github.com/oasisprotocol/curve25519-voi/primitives/ed25519/extra/cache"
)

// IdentityFile is the name of the identity key file inside the state directory.
const IdentityFile = "identity"

// FingerprintLen is the length of a fingerprint: 16 base32 characters, 80 bits of the SHA-256
// of the public key. Peer ids start with it, so finding another key with the same fingerprint
// (2^80 key generations) is what it would take to pass as another identity's peer.
const FingerprintLen = 16

// Domain-separation prefixes of everything an identity signs. A signature made for one purpose
// can never be taken for another.
const (
	signPrefix      = "paf-mesh v2 signature\x00"
	infoStaticKey   = "paf-mesh v2 identity x25519"
	certDomain      = "transport static key"
	staticKeyLen    = 32
	certificateLen  = ed25519.PublicKeySize + ed25519.SignatureSize
	peerIDSuffixLen = 8 // random bytes after the fingerprint, hex-encoded
)

// fpEncoding is lowercase base32 without padding: fingerprints are read aloud and compared by
// people, and appear in peer ids.
var fpEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// Identity is a user's key pair on one machine (SPEC section 7, "Identity"): an Ed25519 key
// that signs, and an X25519 key for the transport's handshake, derived from the same seed and
// bound to the Ed25519 key by a signature (Certificate). Every peer of that user on that
// machine uses it. It formats itself as its fingerprint, never with key bytes.
type Identity struct {
	sign        ed25519.PrivateKey
	public      ed25519.PublicKey
	static      *ecdh.PrivateKey
	cert        []byte
	fingerprint string
	seal        *ecdh.PrivateKey // opens stored messages sealed to this identity (seal.go)
	card        []byte           // Card
}

// LoadIdentity loads dir/identity, creating it (32 random bytes, mode 0600, atomically, so
// peers starting at the same moment end up with the same key) if it does not exist. A file
// that others can read or write, or that is not 32 bytes, is an error and is never replaced:
// a new key would be a new identity, and the names bound to the old one would stay out of
// reach until their reservations end.
func LoadIdentity(dir string) (*Identity, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("keys: create identity dir: %w", err)
	}
	path := filepath.Join(dir, IdentityFile)
	seed, err := readKeyFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		seed, err = createKeyFile(dir, path)
	}
	if err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	return IdentityFromSeed(seed)
}

// NewIdentity returns a fresh random identity that is not stored anywhere (tests, and the
// demo's peers).
func NewIdentity() *Identity {
	seed := make([]byte, ed25519.SeedSize)
	_, _ = rand.Read(seed) // never fails on supported platforms
	id, err := IdentityFromSeed(seed)
	if err != nil {
		panic(err) // unreachable: the seed has the right size
	}
	return id
}

// IdentityFromSeed derives an identity from a 32-byte seed.
func IdentityFromSeed(seed []byte) (*Identity, error) {
	if len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("keys: identity seed is %d bytes, want %d", len(seed), ed25519.SeedSize)
	}
	sign := ed25519.NewKeyFromSeed(seed)
	staticSeed, err := expand(seed, infoStaticKey, staticKeyLen)
	if err != nil {
		return nil, err
	}
	static, err := ecdh.X25519().NewPrivateKey(staticSeed)
	if err != nil {
		return nil, fmt.Errorf("keys: derive transport key: %w", err)
	}
	id := &Identity{sign: sign, public: sign.Public().(ed25519.PublicKey), static: static}
	id.fingerprint = Fingerprint(id.public)
	id.cert = append(append(make([]byte, 0, certificateLen), id.public...),
		id.Sign(certDomain, static.PublicKey().Bytes())...)
	if err := id.deriveSealKey(seed); err != nil {
		return nil, err
	}
	return id, nil
}

// Fingerprint returns the fingerprint of an Ed25519 public key.
func Fingerprint(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return fpEncoding.EncodeToString(sum[:10])
}

// Fingerprint is this identity's fingerprint (FingerprintLen characters).
func (id *Identity) Fingerprint() string { return id.fingerprint }

// Public is the Ed25519 public key.
func (id *Identity) Public() ed25519.PublicKey { return id.public }

// String formats the identity as its fingerprint.
func (id *Identity) String() string { return "identity " + id.fingerprint }

// Signatures are made and checked with curve25519-voi rather than crypto/ed25519: on this
// project's reference machine it signs in 12-14 µs against 21 and verifies in 33 µs against 44
// (relay's BenchmarkSignVerify), and every relay message is signed once and verified at least
// once.
// Ed25519 signing is deterministic (RFC 8032), so the signatures are byte for byte those
// crypto/ed25519 makes, and verification uses voi's VerifyOptionsStdLib: it accepts exactly
// what crypto/ed25519.Verify accepts (cofactorless, small-order and non-canonical points as
// there), so peers of earlier versions and this one agree on every signature
// (TestSignaturesMatchTheStandardLibrary).
var voiOptions = &voi.Options{Verify: voi.VerifyOptionsStdLib}

// Sign signs msg for purpose domain (a short constant naming what is signed).
func (id *Identity) Sign(domain string, msg []byte) []byte {
	return voi.Sign(voi.PrivateKey(id.sign), signedBytes(domain, msg))
}

// Verify reports whether sig is pub's signature of msg for purpose domain.
func Verify(pub ed25519.PublicKey, domain string, msg, sig []byte) bool {
	if len(pub) != ed25519.PublicKeySize || len(sig) != ed25519.SignatureSize {
		return false
	}
	return verifier.VerifyWithOptions(voi.PublicKey(pub), signedBytes(domain, msg), sig, voiOptions)
}

// verifier checks signatures with the expanded form (the point decompressed, and negated, once;
// a square root each time otherwise) of the last verifyCacheKeys public keys it saw, kept in an
// LRU cache: a relay verifies every message it receives, and a user's messages come from a
// handful of identities. Measured on this project's reference machine (go test -bench of a
// 1 KiB message): 36-43 µs a signature against 46-50 µs unexpanded. A key seen once costs its
// expansion, which is the work an unexpanded verification does anyway, and one allocation.
var verifier = cache.NewVerifier(cache.NewLRUCache(verifyCacheKeys))

// verifyCacheKeys bounds verifier's cache: an expanded key is 216 bytes, and a peer sees
// one identity per user of its mesh (a card per member, a signature per message).
const verifyCacheKeys = 256

func signedBytes(domain string, msg []byte) []byte {
	b := make([]byte, 0, len(signPrefix)+len(domain)+1+len(msg))
	b = append(b, signPrefix...)
	b = append(b, domain...)
	b = append(b, 0)
	return append(b, msg...)
}

// StaticPrivate and StaticPublic are the X25519 key pair the transport's handshake uses.
func (id *Identity) StaticPrivate() []byte { return id.static.Bytes() }

// StaticPublic is the X25519 public key (see StaticPrivate).
func (id *Identity) StaticPublic() []byte { return id.static.PublicKey().Bytes() }

// Certificate binds the transport key to the identity: the Ed25519 public key followed by its
// signature of StaticPublic. The handshake sends it encrypted; the other side checks it with
// VerifyCertificate against the static key the handshake proved.
func (id *Identity) Certificate() []byte { return id.cert }

// CertificateLen is the length of a Certificate.
const CertificateLen = certificateLen

// VerifyCertificate checks that cert binds static to an identity and returns that identity's
// public key.
func VerifyCertificate(cert, static []byte) (ed25519.PublicKey, error) {
	if len(cert) != certificateLen {
		return nil, fmt.Errorf("keys: identity certificate is %d bytes, want %d", len(cert), certificateLen)
	}
	pub := ed25519.PublicKey(cert[:ed25519.PublicKeySize])
	if !Verify(pub, certDomain, static, cert[ed25519.PublicKeySize:]) {
		return nil, errors.New("keys: identity certificate does not sign this transport key")
	}
	return pub, nil
}

// NewPeerID returns a new peer id bound to this identity: its fingerprint, a dash, and 16 hex
// digits of randomness (several peers share one identity). A peer can prove an id only with
// the identity whose fingerprint it starts with (PeerIDFingerprint), so ids are self-certifying.
func (id *Identity) NewPeerID() string {
	var b [peerIDSuffixLen]byte
	_, _ = rand.Read(b[:])
	return id.fingerprint + "-" + hex.EncodeToString(b[:])
}

// ValidFingerprint reports whether fp has the form of a fingerprint.
func ValidFingerprint(fp string) bool {
	if len(fp) != FingerprintLen {
		return false
	}
	_, err := fpEncoding.DecodeString(fp)
	return err == nil
}

// PeerIDFingerprint returns the fingerprint a peer id is bound to, and false for an id that is
// not bound to any (not of the form NewPeerID makes).
func PeerIDFingerprint(peerID string) (string, bool) {
	fp, suffix, ok := strings.Cut(peerID, "-")
	if !ok || !ValidFingerprint(fp) || len(suffix) != 2*peerIDSuffixLen {
		return "", false
	}
	if _, err := hex.DecodeString(suffix); err != nil || strings.ToLower(suffix) != suffix {
		return "", false
	}
	return fp, true
}

// Raw is bytes (a key, a signature) kept in a string, so that a struct holding it stays
// comparable, and encoded to JSON as base64 like a []byte: a string of raw bytes would be
// mangled by JSON, whose strings are UTF-8.
type Raw string

// MarshalJSON encodes r as base64.
func (r Raw) MarshalJSON() ([]byte, error) { return json.Marshal([]byte(r)) }

// UnmarshalJSON decodes base64 (or null).
func (r *Raw) UnmarshalJSON(b []byte) error {
	var v []byte
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*r = Raw(v)
	return nil
}
