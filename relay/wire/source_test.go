package wire

import (
	"net"
	"net/netip"
	"sync"
	"testing"
)

// The handler is given the address the connection comes from, whatever peer id the client
// claims: two clients with different ids on loopback both arrive from 127.0.0.1.
func TestHandlerGetsSourceAddr(t *testing.T) {
	var mu sync.Mutex
	got := map[string]netip.Addr{}
	srv := tpNew(t, "srv", handlerFunc(func(from string, src netip.Addr, _ []byte, respond func([]byte, error)) {
		mu.Lock()
		got[from] = src
		mu.Unlock()
		respond(nil, nil)
	}), nil)
	for _, id := range []string{"client-1", "client-2"} {
		if _, err := tpNew(t, id, nil, nil).Request(tpCtx(t), tid("srv"), srv.Addr(), []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	want := netip.MustParseAddr("127.0.0.1")
	for _, id := range []string{"client-1", "client-2"} {
		if got[tid(id)] != want {
			t.Errorf("%s's requests came from %v, want %v", id, got[id], want)
		}
	}
}

func TestSourceAddr(t *testing.T) {
	tests := map[string]struct {
		addr net.Addr
		want netip.Addr
	}{
		"ipv4":         {&net.TCPAddr{IP: net.IPv4(192, 0, 2, 7), Port: 1}, netip.MustParseAddr("192.0.2.7")},
		"ipv4-mapped":  {&net.TCPAddr{IP: net.ParseIP("::ffff:192.0.2.7").To16(), Port: 1}, netip.MustParseAddr("192.0.2.7")},
		"ipv6":         {&net.TCPAddr{IP: net.ParseIP("2001:db8::1"), Port: 1}, netip.MustParseAddr("2001:db8::1")},
		"udp":          {&net.UDPAddr{IP: net.IPv4(10, 0, 0, 1), Port: 1}, netip.MustParseAddr("10.0.0.1")},
		"nil":          {nil, netip.Addr{}},
		"nil tcp addr": {(*net.TCPAddr)(nil), netip.Addr{}},
		"not ip":       {&net.UnixAddr{Name: "/tmp/x", Net: "unix"}, netip.Addr{}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := SourceAddr(tc.addr); got != tc.want {
				t.Fatalf("SourceAddr(%v) = %v, want %v", tc.addr, got, tc.want)
			}
		})
	}
}

// handlerFunc adapts a function with the source address to Handler.
type handlerFunc func(from string, src netip.Addr, body []byte, respond func([]byte, error))

func (f handlerFunc) HandleRequest(from string, src netip.Addr, body []byte, respond func([]byte, error)) {
	f(from, src, body, respond)
}
