package relay

import (
	"net/netip"
	"strings"

	"github.com/paf-mesh/paf-mesh/internal/keys"
	"github.com/paf-mesh/paf-mesh/relay/store"
)

// A source is what the relay charges a request's rate and store quotas to (SPEC section 7:
// quotas and rates are keyed on identities): the sending identity, which the transport's
// handshake proved (a peer id carries its fingerprint), and the address the connection comes
// from, as one string of store.ChargeKeys (it is kept in held records). Each key has its own
// token bucket and store quota; an address gets AddrFactor identities' worth, because
// identities cost an insider nothing to make while addresses do.

// selfSource is this peer's own requests: local deliveries (not rate-limited) and messages
// it stores with itself as one of the holders.
const selfSource = "self"

// maxLimiters bounds the rate limiters remembered, least recently used forgotten first: a
// host that rotates through more sources than this only gets fresh buckets for sources that
// were idle longest.
const maxLimiters = 4096

// sourceOf is the source of a connection from addr: an IPv4 address, or an IPv6 /64, since
// one host commonly holds a whole /64 (SLAAC, privacy addresses) and could otherwise
// multiply its share. Link-local IPv6 addresses are kept whole: their /64 is the link's,
// shared by every host on it.
func sourceOf(addr netip.Addr) string {
	addr = addr.Unmap().WithZone("")
	switch {
	case !addr.IsValid():
		return "unknown"
	case addr.Is4() || addr.IsLinkLocalUnicast():
		return addr.String()
	}
	p, _ := addr.Prefix(64)
	return p.String()
}

// chargeOf is what a request from peer from, connected from addr, is charged to: its
// identity and its address.
func chargeOf(from string, addr netip.Addr) string {
	fp, _ := keys.PeerIDFingerprint(from) // the handshake proved it
	return store.IdentityPrefix + fp + " " + sourceOf(addr)
}

// authorCharge is charge with the identity of m's author in place of the requester's: a
// stored message is charged to whoever wrote it, also when a holder copies it to another.
func authorCharge(m *Message, charge string) string {
	signer := m.Signer()
	if signer == "" || charge == selfSource {
		return charge
	}
	return store.IdentityPrefix + signer + " " + charge[strings.LastIndexByte(charge, ' ')+1:]
}
