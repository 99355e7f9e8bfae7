package relay

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"testing"

	"github.com/oklog/ulid/v2"

	"github.com/paf-mesh/paf-mesh/internal/keys"
	"github.com/paf-mesh/paf-mesh/relay/wire"
)

// A handover of more ids than one drop list can count (uint16) is told in several lists,
// which together name every id once, each with its signature.
func TestDropListsSplitAtTheCountLimit(t *testing.T) {
	bob := keys.NewIdentity()
	for _, n := range []int{1, maxDropIDs, maxDropIDs + 1, 2*maxDropIDs + 3} {
		acks := make([]handoverAck, n)
		for i := range acks {
			acks[i] = handoverAck{id: ulid.Make().String(), sig: bytes.Repeat([]byte{byte(i)}, ed25519.SignatureSize)}
		}
		acks[0].sig = bob.Sign(ackDomain, []byte(acks[0].id))
		lists := dropLists("bob", bob.Public(), acks)
		if want := (n + maxDropIDs - 1) / maxDropIDs; len(lists) != want {
			t.Fatalf("%d ids: %d lists, want %d", n, len(lists), want)
		}
		var got []handoverAck
		for _, l := range lists {
			name, pub, part, err := decodeDropList(l)
			if err != nil || name != "bob" || !pub.Equal(bob.Public()) {
				t.Fatalf("%d ids: decode: %q %v", n, name, err)
			}
			got = append(got, part...)
		}
		if len(got) != n || got[0].id != acks[0].id || got[n-1].id != acks[n-1].id || !bytes.Equal(got[n-1].sig, acks[n-1].sig) {
			t.Fatalf("%d ids: lists name %d", n, len(got))
		}
		if !keys.Verify(bob.Public(), ackDomain, []byte(got[0].id), got[0].sig) {
			t.Fatal("a signature did not survive the list")
		}
	}
}

func FuzzDecodeDropList(f *testing.F) {
	bob := keys.NewIdentity()
	id := ulid.Make().String()
	f.Add(dropLists("bob", bob.Public(), []handoverAck{{id: id, sig: bob.Sign(ackDomain, []byte(id))}})[0])
	f.Add(dropLists("bob", bob.Public(), nil)[0])
	f.Add([]byte{wire.MessageVersion, wire.ReqDrop, 0, 3, 'B', 'O', 'B'})
	f.Add(appendNameList(nil, wire.ReqDrop, "bob", []string{id})) // the old, unsigned shape
	f.Fuzz(func(t *testing.T, b []byte) {
		name, pub, acks, err := decodeDropList(b)
		if err != nil {
			if !errors.Is(err, wire.ErrBadMessage) {
				t.Fatalf("error not marked as bad: %v", err)
			}
			return
		}
		for _, a := range acks {
			if wire.ValidID(a.id) != nil || len(a.sig) != ed25519.SignatureSize {
				t.Fatalf("accepted ack %+v", a)
			}
		}
		if !bytes.Equal(dropLists(name, pub, acks)[0], b) {
			t.Fatalf("re-encoding differs")
		}
	})
}
