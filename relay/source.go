package relay

import "net/netip"

// A source is what the relay charges a request's rate and store quotas to: the address the
// sending connection comes from, as a string (it is kept in held records). It is an interim
// key until peers have identity keys (SPEC section 7 keys quotas on identities): unlike the
// peer id in the hello, a holder of the mesh key cannot choose it freely, but every peer on
// one machine shares 127.0.0.1 (so the limits are sized for a machine's peers together, see
// Config.Rate and Config.SourceHeldBytes), and hosts behind one NAT share their address.

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
