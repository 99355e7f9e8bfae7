package mesh

import (
	"io"
	"log"
	"net"
	"strconv"
	"testing"
	"time"
)

func newTestTransport(t *testing.T) *netTransport {
	t.Helper()
	nt, err := newNetTransport("127.0.0.1", 0, log.New(io.Discard, "", 0))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = nt.Shutdown() })
	return nt
}

// Each packet reaches memberlist whole, in a buffer of its own (memberlist keeps slices of
// it), of about its size rather than the 64 KiB NetTransport hands over.
func TestTransportPacketsOwnTheirBuffers(t *testing.T) {
	nt := newTestTransport(t)
	self := net.JoinHostPort("127.0.0.1", strconv.Itoa(nt.port()))
	big := make([]byte, maxPacket-100) // near the largest UDP payload over IPv4 (65,507 bytes)
	for i := range big {
		big[i] = byte(i)
	}
	sent := [][]byte{[]byte("first"), []byte("second"), big}
	for _, b := range sent {
		if _, err := nt.WriteTo(b, self); err != nil {
			t.Fatal(err)
		}
	}
	var got [][]byte
	for range sent {
		select {
		case p := <-nt.PacketCh():
			if p.From == nil || p.Timestamp.IsZero() {
				t.Fatalf("packet without its source or time: %+v", p)
			}
			got = append(got, p.Buf)
		case <-time.After(10 * time.Second):
			t.Fatalf("received %d of %d packets", len(got), len(sent))
		}
	}
	for i, b := range got {
		if string(b) != string(sent[i]) {
			t.Fatalf("packet %d is %.20q (%d bytes), want %.20q (%d bytes): a later read overwrote it, or it was cut", i, b, len(b), sent[i], len(sent[i]))
		}
	}
	if c := cap(got[0]); c >= 1024 {
		t.Fatalf("a 5-byte packet came in a buffer of %d bytes", c)
	}
}

func TestTransportFinalAdvertiseAddr(t *testing.T) {
	nt := newTestTransport(t)
	tests := map[string]struct {
		ip       string
		port     int
		wantIP   string
		wantPort int
		wantErr  bool
	}{
		"given":                   {"10.1.2.3", 7946, "10.1.2.3", 7946, false},
		"given, IPv4 in IPv6":     {"::ffff:10.1.2.3", 7946, "10.1.2.3", 7946, false},
		"given, IPv6":             {"fd00::1", 7946, "fd00::1", 7946, false},
		"not given: the bound IP": {"", 0, "127.0.0.1", nt.port(), false},
		"unparsable":              {"not-an-ip", 1, "", 0, true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			ip, port, err := nt.FinalAdvertiseAddr(tc.ip, tc.port)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("got %v:%d, want an error", ip, port)
				}
				return
			}
			if err != nil || !ip.Equal(net.ParseIP(tc.wantIP)) || port != tc.wantPort {
				t.Fatalf("got %v:%d %v, want %s:%d", ip, port, err, tc.wantIP, tc.wantPort)
			}
			if tc.wantIP != "" && net.ParseIP(tc.wantIP).To4() != nil && len(ip) != net.IPv4len {
				t.Fatalf("an IPv4 address of %d bytes", len(ip))
			}
		})
	}
}

// Shutdown may be called more than once, stops the goroutines (goleak, TestMain) and closes
// the listeners: the port can be bound again.
func TestTransportShutdown(t *testing.T) {
	nt, err := newNetTransport("127.0.0.1", 0, log.New(io.Discard, "", 0))
	if err != nil {
		t.Fatal(err)
	}
	port := nt.port()
	// A stream that memberlist never takes must not hold Shutdown.
	c, err := net.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := nt.Shutdown(); err != nil {
		t.Fatal(err)
	}
	if err := nt.Shutdown(); err != nil {
		t.Fatal(err)
	}
	again, err := newNetTransport("127.0.0.1", port, log.New(io.Discard, "", 0))
	if err != nil {
		t.Fatalf("the port is still taken after Shutdown: %v", err)
	}
	_ = again.Shutdown()
}
