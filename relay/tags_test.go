package relay

import (
	"strings"
	"testing"

	"github.com/paf-mesh/paf-mesh/mesh"
	"github.com/paf-mesh/paf-mesh/mesh/meshtest"
)

// The relay's tags read back as set; zero counts and an empty address are
// no tags at all (nothing gossiped for a peer that holds nothing); a
// malformed count from another peer reads as zero.
func TestMetaTags(t *testing.T) {
	var m mesh.Meta
	SetMetaAddr(&m, "127.0.0.1:4242")
	SetMetaHeld(&m, 12, 3)
	if got := MetaAddr(m); got != "127.0.0.1:4242" {
		t.Errorf("MetaAddr = %q", got)
	}
	if msgs, names := MetaHeld(m); msgs != 12 || names != 3 {
		t.Errorf("MetaHeld = %d, %d; want 12, 3", msgs, names)
	}
	SetMetaHeld(&m, 0, 0)
	SetMetaAddr(&m, "")
	if len(m.Tags) != 0 {
		t.Errorf("tags left after clearing: %v", m.Tags)
	}
	for _, bad := range []string{"x", "-4", "1e3"} {
		m.SetTag(TagHeld, bad)
		if msgs, _ := MetaHeld(m); msgs != 0 {
			t.Errorf("held tag %q read as %d, want 0", bad, msgs)
		}
	}
}

// The sealing card takes 171 bytes of the 512 memberlist gives a peer's metadata: with the
// longest name, an IPv6 relay address, large held counts, the MCP server's activity tag and a
// long version string, the metadata still fits (free text is shortened first), and other peers
// read the card back.
func TestAnnouncedMetaFitsWithCard(t *testing.T) {
	mc := meshtest.Config(t)
	mc.Meta.Version = "v1.23.456-0.20261206170000-abcdef123456+dirty"
	mc.Meta.Host = strings.Repeat("h", 200)
	p, err := mesh.New(mc)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	cfg := DefaultConfig()
	cfg.Dir, cfg.Key, cfg.StateRoot, cfg.Logger = p, relayKey, t.TempDir(), mc.Logger
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	name := "a" + strings.Repeat("b", 63)
	if err := p.Claim(ctx, name); err != nil {
		t.Fatal(err)
	}
	err = p.SetMeta(ctx, func(m *mesh.Meta) {
		r.Announce(m, "[fd00:1234:5678:9abc:def0:1234:5678:9abc]:65535")
		SetMetaHeld(m, 1_000_000, 10_000)
		m.SetTag("l", "2")
		m.SetTag("d", strings.Repeat("description ", 40))
		m.MayShorten("d")
	})
	if err != nil {
		t.Fatalf("the relay's tags with the card do not fit: %v", err)
	}
	self, _ := p.Member(p.ID())
	if c, ok := cardOf(self); !ok || c.Fingerprint != r.cfg.Identity.Fingerprint() {
		t.Fatalf("the announced card does not read back: %v %v", c, ok)
	}
}
