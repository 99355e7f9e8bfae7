package relay

import (
	"testing"

	"github.com/paf-mesh/paf-mesh/mesh"
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
