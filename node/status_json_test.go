package node

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/paf-mesh/paf-mesh/internal/keys"
	"github.com/paf-mesh/paf-mesh/mcpserver"
	"github.com/paf-mesh/paf-mesh/mesh"
	"github.com/paf-mesh/paf-mesh/relay"
)

// A peer's `status --json` entry (SPEC section 6) is what it was when relay
// and MCP fields were fields of mesh.Meta: the tags fill the same fields. The identity is the
// fingerprint the peer's id is bound to.
func TestStatusPeerJSONFromTags(t *testing.T) {
	ident := keys.NewIdentity()
	id := ident.NewPeerID()
	m := mesh.Member{ID: id, Addr: "127.0.0.1:7946", State: mesh.MemberAlive, Since: time.Unix(1_800_000_000, 0),
		Meta: mesh.Meta{Name: "expert", Host: "box", Secure: true, Version: "1.2.3"}}
	mcpserver.SetMetaDescription(&m.Meta, "billing expert")
	mcpserver.SetMetaPresence(&m.Meta, mcpserver.ActivityListening, "")
	relay.SetMetaAddr(&m.Meta, "127.0.0.1:9000")
	relay.SetMetaHeld(&m.Meta, 5, 2)
	b, err := json.Marshal(toStatusPeer(m))
	if err != nil {
		t.Fatal(err)
	}
	want := `{"id":"` + id + `","name":"expert","description":"billing expert","host":"box","addr":"127.0.0.1:7946","relay":"127.0.0.1:9000",` +
		`"state":"alive","listening":true,"activity":"listening","stored":5,"stored_names":2,"mode":"secure","version":"1.2.3","since":"2027-01-15T08:00:00Z",` +
		`"identity":"` + ident.Fingerprint() + `"}`
	if string(b) != want {
		t.Fatalf("status JSON:\n got %s\nwant %s", b, want)
	}
}

// What status says of another peer's clock (SPEC section 3): measured from its requests, or
// only known to refuse ours, or both.
func TestClockSkewText(t *testing.T) {
	for name, tc := range map[string]struct {
		pc   relay.PeerClock
		want string
	}{
		"in step":      {relay.PeerClock{Measured: true, Skew: 300 * time.Microsecond}, "in step"},
		"ms behind":    {relay.PeerClock{Measured: true, Skew: -40 * time.Millisecond}, "40ms behind"},
		"ahead":        {relay.PeerClock{Measured: true, Skew: 5*time.Minute + 200*time.Millisecond}, "5m0s ahead"},
		"outside":      {relay.PeerClock{Measured: true, Skew: 5 * time.Minute, Outside: true}, "5m0s ahead, outside the accepted window: requests refused"},
		"refused ours": {relay.PeerClock{Outside: true}, "outside the accepted window: requests refused"},
	} {
		if got := clockSkew(tc.pc); got != tc.want {
			t.Errorf("%s: %q, want %q", name, got, tc.want)
		}
	}
}
