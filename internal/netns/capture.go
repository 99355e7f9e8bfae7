package netns

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"slices"
	"sync"
)

// A Capture records every Ethernet frame that enters the lab's bridge, as a passive attacker
// with a tap on the LAN's switch would: whatever any host sends (TCP and UDP on every port,
// ARP, multicast) is seen once, at the bridge port it came in on. Start one with
// [Lab.StartCapture]; it records until [Capture.Stop]. Its methods may be called concurrently.
type Capture struct {
	stop func() error // stops the reader and closes the socket; set once by StartCapture

	mu      sync.Mutex
	packets []Packet // guarded by mu
	err     error    // the reader's error, if it ended on one; guarded by mu
	stopped bool     // guarded by mu
	stopErr error    // Stop's answer; guarded by mu
}

// Packet is one captured frame.
type Packet struct {
	Port  string // the bridge port it entered by: the sending host's link
	Frame []byte // the Ethernet frame, as the sender's kernel handed it over (offloads unsplit)
}

// Packets returns the frames captured so far, in the order they were seen.
func (c *Capture) Packets() []Packet {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.packets)
}

// Stop ends the capture and reports whether it was complete: an error if the reader failed or
// the kernel dropped frames (a capture with gaps proves nothing about what it did not see).
// It is idempotent; the frames stay available to [Capture.Packets].
func (c *Capture) Stop() error {
	c.mu.Lock()
	if c.stopped {
		defer c.mu.Unlock()
		return c.stopErr
	}
	c.stopped = true
	c.mu.Unlock()
	err := c.stop()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil && err == nil {
		err = c.err
	}
	c.stopErr = err
	return err
}

func (c *Capture) record(p Packet) {
	c.mu.Lock()
	c.packets = append(c.packets, p)
	c.mu.Unlock()
}

// Contains reports how many captured frames hold s anywhere in their bytes (headers included).
func (c *Capture) Contains(s []byte) int {
	n := 0
	for _, p := range c.Packets() {
		if bytes.Contains(p.Frame, s) {
			n++
		}
	}
	return n
}

// Segment is the transport-layer view of a captured IPv4 TCP or UDP packet.
type Segment struct {
	Proto    string // "tcp" or "udp"
	Src, Dst netip.AddrPort
	// Seq is the TCP sequence number; SYN tells a connection's first segment, whose Seq is
	// the initial sequence number (data then starts at Seq+1).
	Seq     uint32
	SYN     bool
	Payload []byte // the transport payload (a slice of the frame)
}

const (
	ethHeaderLen  = 14
	etherTypeIPv4 = 0x0800
	protoTCP      = 6
	protoUDP      = 17
	tcpFlagSYN    = 0x02
)

// ParseSegment decodes an Ethernet frame carrying IPv4 TCP or UDP. ok is false for anything
// else (ARP, IPv6, fragments after the first, truncated or malformed headers). The input is
// whatever crossed the wire: every length is checked against the bytes present.
func ParseSegment(frame []byte) (seg Segment, ok bool) {
	if len(frame) < ethHeaderLen+20 || binary.BigEndian.Uint16(frame[12:14]) != etherTypeIPv4 {
		return Segment{}, false
	}
	ip := frame[ethHeaderLen:]
	ihl := int(ip[0]&0x0f) * 4
	if ip[0]>>4 != 4 || ihl < 20 || len(ip) < ihl {
		return Segment{}, false
	}
	// A large offloaded packet may carry 0 as its total length; otherwise trim the padding.
	if total := int(binary.BigEndian.Uint16(ip[2:4])); total >= ihl && total <= len(ip) {
		ip = ip[:total]
	}
	if binary.BigEndian.Uint16(ip[6:8])&0x1fff != 0 {
		return Segment{}, false // a later fragment: no transport header
	}
	src, _ := netip.AddrFromSlice(ip[12:16])
	dst, _ := netip.AddrFromSlice(ip[16:20])
	l4 := ip[ihl:]
	switch ip[9] {
	case protoUDP:
		if len(l4) < 8 {
			return Segment{}, false
		}
		seg = Segment{Proto: "udp", Payload: l4[8:]}
		if n := int(binary.BigEndian.Uint16(l4[4:6])); n >= 8 && n <= len(l4) {
			seg.Payload = l4[8:n]
		}
	case protoTCP:
		if len(l4) < 20 {
			return Segment{}, false
		}
		off := int(l4[12]>>4) * 4
		if off < 20 || off > len(l4) {
			return Segment{}, false
		}
		seg = Segment{Proto: "tcp", Seq: binary.BigEndian.Uint32(l4[4:8]), SYN: l4[13]&tcpFlagSYN != 0, Payload: l4[off:]}
	default:
		return Segment{}, false
	}
	seg.Src = netip.AddrPortFrom(src, binary.BigEndian.Uint16(l4[0:2]))
	seg.Dst = netip.AddrPortFrom(dst, binary.BigEndian.Uint16(l4[2:4]))
	return seg, true
}

// Segments decodes the captured frames that are IPv4 TCP or UDP (see [ParseSegment]).
func (c *Capture) Segments() []Segment {
	var out []Segment
	for _, p := range c.Packets() {
		if s, ok := ParseSegment(p.Frame); ok {
			out = append(out, s)
		}
	}
	return out
}

// Stream is what one side of a captured TCP connection sent.
type Stream struct {
	Src, Dst netip.AddrPort
	// Data is the payload bytes in order, retransmissions removed, from the first byte up to
	// the first gap (a segment the capture does not hold).
	Data []byte
	// Gap reports a missing segment: Data stops before the end of what was sent.
	Gap bool
}

// TCPStreams reassembles what src sent to dst over TCP (any source port when src's port is
// 0), one Stream per connection whose SYN was captured, in the order of the SYNs.
// Connections already open when the capture started are left out: their start is unknown.
func TCPStreams(segs []Segment, src netip.AddrPort, dst netip.AddrPort) []Stream {
	type conn struct {
		src  netip.AddrPort
		isn  uint32
		segs []Segment
	}
	var conns []*conn                     // in the order of their SYNs
	current := map[netip.AddrPort]*conn{} // the latest connection from each source address
	for _, s := range segs {
		if s.Proto != "tcp" || s.Dst != dst || s.Src.Addr() != src.Addr() || (src.Port() != 0 && s.Src.Port() != src.Port()) {
			continue
		}
		c := current[s.Src]
		if s.SYN {
			if c == nil || c.isn != s.Seq { // not a retransmitted SYN: a new connection
				c = &conn{src: s.Src, isn: s.Seq}
				current[s.Src] = c
				conns = append(conns, c)
			}
			continue
		}
		if c != nil && len(s.Payload) > 0 {
			c.segs = append(c.segs, s)
		}
	}
	out := make([]Stream, 0, len(conns))
	for _, c := range conns {
		out = append(out, reassemble(c.isn, c.segs, c.src, dst))
	}
	return out
}

// reassemble orders a connection's data segments by sequence number (relative to isn+1, modulo
// 2^32) and joins them, dropping bytes already present, up to the first gap.
func reassemble(isn uint32, segs []Segment, src, dst netip.AddrPort) Stream {
	st := Stream{Src: src, Dst: dst}
	slices.SortStableFunc(segs, func(a, b Segment) int {
		oa, ob := a.Seq-(isn+1), b.Seq-(isn+1)
		switch {
		case oa < ob:
			return -1
		case oa > ob:
			return 1
		}
		return 0
	})
	for _, s := range segs {
		off := int64(s.Seq - (isn + 1))
		have := int64(len(st.Data))
		end := off + int64(len(s.Payload))
		switch {
		case off > have:
			st.Gap = true
			return st
		case end > have:
			st.Data = append(st.Data, s.Payload[have-off:]...)
		}
	}
	return st
}

// UDPPayloads returns the payloads of the datagrams src sent to dst (any source port when
// src's port is 0), in capture order.
func UDPPayloads(segs []Segment, src netip.AddrPort, dst netip.AddrPort) [][]byte {
	var out [][]byte
	for _, s := range segs {
		if s.Proto == "udp" && s.Dst == dst && s.Src.Addr() == src.Addr() && (src.Port() == 0 || s.Src.Port() == src.Port()) {
			out = append(out, s.Payload)
		}
	}
	return out
}
