package relay

import (
	"context"
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/paf-mesh/paf-mesh/internal/keys"
	"github.com/paf-mesh/paf-mesh/mesh"
	"github.com/paf-mesh/paf-mesh/relay/wire"
)

// Handover acknowledgements (SPEC section 7: "A holder drops a stored message only on an
// acknowledgement signed by the recipient's identity").
//
// A recipient answers each handed-over message with its identity key and its signature of
// the message id (ackLen bytes). The holder that handed it over checks the ack against the
// recipient's peer id, drops its own copy, and sends the other holders a drop list that
// carries the recipient's key and each id's signature. Another holder drops an id only if the
// signature verifies and the key's identity is the one the name is bound to now: a peer that
// merely holds the mesh secret cannot make holders forget a message (before, any peer could
// send a drop list of any ids).

const (
	ackDomain = "handed over"
	ackLen    = ed25519.PublicKeySize + ed25519.SignatureSize
)

// handoverAck is a recipient's acknowledgement of one message.
type handoverAck struct {
	id  string
	sig []byte
}

// ackFor is this peer's acknowledgement of message id, as it answers a handover.
func (r *Relay) ackFor(id string) []byte {
	out := make([]byte, 0, ackLen)
	out = append(out, r.cfg.Identity.Public()...)
	return append(out, r.cfg.Identity.Sign(ackDomain, []byte(id))...)
}

// checkAck verifies a recipient's answer b to the handover of id by peer recipientID: its key
// must be of the identity the peer id is bound to, and sign id. It returns the key and the
// signature.
func checkAck(b []byte, id, recipientID string) (ed25519.PublicKey, []byte, error) {
	if len(b) != ackLen {
		return nil, nil, fmt.Errorf("relay: handover ack of %d bytes, want %d (a peer of a version before signed acks?)", len(b), ackLen)
	}
	pub, sig := ed25519.PublicKey(b[:ed25519.PublicKeySize]), b[ed25519.PublicKeySize:]
	if fp, ok := keys.PeerIDFingerprint(recipientID); !ok || fp != keys.Fingerprint(pub) {
		return nil, nil, fmt.Errorf("relay: handover ack from %s signed by another identity", recipientID)
	}
	if !keys.Verify(pub, ackDomain, []byte(id), sig) {
		return nil, nil, fmt.Errorf("relay: handover ack from %s for %s does not verify", recipientID, id)
	}
	return pub, sig, nil
}

// maxDropIDs is the most ids one drop list carries (its count is a uint16).
const maxDropIDs = 65535

// dropLists is the reqDrop payloads that tell other holders that the recipient, whose key is
// pub, acknowledged acks of name: one per maxDropIDs ids.
//
//	version, ReqDrop, u16 len + name, 32B key, u16 count, count x (u16 len + id, 64B signature)
func dropLists(name string, pub ed25519.PublicKey, acks []handoverAck) [][]byte {
	var drops [][]byte
	chunks := slices.Collect(slices.Chunk(acks, maxDropIDs))
	if len(chunks) == 0 {
		chunks = [][]handoverAck{nil} // one list, empty: the encoding is total
	}
	for _, chunk := range chunks {
		b := []byte{wire.MessageVersion, wire.ReqDrop}
		b = binary.BigEndian.AppendUint16(b, uint16(len(name)))
		b = append(append(b, name...), pub...)
		b = binary.BigEndian.AppendUint16(b, uint16(len(chunk)))
		for _, a := range chunk {
			b = binary.BigEndian.AppendUint16(b, uint16(len(a.id)))
			b = append(append(b, a.id...), a.sig...)
		}
		drops = append(drops, b)
	}
	return drops
}

// decodeDropList parses a reqDrop payload. It checks the shape only: signatures are checked by
// handleDrop. Errors wrap wire.ErrBadMessage.
func decodeDropList(b []byte) (name string, pub ed25519.PublicKey, acks []handoverAck, err error) {
	bad := func(what string) error { return fmt.Errorf("%w: drop list: %s", wire.ErrBadMessage, what) }
	if len(b) < 4 || b[0] != wire.MessageVersion || b[1] != wire.ReqDrop {
		return "", nil, nil, bad("bad header")
	}
	off := 2
	n := int(binary.BigEndian.Uint16(b[off:]))
	off += 2
	if len(b)-off < n+ed25519.PublicKeySize+2 {
		return "", nil, nil, bad("truncated")
	}
	name = string(b[off : off+n])
	off += n
	if nn, err := mesh.NormalizeName(name); err != nil || nn != name {
		return "", nil, nil, bad("bad name")
	}
	pub = ed25519.PublicKey(slices.Clone(b[off : off+ed25519.PublicKeySize]))
	off += ed25519.PublicKeySize
	count := int(binary.BigEndian.Uint16(b[off:]))
	off += 2
	acks = make([]handoverAck, 0, min(count, 1024))
	for range count {
		if len(b)-off < 2 {
			return "", nil, nil, bad("truncated")
		}
		n := int(binary.BigEndian.Uint16(b[off:]))
		off += 2
		if len(b)-off < n+ed25519.SignatureSize {
			return "", nil, nil, bad("truncated")
		}
		id := string(b[off : off+n])
		if err := wire.ValidID(id); err != nil {
			return "", nil, nil, bad(err.Error())
		}
		off += n
		acks = append(acks, handoverAck{id: id, sig: slices.Clone(b[off : off+ed25519.SignatureSize])})
		off += ed25519.SignatureSize
	}
	if off != len(b) {
		return "", nil, nil, bad("trailing bytes")
	}
	return name, pub, acks, nil
}

// handleDrop serves reqDrop: another holder handed these over, and shows the recipient's
// signed acknowledgements. Only ids whose acknowledgement verifies, from the identity name is
// bound to now, are dropped. A list from another identity is refused and counted; one whose
// name is bound to nobody this peer knows of yet (gossip of the recipient's claim still on its
// way) is kept and not counted: a copy kept is handed over again later, and the recipient
// de-duplicates it, while a copy dropped on a false word would be lost.
func (r *Relay) handleDrop(body []byte) error {
	name, pub, acks, err := decodeDropList(body)
	if err != nil {
		r.refused()
		return decodeRefusal(err)
	}
	if r.held == nil {
		return nil
	}
	bound, known := r.nameIdentity(name)
	if !known {
		r.log.Debug("keeping stored messages a drop list names: their name is bound to no identity seen here yet", "name", name, "count", len(acks))
		return nil
	}
	if bound != keys.Fingerprint(pub) {
		r.refused()
		r.log.Warn("refusing a drop list acknowledged by an identity that does not hold the name", "name", name, "identity", keys.Fingerprint(pub), "holder", bound)
		return errUnknownSender
	}
	ids := make([]string, 0, len(acks))
	for _, a := range acks {
		if keys.Verify(pub, ackDomain, []byte(a.id), a.sig) {
			ids = append(ids, a.id)
		}
	}
	if len(ids) < len(acks) {
		r.refused()
		r.log.Warn("a drop list has acknowledgements that do not verify; those messages are kept", "name", name, "bad", len(acks)-len(ids))
	}
	if err := r.applyDrop(name, ids); err != nil {
		return err
	}
	if len(ids) < len(acks) {
		return wire.WithCode(wire.CodeMalformed, fmt.Errorf("relay: %d acknowledgements of the drop list do not verify", len(acks)-len(ids)))
	}
	return nil
}

// applyDrop forgets held copies of ids of name, handed over by another holder, and remembers
// the ids so that a late copy is not kept (noteHandedOver).
func (r *Relay) applyDrop(name string, ids []string) error {
	r.noteHandedOver(ids)
	return r.held.Drop(name, ids)
}

// ProveLive checks that m is a live peer of the identity its id is bound to: a request to its
// relay address, whose handshake proves the identity (any answer will do, an error too). The
// mesh asks it before giving this peer's name up to m (mesh.Config.ConfirmClaim).
func (r *Relay) ProveLive(ctx context.Context, m mesh.Member) error {
	addr := MetaAddr(m.Meta)
	if addr == "" {
		return fmt.Errorf("%w: peer %s announces no relay address", wire.ErrUnreachable, m.ID)
	}
	name := m.Meta.Name
	if name == "" {
		name = "x"
	}
	_, err := r.tr.Request(ctx, m.ID, addr, appendNameList(nil, wire.ReqCount, name, nil))
	if _, answered := errors.AsType[*wire.RemoteError](err); answered {
		return nil
	}
	return err
}
