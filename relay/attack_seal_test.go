package relay

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/paf-mesh/paf-mesh/internal/keys"
	"github.com/paf-mesh/paf-mesh/internal/testutil"
)

// Security II: a message stored for a name that is offline is sealed to the identity that
// held it (SPEC section 7). Holders keep ciphertext (the marker is in none of their files);
// an insider that takes the free name with another identity is not handed it, is told that
// it is kept for the previous holder, and cannot read it; the name's own identity, back in a
// new session, gets it exactly once. Before, holders kept the body in clear and handed it to
// whoever held the name next.
func TestAttackEvilHolderCannotReadSealedMessage(t *testing.T) {
	const marker = "sealed-marker-4c1d"
	ns := startHolders(t, []string{"a", "", ""})
	bobKey := keys.NewIdentity()
	bob := recipientAs(t, ns, bobKey, "bob")
	testutil.WaitFor(t, 10*time.Second, "the sender to learn bob's sealing card", func() bool {
		c, ok := ns[0].relay.seals.lookup("bob")
		return ok && c.Fingerprint == bobKey.Fingerprint()
	})
	bob.close()
	testutil.WaitFor(t, 10*time.Second, "bob to be offline", func() bool {
		r, _ := ns[0].peer.Resolve("bob")
		return !r.Online
	})

	res, err := ns[0].relay.Send(ctx, Outgoing{From: "a", To: "bob", Body: marker})
	if err != nil || res.Status != StatusStored || res.Holders != 3 {
		t.Fatalf("send: %+v %v", res, err)
	}
	if res.Reason != "" {
		t.Fatalf("a message for a name seen before was stored with reason %q", res.Reason)
	}
	for i, n := range ns {
		recs, err := n.relay.held.List("bob")
		if err != nil || len(recs) != 1 {
			t.Fatalf("holder %d: %d records, %v", i, len(recs), err)
		}
		if m := recs[0].Msg; m.SealedTo != bobKey.Fingerprint() || m.Body != "" || strings.Contains(string(m.Sealed), marker) {
			t.Fatalf("holder %d keeps %+v, want it sealed to %s", i, m, bobKey.Fingerprint())
		}
		raw, err := os.ReadFile(filepath.Join(n.relay.cfg.HolderDir, "held.db"))
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(raw, []byte(marker)) {
			t.Fatalf("holder %d's held.db contains the body in clear", i)
		}
	}

	// Mallory, another identity, takes the free name: she is told, not handed, and her
	// Collect does not wait for messages that are not hers.
	mallory := recipient(t, ns, "bob")
	c, cancel := contextWithTimeout(10 * time.Second)
	defer cancel()
	if err := mallory.relay.Collect(c, "bob"); err != nil {
		t.Fatalf("mallory's Collect waits for messages sealed to another identity: %v", err)
	}
	var notice Message
	testutil.WaitFor(t, 10*time.Second, "mallory to be told a message is kept for the previous holder", func() bool {
		msgs, _ := mallory.relay.Check("bob")
		for _, m := range msgs {
			if strings.Contains(m.Body, marker) {
				t.Fatalf("mallory was handed bob's sealed message: %+v", m)
			}
			if m.Kind == KindSystem {
				notice = m
			}
		}
		return notice.ID != ""
	})
	if !strings.Contains(notice.Body, "kept for a previous holder") || !strings.Contains(notice.Body, bobKey.Fingerprint()) {
		t.Fatalf("notice: %q", notice.Body)
	}
	// Still held (copies may have moved when mallory joined the holders: she may keep one,
	// sealed, which she cannot open).
	copies := 0
	for _, n := range append(slices.Clone(ns), mallory) {
		recs, err := n.relay.held.List("bob")
		if err != nil {
			t.Fatal(err)
		}
		for _, rec := range recs {
			if rec.Msg.SealedTo != bobKey.Fingerprint() {
				t.Fatalf("a copy not sealed to bob: %+v", rec.Msg)
			}
		}
		copies += len(recs)
	}
	if copies == 0 {
		t.Fatal("bob's message was dropped while mallory held the name")
	}
	mallory.close()

	// Bob's identity, in a new session: the message is his, once.
	testutil.WaitFor(t, 10*time.Second, "the name to be free", func() bool {
		r, _ := ns[0].peer.Resolve("bob")
		return !r.Online
	})
	back := recipientAs(t, ns, bobKey, "bob")
	c2, cancel2 := contextWithTimeout(15 * time.Second)
	defer cancel2()
	if err := back.relay.Collect(c2, "bob"); err != nil {
		t.Fatal(err)
	}
	msgs, _ := back.relay.Check("bob")
	if len(msgs) != 1 || msgs[0].Body != marker || msgs[0].From != "a" || msgs[0].SealedTo != "" {
		t.Fatalf("bob got %+v", msgs)
	}
	testutil.WaitFor(t, 10*time.Second, "every holder to drop the message on bob's acknowledgement", func() bool {
		for _, n := range ns {
			if n.relay.HeldCount("bob") != 0 {
				return false
			}
		}
		return true
	})
}

// A message for a name no peer has seen cannot be sealed: it is stored signed but readable,
// and the sender is told so.
func TestStoreForUnseenNameSaysNotSealed(t *testing.T) {
	ns := startHolders(t, []string{"a", ""})
	res, err := ns[0].relay.Send(ctx, Outgoing{From: "a", To: "zed", Body: "hello zed"})
	if err != nil || res.Status != StatusStored {
		t.Fatalf("send: %+v %v", res, err)
	}
	if !strings.HasPrefix(res.Reason, "not sealed") {
		t.Fatalf("reason %q, want it to say the message is not sealed", res.Reason)
	}
	recs, err := ns[1].relay.held.List("zed")
	if err != nil || len(recs) != 1 || recs[0].Msg.SealedTo != "" || recs[0].Msg.Body != "hello zed" {
		t.Fatalf("held %+v %v", recs, err)
	}
}

// The book of sealing cards is shared by a user's peers through the state dir, and outlives
// them: a peer started after the name's holder left still seals to it.
func TestSealBookSharedAndPersisted(t *testing.T) {
	root := t.TempDir()
	ns := startHolders(t, []string{"a", ""})
	bobKey := keys.NewIdentity()
	bob := recipientAs(t, ns, bobKey, "bob")
	first := startNode(t, root, holder(filepath.Join(t.TempDir(), "slot")))
	if _, err := first.peer.Join(ns[0].peer.Addr()); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 10*time.Second, "the first peer to record bob's card", func() bool {
		_, err := os.Stat(filepath.Join(root, sealFile))
		c, ok := first.relay.seals.lookup("bob")
		return err == nil && ok && c.Fingerprint == bobKey.Fingerprint()
	})
	first.close()
	bob.close()
	later := startNode(t, root)
	if c, ok := later.relay.seals.lookup("bob"); !ok || c.Fingerprint != bobKey.Fingerprint() {
		t.Fatalf("a later peer of the same state dir does not know bob's card: %v %v", c, ok)
	}
}

// A sealed message that expires undelivered is reported to its sender as sealed, with no
// quotation of a body the holder cannot read.
func TestSealedExpiryNotice(t *testing.T) {
	ns := startHolders(t, []string{"a", ""}, func(c *Config) {
		c.StoreTTL = 300 * time.Millisecond
		c.ExpiryInterval = 50 * time.Millisecond
	})
	bobKey := keys.NewIdentity()
	bob := recipientAs(t, ns, bobKey, "bob")
	testutil.WaitFor(t, 10*time.Second, "the sender to learn bob's card", func() bool {
		_, ok := ns[0].relay.seals.lookup("bob")
		return ok
	})
	bob.close()
	testutil.WaitFor(t, 10*time.Second, "bob to be offline", func() bool {
		r, _ := ns[0].peer.Resolve("bob")
		return !r.Online
	})
	res, err := ns[0].relay.Send(ctx, Outgoing{From: "a", To: "bob", Body: "sealed-expiry-marker"})
	if err != nil || res.Status != StatusStored || res.Reason != "" {
		t.Fatalf("send: %+v %v", res, err)
	}
	var notice Message
	testutil.WaitFor(t, 10*time.Second, "the sender to be told of the expiry", func() bool {
		msgs, _ := ns[0].relay.Check("a")
		for _, m := range msgs {
			if m.Kind == KindSystem && strings.Contains(m.Body, "expired") {
				notice = m
			}
		}
		return notice.ID != ""
	})
	if !strings.Contains(notice.Body, "sealed to its recipient") || strings.Contains(notice.Body, `""`) {
		t.Fatalf("notice %q: want it to say the message is sealed", notice.Body)
	}
}
