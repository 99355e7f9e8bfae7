package keys

import (
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/hpke"
	"errors"
	"fmt"
	"sync"
)

// Sealing (SPEC section 7, "Stored messages are sealed"): a message kept by holders for a name
// that is offline is encrypted to the recipient's identity with HPKE (RFC 9180,
// DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, ChaCha20-Poly1305, base mode), so that holders keep
// ciphertext. The recipient key is an X25519 key of its own, derived from the identity's seed
// apart from the transport's static key (one key, one use), and published in a Card.

const (
	infoSealKey = "paf-mesh v2 identity seal x25519"
	cardDomain  = "seal key"
	// CardLen is the length of a Card: the Ed25519 public key, the X25519 sealing key, and
	// the Ed25519 signature of the sealing key.
	CardLen = ed25519.PublicKeySize + 32 + ed25519.SignatureSize
	// SealOverhead is what sealing adds to a plaintext: the encapsulated key and the tag.
	SealOverhead = 32 + 16
)

// ErrNotSealedToMe: a sealed message this identity cannot open (sealed to another identity,
// or altered).
var ErrNotSealedToMe = errors.New("keys: this identity cannot open the sealed message")

func (id *Identity) deriveSealKey(seed []byte) error {
	b, err := expand(seed, infoSealKey, 32)
	if err != nil {
		return err
	}
	id.seal, err = ecdh.X25519().NewPrivateKey(b)
	if err != nil {
		return fmt.Errorf("keys: derive sealing key: %w", err)
	}
	pub := id.seal.PublicKey().Bytes()
	card := make([]byte, 0, CardLen)
	card = append(card, id.public...)
	card = append(card, pub...)
	id.card = append(card, id.Sign(cardDomain, pub)...)
	return nil
}

// Card is what others need to seal a message to this identity: its public key, its sealing
// key, and its signature binding the two. Peers announce it; anyone can check it (ParseCard).
func (id *Identity) Card() []byte { return id.card }

// A SealCard is a checked Card: the identity's fingerprint and its sealing key.
type SealCard struct {
	Fingerprint string
	seal        *ecdh.PublicKey
	raw         string
}

// Bytes is the card as announced.
func (c SealCard) Bytes() []byte { return []byte(c.raw) }

// ParseCard checks a card: the signature must bind the sealing key to the Ed25519 key, whose
// fingerprint the card then carries. A card cannot be made for another identity's key.
func ParseCard(b []byte) (SealCard, error) {
	if len(b) != CardLen {
		return SealCard{}, fmt.Errorf("keys: a sealing card of %d bytes, want %d", len(b), CardLen)
	}
	if c, ok := checkedCards.get(b); ok {
		return c, nil
	}
	pub := ed25519.PublicKey(b[:ed25519.PublicKeySize])
	sk := b[ed25519.PublicKeySize : ed25519.PublicKeySize+32]
	if !Verify(pub, cardDomain, sk, b[ed25519.PublicKeySize+32:]) {
		return SealCard{}, errors.New("keys: the sealing card's signature does not verify")
	}
	k, err := ecdh.X25519().NewPublicKey(sk)
	if err != nil {
		return SealCard{}, fmt.Errorf("keys: sealing card: %w", err)
	}
	c := SealCard{Fingerprint: Fingerprint(pub), seal: k, raw: string(b)}
	checkedCards.put(c)
	return c, nil
}

// maxCheckedCards bounds the cards ParseCard remembers: far more identities than a mesh of
// one user's sessions (one identity) or of a few users has.
const maxCheckedCards = 256

// checkedCards remembers the cards ParseCard has checked, by their bytes. The sessions of one
// user share one state dir, so one identity, and a peer meets the same card in every member's
// metadata: the seal book verified it once per member, an Ed25519 verification each (at 50
// sessions starting together, 49 per peer were 1.4 % of their CPU; issue 18, perf of the
// bench, whose sessions each have a state dir and so an identity of their own, which this
// does not help). Whether a card verifies depends on its bytes alone, so the remembered
// result is the result; only cards that verified are kept, and the set is emptied when full.
var checkedCards = cardSet{m: map[string]SealCard{}}

type cardSet struct {
	mu sync.Mutex
	m  map[string]SealCard // by SealCard.raw
}

func (s *cardSet) get(b []byte) (SealCard, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.m[string(b)]
	return c, ok
}

func (s *cardSet) put(c SealCard) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.m) >= maxCheckedCards {
		clear(s.m)
	}
	s.m[c.raw] = c
}

// Seal encrypts plaintext to the card's identity. info binds the ciphertext to its context
// (the message's id, author, key and recipient): opened with any other info, it fails.
func (c SealCard) Seal(info, plaintext []byte) ([]byte, error) {
	if c.seal == nil {
		return nil, errors.New("keys: seal to an empty card")
	}
	pk, err := hpke.NewDHKEMPublicKey(c.seal)
	if err != nil {
		return nil, err
	}
	return hpke.Seal(pk, hpke.HKDFSHA256(), hpke.ChaCha20Poly1305(), info, plaintext)
}

// Open decrypts what SealCard.Seal sealed to this identity with the same info. Anything else
// (another identity's, altered, other info) is ErrNotSealedToMe.
func (id *Identity) Open(info, sealed []byte) ([]byte, error) {
	k, err := hpke.NewDHKEMPrivateKey(id.seal)
	if err != nil {
		return nil, err
	}
	pt, err := hpke.Open(k, hpke.HKDFSHA256(), hpke.ChaCha20Poly1305(), info, sealed)
	if err != nil {
		return nil, ErrNotSealedToMe
	}
	return pt, nil
}
