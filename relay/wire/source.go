package wire

import (
	"net"
	"net/netip"
)

// SourceAddr is the IP address of a connection's remote end, as a Handler gets it: an
// IPv4-mapped IPv6 address is unmapped, so one host has one address either way. It is the
// zero Addr when remote is not an IP address (a test's in-memory connection).
//
// Over TCP the address is the one the kernel saw complete the handshake, so a peer cannot
// claim another's as it can claim any peer id. It is not an identity: every peer on one
// machine shares 127.0.0.1, and a host may hold many addresses (an IPv6 host a /64).
func SourceAddr(remote net.Addr) netip.Addr {
	switch a := remote.(type) {
	case *net.TCPAddr:
		if a == nil {
			return netip.Addr{}
		}
		ip, _ := netip.AddrFromSlice(a.IP)
		return ip.Unmap()
	case interface{ AddrPort() netip.AddrPort }:
		return a.AddrPort().Addr().Unmap()
	case nil:
		return netip.Addr{}
	}
	ap, err := netip.ParseAddrPort(remote.String())
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

// source is the address c's requests come from (SourceAddr); the zero Addr for a conn with
// no network connection (a fuzz target reads frames from memory).
func (c *conn) source() netip.Addr {
	if c.nc == nil {
		return netip.Addr{}
	}
	return SourceAddr(c.nc.RemoteAddr())
}
