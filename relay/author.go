package relay

import (
	"github.com/paf-mesh/paf-mesh/internal/keys"
	"github.com/paf-mesh/paf-mesh/relay/wire"
)

// checkAuthor checks that m is what its author wrote and that the author may use the name
// in m.From (SPEC section 7, "Messages are signed"): the signature must verify (nothing a
// holder or forwarder did changed what it covers), and the name must be bound to the signer.
//
//   - A name held now (or claimed, or forwarding to a holder) is bound to the identity of
//     that holder's peer id (keys.PeerIDFingerprint): a message signed by any other identity
//     is refused, whoever hands it over.
//   - A message sent directly (not a handover) must also come from a peer of the signer's
//     identity that holds the name (senderBound).
//   - A handover of a message whose author's name nobody holds now is accepted on its
//     signature alone: its author may be long gone, and the holders checked it when they
//     took it.
//   - A system notice (a stored message expired) is signed by the holder that sent it and
//     shown as a notice from that holder's identity, never as a message from a name.
//
// fromPeer is the peer the request came from: its id is bound to the identity the transport
// proved. body is m's body when it is not in m.Body (see accept).
func (r *Relay) checkAuthor(fromPeer string, m *Message, body []byte, handover bool) error {
	signer, err := wire.VerifySignature(m, body)
	if err != nil {
		return decodeRefusal(err)
	}
	return r.checkSigner(fromPeer, m, signer, handover)
}

// checkSigner is checkAuthor without the signature's verification: signer is the
// fingerprint of the key m says signed it. Alone it proves nothing: whoever calls it
// verifies the signature too (accept has the inbox verify it beside the write).
func (r *Relay) checkSigner(fromPeer string, m *Message, signer string, handover bool) error {
	if signer == "" {
		return decodeRefusal(wire.ErrUnsigned)
	}
	peerFP, _ := keys.PeerIDFingerprint(fromPeer)
	if m.Kind == KindSystem {
		if !handover && peerFP != signer {
			return errUnknownSender
		}
		return nil
	}
	if fp, known := r.nameIdentity(m.From); known && fp != signer {
		return errUnknownSender
	}
	if !handover && (peerFP != signer || !r.senderBound(fromPeer, m.From)) {
		return errUnknownSender
	}
	return nil
}

// nameIdentity is the fingerprint of the identity name is bound to now: its holder's, or
// the claimant's whose claim is ahead of our view, or, for a renamed name, its new holder's.
func (r *Relay) nameIdentity(name string) (string, bool) {
	if o, ok := r.dir.Owner(name); ok {
		return keys.PeerIDFingerprint(o.ID)
	}
	if route, err := r.dir.Resolve(name); err == nil && route.Online {
		return keys.PeerIDFingerprint(route.Owner.ID)
	}
	return "", false
}

// senderBound reports whether peer may send as name: it holds the name, or
// held it until a rename or claim that gossip has not brought here yet.
func (r *Relay) senderBound(peer, name string) bool {
	if o, ok := r.dir.Owner(name); ok && o.ID == peer {
		return true
	}
	if m, ok := r.dir.Member(peer); ok && m.Meta.Name == name {
		return true // its claim is ahead of our view of ownership
	}
	// Renamed away from name since sending: the forward leads to it.
	if route, err := r.dir.Resolve(name); err == nil && route.Online && route.Owner.ID == peer {
		return true
	}
	return false
}
