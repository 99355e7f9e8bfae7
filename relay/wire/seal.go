package wire

import (
	"encoding/binary"
	"fmt"
	"unicode/utf8"

	"github.com/paf-mesh/paf-mesh/internal/keys"
)

// sealInfo is the HPKE info a message's body is sealed with: the fields that say whose message
// it is and to whom, so that a sealed body cannot be opened as part of another message. The
// author's key is among them: an insider who re-signs a sealed body as its own (to have it
// shown as its message) makes it impossible to open.
func sealInfo(m *Message) []byte {
	b := make([]byte, 0, 160)
	b = append(b, "paf-mesh v2 sealed message\x00"...)
	for _, s := range []string{m.ID, m.From, m.Addressed(), string(m.SenderKey), m.SealedTo} {
		b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
		b = append(b, s...)
	}
	return b
}

// SealMessage returns a copy of m with its body sealed to card's identity and signed by its
// author, id (SPEC section 7, "Stored messages are sealed"): what holders keep for a name
// that is offline. m itself is not changed.
func SealMessage(m *Message, card keys.SealCard, id *keys.Identity) (*Message, error) {
	s := *m
	s.SenderKey = Raw(id.Public())
	s.SealedTo = card.Fingerprint
	sealed, err := card.Seal(sealInfo(&s), []byte(m.Body))
	if err != nil {
		return nil, fmt.Errorf("relay: seal a message to %s: %w", card.Fingerprint, err)
	}
	s.Sealed, s.Body = Raw(sealed), ""
	SignMessage(&s, id)
	return &s, nil
}

// OpenMessage opens a sealed message for its recipient, id: Body is set and the seal fields
// cleared. Check its signature first (VerifySignature): it covers the sealed form, which is
// what the author wrote and the holders kept. A message sealed to another identity, or whose
// sealed body does not open (altered, or re-signed by someone else), is an error wrapping
// keys.ErrNotSealedToMe, and m is left as it was.
func OpenMessage(m *Message, id *keys.Identity) error {
	if m.SealedTo == "" {
		return nil
	}
	if m.SealedTo != id.Fingerprint() {
		return fmt.Errorf("%w: it is sealed to identity %s, and this peer is %s", keys.ErrNotSealedToMe, m.SealedTo, id.Fingerprint())
	}
	body, err := id.Open(sealInfo(m), []byte(m.Sealed))
	if err != nil {
		return err
	}
	if !utf8.Valid(body) {
		return fmt.Errorf("%w: its sealed body is not valid UTF-8", ErrBadMessage)
	}
	m.Body, m.Sealed, m.SealedTo = string(body), "", ""
	return nil
}
