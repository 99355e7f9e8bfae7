package relay

import (
	"testing"
	"time"

	"github.com/paf-mesh/paf-mesh/internal/testutil"
	"github.com/paf-mesh/paf-mesh/relay/wire"
)

// Security II: an insider (a holder of the mesh secret, with an identity of its own) cannot
// make holders drop a stored message. Before signed acknowledgements, any peer could send
// every holder a drop list of any ids, and the message was gone while its sender had been
// told "held by 3 peers".
func TestAttackDropListCannotDeleteStoredMessages(t *testing.T) {
	ns := startHolders(t, []string{"a", "", ""})
	res, err := ns[0].relay.Send(ctx, Outgoing{From: "a", To: "bob", Body: "for bob's eyes"})
	if err != nil || res.Status != "stored" || res.Holders != 3 {
		t.Fatalf("send: %+v %v", res, err)
	}
	evil := evilClient(t, "mallory")
	ack := func(id string) handoverAck {
		return handoverAck{id: id, sig: evil.Identity().Sign(ackDomain, []byte(id))}
	}
	forged := dropLists("bob", evil.Identity().Public(), []handoverAck{ack(res.ID)})[0]
	refusedBefore := make([]uint64, len(ns))
	for i, n := range ns {
		refusedBefore[i] = n.relay.Stats().Refused
		// Bob is bound to no identity now: the list proves nothing, and is not obeyed.
		if _, err := evil.Request(ctx, n.peer.ID(), n.relay.Addr(), forged); err != nil {
			t.Fatalf("drop list to holder %d: %v", i, err)
		}
		if n.relay.HeldCount("bob") != 1 {
			t.Fatalf("holder %d dropped bob's message on a drop list signed by %v", i, evil.Identity())
		}
	}
	// The real bob comes: the message is handed over once, and dropped everywhere on his word.
	bob := recipient(t, ns, "bob")
	c, cancel := contextWithTimeout(10 * time.Second)
	defer cancel()
	if err := bob.relay.Collect(c, "bob"); err != nil {
		t.Fatal(err)
	}
	msgs, _ := bob.relay.Check("bob")
	if len(msgs) != 1 || msgs[0].Body != "for bob's eyes" {
		t.Fatalf("bob got %+v", msgs)
	}
	testutil.WaitFor(t, 10*time.Second, "every holder to drop its copy on bob's acknowledgement", func() bool {
		for _, n := range ns {
			if n.relay.HeldCount("bob") != 0 {
				return false
			}
		}
		return true
	})
	// Now bob's name is bound to bob's identity: a list signed by another is refused, and
	// counted.
	res2, err := ns[0].relay.Send(ctx, Outgoing{From: "a", To: "bob", Body: "second"})
	if err != nil || res2.Status != "delivered" {
		t.Fatalf("second send: %+v %v", res2, err)
	}
	forged = dropLists("bob", evil.Identity().Public(), []handoverAck{ack(res2.ID)})[0]
	_, err = evil.Request(ctx, ns[1].peer.ID(), ns[1].relay.Addr(), forged)
	if wire.CodeOf(err) != wire.CodeUnknownSender {
		t.Fatalf("drop list from another identity while bob holds the name: %v, want CodeUnknownSender", err)
	}
	if ns[1].relay.Stats().Refused <= refusedBefore[1] {
		t.Fatal("the forged drop list was not counted")
	}
	// An acknowledgement that does not verify (bob's key, mallory's signature) is refused too.
	bad := dropLists("bob", bob.peer.Identity().Public(), []handoverAck{ack(res2.ID)})[0]
	if _, err := evil.Request(ctx, ns[2].peer.ID(), ns[2].relay.Addr(), bad); wire.CodeOf(err) != wire.CodeMalformed {
		t.Fatalf("drop list with bob's key and a bad signature: %v, want CodeMalformed", err)
	}
}
