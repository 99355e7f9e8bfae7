package node

import (
	"context"
	"net"
	"net/netip"
	"testing"
)

// A fixed bind port (PAF_BIND) applies to the long-lived peers only: a brief peer (a
// shell command acting as a name) binds another port, so the long-lived peer's restart
// on its port is never refused as "address already in use" (issue 17 item 4).
func TestBriefPeerLeavesTheFixedPort(t *testing.T) {
	m := newTestMesh(t)
	// A free port to fix.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	fixed := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(port))

	// No long-lived peer runs: the command acts as bob through a brief peer of its own,
	// with the same settings (PAF_BIND) as the long-lived peer would have.
	cfg := m.config("cli")
	cfg.Bind = fixed
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	a, err := ActAs(ctx, cfg, "bob")
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if !a.Brief() {
		t.Fatal("want a brief peer")
	}
	if got := a.n.Addr(); got == fixed.String() {
		t.Fatalf("the brief peer took the fixed port %s", got)
	}
	// While the brief peer runs, the long-lived peer starts on the fixed port.
	n := m.start("serve", "", func(c *Config) { c.Bind = fixed })
	if n.Addr() != fixed.String() {
		t.Fatalf("the long-lived peer is at %s, want %s", n.Addr(), fixed)
	}
}
