package relay

import (
	"net"
	"sync"
	"testing"
	"time"
)

// Security I, attack 4, as a user meets it: 320 idle connections from one host hold
// bob's relay listener while alice sends. Before the per-source limits (oldest dropped
// first), 256 idle connections filled the only cap and alice's message could not be
// delivered (it fell back to being stored); now her send reports delivered.
func TestAttackRelayFloodSendStillDelivered(t *testing.T) {
	ns := meshOf(t, "alice", "bob")
	alice, bob := ns[0], ns[1]
	route, err := alice.peer.Resolve("bob")
	if err != nil || !route.Online {
		t.Fatalf("resolve bob: %+v %v", route, err)
	}
	target := MetaAddr(route.Owner.Meta)

	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}, Timeout: 5 * time.Second}
	const flood = 320
	for range flood {
		c, err := d.Dial("tcp", target)
		if err != nil {
			t.Fatalf("flood dial: %v", err)
		}
		mu.Lock()
		conns = append(conns, c)
		mu.Unlock()
	}
	// Alice's relay connection to bob is new (nothing was sent yet): it must get through
	// the flood's connections to be served.
	res, err := alice.relay.Send(ctx, Outgoing{From: "alice", To: "bob", Body: "through the flood"})
	if err != nil {
		t.Fatalf("send during the flood: %v", err)
	}
	if res.Status != "delivered" {
		t.Fatalf("send during the flood: %+v, want delivered", res)
	}
	msgs, err := bob.relay.Check("bob")
	if err != nil || len(msgs) != 1 || msgs[0].Body != "through the flood" {
		t.Fatalf("bob's inbox: %+v %v", msgs, err)
	}
	st := bob.relay.TransportStats()
	t.Logf("bob's transport after the flood: %+v", st)
}
