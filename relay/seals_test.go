package relay

import (
	"encoding/base64"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/paf-mesh/paf-mesh/internal/keys"
	"github.com/paf-mesh/paf-mesh/internal/testutil"
	"github.com/paf-mesh/paf-mesh/mesh"
)

// holding is a live member that holds name with a new identity, announcing its card.
func holding(name string) (mesh.Member, *keys.Identity) {
	id := keys.NewIdentity()
	m := mesh.Meta{Name: name}
	m.SetTag(TagCard, base64.RawStdEncoding.EncodeToString(id.Card()))
	return mesh.Member{ID: id.NewPeerID(), State: mesh.MemberAlive, Meta: m}, id
}

// onDisk is the fingerprint the book's file records for name, "" for none.
func onDisk(t *testing.T, root, name string) string {
	t.Helper()
	disk, err := readSeals(filepath.Join(root, sealFile))
	if err != nil {
		t.Fatal(err)
	}
	e, ok := disk[name]
	if !ok {
		return ""
	}
	c, err := keys.ParseCard([]byte(e.Card))
	if err != nil {
		t.Fatal(err)
	}
	return c.Fingerprint
}

// Sightings are written at most every sealSaveEvery (issue 18), but none is lost: the first
// is written at once, a later one by a later round (holdLoop observes every round) or by
// flush (Relay.Close).
func TestSealBookWritesHeldBackSightings(t *testing.T) {
	for name, finish := range map[string]func(t *testing.T, b *sealBook, members []mesh.Member){
		"by a later round": func(t *testing.T, b *sealBook, members []mesh.Member) {
			testutil.WaitFor(t, 10*time.Second, "a later round to write the held-back sighting", func() bool {
				b.observe(members)
				b.mu.Lock()
				defer b.mu.Unlock()
				return !b.dirty
			})
		},
		"by flush": func(_ *testing.T, b *sealBook, _ []mesh.Member) { b.flush() },
	} {
		t.Run(name, func(t *testing.T) {
			root := t.TempDir()
			b := newSealBook(root, time.Hour, time.Now, slog.New(slog.DiscardHandler))
			alice, aliceID := holding("alice")
			b.observe([]mesh.Member{alice})
			if got := onDisk(t, root, "alice"); got != aliceID.Fingerprint() {
				t.Fatalf("the first sighting is not written at once: %q on disk", got)
			}
			bob, bobID := holding("bob")
			members := []mesh.Member{alice, bob}
			b.observe(members)
			if c, ok := b.lookup("bob"); !ok || c.Fingerprint != bobID.Fingerprint() {
				t.Fatalf("bob's card is not in the book at once: %v %v", c, ok)
			}
			finish(t, b, members)
			if got := onDisk(t, root, "bob"); got != bobID.Fingerprint() {
				t.Fatalf("bob's sighting is not on disk: %q", got)
			}
			if got := onDisk(t, root, "alice"); got != aliceID.Fingerprint() {
				t.Fatalf("alice's sighting is gone from disk: %q", got)
			}
		})
	}
}

// A relay's Close writes what its book has not written yet: a peer started later on the same
// state dir knows the card.
func TestSealBookWrittenOnClose(t *testing.T) {
	root := t.TempDir()
	n := startNode(t, root)
	n.relay.seals.observe([]mesh.Member{func() mesh.Member { m, _ := holding("alice"); return m }()})
	carol, carolID := holding("carol")
	n.relay.seals.observe([]mesh.Member{carol})
	n.close()
	if got := onDisk(t, root, "carol"); got != carolID.Fingerprint() {
		t.Fatalf("carol's sighting is not on disk after Close: %q", got)
	}
}

// A running relay writes a sighting its book held back without any event, Close or message
// held: holdLoop, which otherwise sleeps ExpiryInterval (a minute) while it holds nothing,
// comes back after sealSaveEvery for it.
func TestSealBookHeldBackWrittenByHoldLoop(t *testing.T) {
	root := t.TempDir()
	n := startNode(t, root, holder(filepath.Join(root, "slot"))) // a holder runs holdLoop
	alice, _ := holding("alice")
	n.relay.seals.observe([]mesh.Member{alice}) // written at once
	carol, carolID := holding("carol")
	n.relay.seals.observe([]mesh.Member{carol}) // held back: the last write was just now
	n.relay.kickHolding()                       // a round now, too soon to write it
	testutil.WaitFor(t, 20*time.Second, "holdLoop to write the held-back sighting", func() bool {
		return onDisk(t, root, "carol") == carolID.Fingerprint()
	})
}
