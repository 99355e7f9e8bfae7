package node

import (
	"io"
	"log/slog"
	"net/netip"
	"testing"

	"github.com/paf-mesh/paf-mesh/internal/keys"
	"github.com/paf-mesh/paf-mesh/relay"
)

func slogTo(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }

func mustAddrPort(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

func testKeys(t *testing.T) *keys.Keys {
	k, err := keys.FromSecret([]byte("a test secret that is long enough for the mesh ok"))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func relayOutgoing(from, to, body string) relay.Outgoing {
	return relay.Outgoing{From: from, To: to, Body: body}
}
