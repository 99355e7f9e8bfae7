package netns

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/paf-mesh/paf-mesh/internal/testutil"
)

// A capture on the bridge sees a UDP datagram and a TCP stream between two hosts exactly
// once each, and reassembles the stream: the tool the passive-attacker tests rely on, checked
// against traffic whose every byte is known.
func TestCaptureSeesTrafficOnce(t *testing.T) {
	lab := New(t, 2)
	a, b := lab.Hosts[0], lab.Hosts[1]
	c, err := lab.StartCapture()
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	defer func() {
		if !stopped {
			_ = c.Stop()
		}
	}()
	mark := make([]byte, 8)
	if _, err := rand.Read(mark); err != nil {
		t.Fatal(err)
	}
	marker := "marker-" + hex.EncodeToString(mark)

	// UDP: one datagram from a to a socket on b.
	var udp *net.UDPConn
	if err := b.Run(func() (err error) {
		udp, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP(b.IP)})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer udp.Close()
	udpDst := udp.LocalAddr().(*net.UDPAddr).AddrPort()
	var udpSrc netip.AddrPort
	if err := a.Run(func() error {
		s, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(udpDst))
		if err != nil {
			return err
		}
		defer s.Close()
		udpSrc = s.LocalAddr().(*net.UDPAddr).AddrPort()
		_, err = s.Write([]byte("udp " + marker))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 256)
	_ = udp.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := udp.Read(buf); err != nil || string(buf[:n]) != "udp "+marker {
		t.Fatalf("datagram on b: %q, %v", buf[:n], err)
	}

	// TCP: 200 KiB from a to b in many writes, more than one segment and one offloaded packet.
	var ln net.Listener
	if err := b.Run(func() (err error) {
		ln, err = net.Listen("tcp4", net.JoinHostPort(b.IP, "0"))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	tcpDst := ln.Addr().(*net.TCPAddr).AddrPort()
	sent := bytes.Repeat([]byte("tcp "+marker+" "), 200<<10/24)
	got := make(chan []byte, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			got <- nil
			return
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
		data, _ := io.ReadAll(conn)
		got <- data
	}()
	if err := a.Run(func() error {
		conn, err := net.DialTimeout("tcp4", tcpDst.String(), 5*time.Second)
		if err != nil {
			return err
		}
		defer conn.Close()
		for rest := sent; len(rest) > 0; {
			n := min(len(rest), 1000)
			if _, err := conn.Write(rest[:n]); err != nil {
				return err
			}
			rest = rest[n:]
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if data := <-got; !bytes.Equal(data, sent) {
		t.Fatalf("b received %d bytes, want the %d sent", len(data), len(sent))
	}

	// Every frame crossed the bridge before b read it, but the capture's reader may not have
	// taken the last ones off its socket yet.
	testutil.WaitForEvery(t, waitPoll, 10*time.Second, "the capture to hold the whole stream", func() bool {
		s := TCPStreams(c.Segments(), netip.AddrPortFrom(netip.MustParseAddr(a.IP), 0), tcpDst)
		return len(s) == 1 && len(s[0].Data) == len(sent)
	})
	stopped = true
	if err := c.Stop(); err != nil {
		t.Fatalf("capture incomplete: %v", err)
	}

	segs := c.Segments()
	dgrams := UDPPayloads(segs, udpSrc, udpDst)
	if len(dgrams) != 1 || string(dgrams[0]) != "udp "+marker {
		t.Errorf("captured datagrams from %s to %s: %q; want the one sent", udpSrc, udpDst, dgrams)
	}
	streams := TCPStreams(segs, netip.AddrPortFrom(udpSrc.Addr(), 0), tcpDst)
	if len(streams) != 1 || streams[0].Gap || !bytes.Equal(streams[0].Data, sent) {
		for _, s := range streams {
			t.Logf("stream %s -> %s: %d bytes, gap %v", s.Src, s.Dst, len(s.Data), s.Gap)
		}
		t.Fatalf("captured %d streams from %s to %s; want one of the %d bytes sent", len(streams), a.IP, tcpDst, len(sent))
	}
	// Once each: every frame is taken at the port it came in by, so the datagram's frame
	// (which leaves by b's port too) is not counted twice.
	if n := c.Contains([]byte("udp " + marker)); n != 1 {
		t.Errorf("%d frames hold the datagram's payload, want 1", n)
	}
	for _, p := range c.Packets() {
		if !strings.HasPrefix(p.Port, "p") {
			t.Fatalf("a frame captured on %q, want a host's bridge port only", p.Port)
		}
	}
	// Stop is idempotent and keeps the frames.
	if err := c.Stop(); err != nil || len(c.Packets()) == 0 {
		t.Fatalf("second Stop: %v, %d frames", err, len(c.Packets()))
	}
}

// tcpFrame builds an Ethernet/IPv4/TCP frame for the parser tests.
func tcpFrame(src, dst netip.AddrPort, seq uint32, syn bool, payload []byte) []byte {
	f := make([]byte, 14+20+20, 14+20+20+len(payload))
	binary.BigEndian.PutUint16(f[12:], etherTypeIPv4)
	ip := f[14:]
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:], uint16(40+len(payload)))
	ip[9] = protoTCP
	s4, d4 := src.Addr().As4(), dst.Addr().As4()
	copy(ip[12:], s4[:])
	copy(ip[16:], d4[:])
	tcp := ip[20:]
	binary.BigEndian.PutUint16(tcp[0:], src.Port())
	binary.BigEndian.PutUint16(tcp[2:], dst.Port())
	binary.BigEndian.PutUint32(tcp[4:], seq)
	tcp[12] = 5 << 4
	if syn {
		tcp[13] = tcpFlagSYN
	}
	return append(f, payload...)
}

// Reassembly puts segments in order across the sequence number's wrap, drops retransmitted
// bytes, stops at a gap, and keeps two connections from one source port apart.
func TestTCPStreamsReassembly(t *testing.T) {
	src := netip.MustParseAddrPort("10.0.0.1:4000")
	dst := netip.MustParseAddrPort("10.0.0.2:80")
	var isn uint32 = 0xfffffffa // data starts 5 bytes before the wrap
	frames := [][]byte{
		tcpFrame(src, dst, isn, true, nil),
		tcpFrame(src, dst, isn+1+4, false, []byte("efgh")), // out of order, across the wrap
		tcpFrame(src, dst, isn+1, false, []byte("abcd")),
		tcpFrame(src, dst, isn+1+2, false, []byte("cdef")), // a retransmission overlapping both
		tcpFrame(src, dst, isn, true, nil),                 // a retransmitted SYN
		tcpFrame(src, dst, isn+1+8, false, []byte("ij")),
		// Another connection from the same port, with a gap.
		tcpFrame(src, dst, 100, true, nil),
		tcpFrame(src, dst, 101, false, []byte("xy")),
		tcpFrame(src, dst, 105, false, []byte("zz")),
		// Other traffic: to another port, and the reverse direction.
		tcpFrame(src, netip.MustParseAddrPort("10.0.0.2:81"), 1, false, []byte("no")),
		tcpFrame(dst, src, 1, false, []byte("no")),
	}
	var segs []Segment
	for _, f := range frames {
		s, ok := ParseSegment(f)
		if !ok {
			t.Fatalf("ParseSegment refused a well-formed frame %x", f)
		}
		segs = append(segs, s)
	}
	got := TCPStreams(segs, netip.AddrPortFrom(src.Addr(), 0), dst)
	if len(got) != 2 {
		t.Fatalf("%d streams, want 2: %+v", len(got), got)
	}
	if string(got[0].Data) != "abcdefghij" || got[0].Gap {
		t.Errorf("first stream %q (gap %v), want \"abcdefghij\"", got[0].Data, got[0].Gap)
	}
	if string(got[1].Data) != "xy" || !got[1].Gap {
		t.Errorf("second stream %q (gap %v), want \"xy\" and a gap", got[1].Data, got[1].Gap)
	}
	if n := len(TCPStreams(segs, netip.AddrPortFrom(src.Addr(), 4001), dst)); n != 0 {
		t.Errorf("%d streams from another source port, want 0", n)
	}
}

func TestParseSegmentRejects(t *testing.T) {
	src := netip.MustParseAddrPort("10.0.0.1:4000")
	dst := netip.MustParseAddrPort("10.0.0.2:80")
	good := tcpFrame(src, dst, 1, false, []byte("data"))
	mod := func(f func([]byte) []byte) []byte { return f(bytes.Clone(good)) }
	tests := map[string][]byte{
		"empty":          nil,
		"short":          good[:30],
		"not IPv4":       mod(func(b []byte) []byte { b[12] = 0x86; b[13] = 0xdd; return b }),
		"IP version 6":   mod(func(b []byte) []byte { b[14] = 0x65; return b }),
		"header too big": mod(func(b []byte) []byte { b[14] = 0x4f; return b[:40] }),
		"later fragment": mod(func(b []byte) []byte { b[14+7] = 1; return b }),
		"ICMP":           mod(func(b []byte) []byte { b[14+9] = 1; return b }),
		"TCP truncated":  good[:14+20+10],
		"TCP offset big": mod(func(b []byte) []byte { b[14+20+12] = 0xf0; return b }),
	}
	for name, f := range tests {
		t.Run(name, func(t *testing.T) {
			if s, ok := ParseSegment(f); ok {
				t.Fatalf("ParseSegment accepted it: %+v", s)
			}
		})
	}
	if s, ok := ParseSegment(good); !ok || s.Src != src || s.Dst != dst || string(s.Payload) != "data" {
		t.Fatalf("ParseSegment(good) = %+v, %v", s, ok)
	}
}

// FuzzParseSegment: captured frames are network input; the parser must never read past them.
func FuzzParseSegment(f *testing.F) {
	src := netip.MustParseAddrPort("10.0.0.1:4000")
	dst := netip.MustParseAddrPort("10.0.0.2:80")
	f.Add(tcpFrame(src, dst, 1, true, nil))
	f.Add(tcpFrame(src, dst, 7, false, []byte("payload")))
	udp := tcpFrame(src, dst, 0, false, []byte("payload"))
	udp[14+9] = protoUDP
	f.Add(udp)
	f.Fuzz(func(t *testing.T, frame []byte) {
		s, ok := ParseSegment(frame)
		if !ok {
			return
		}
		if s.Proto != "tcp" && s.Proto != "udp" {
			t.Fatalf("proto %q", s.Proto)
		}
		if len(s.Payload) > len(frame) {
			t.Fatalf("payload of %d bytes from a frame of %d", len(s.Payload), len(frame))
		}
		_ = TCPStreams([]Segment{s}, s.Src, s.Dst)
	})
}
