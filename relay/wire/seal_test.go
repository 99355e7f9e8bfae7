package wire

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/paf-mesh/paf-mesh/internal/keys"
)

func sealedFixture(t *testing.T) (m, sealed *Message, alice, bob *keys.Identity) {
	t.Helper()
	alice, bob = keys.NewIdentity(), keys.NewIdentity()
	card, err := keys.ParseCard(bob.Card())
	if err != nil {
		t.Fatal(err)
	}
	m = &Message{ID: "01HZY0000000000000000000AB", From: "alice", To: "bob", Kind: KindMessage,
		Body: "secret-marker-7f3a", SentAt: time.UnixMilli(1700000000000), Intent: "plans"}
	sealed, err = SealMessage(m, card, alice)
	if err != nil {
		t.Fatal(err)
	}
	return m, sealed, alice, bob
}

// A sealed message crosses the wire and a holder's disk (JSON) as ciphertext: the body is in
// neither, the signature verifies as the author's over the sealed form, and only the
// recipient opens it.
func TestSealedMessageRoundTrip(t *testing.T) {
	m, sealed, alice, bob := sealedFixture(t)
	if m.Body != "secret-marker-7f3a" || m.SealedTo != "" {
		t.Fatal("SealMessage changed its argument")
	}
	for _, typ := range []byte{ReqStore, ReqDeliver} {
		b := AppendMessageAs(nil, typ, sealed, true)
		if bytes.Contains(b, []byte("secret-marker")) {
			t.Fatal("the body is in clear on the wire")
		}
		got, replica, err := DecodeMessageAs(b, typ, len(m.Body)) // the limit applies to the plaintext
		if err != nil || !replica {
			t.Fatalf("decode: %v (replica %v)", err, replica)
		}
		if got.SealedTo != bob.Fingerprint() || got.Body != "" {
			t.Fatalf("decoded sealed to %q with body %q", got.SealedTo, got.Body)
		}
		signer, err := VerifySignature(got, nil)
		if err != nil || signer != alice.Fingerprint() {
			t.Fatalf("signature: %s, %v", signer, err)
		}
		if err := OpenMessage(got, keys.NewIdentity()); !errors.Is(err, keys.ErrNotSealedToMe) {
			t.Fatalf("another identity opened it: %v", err)
		}
		if err := OpenMessage(got, bob); err != nil || got.Body != m.Body || got.SealedTo != "" {
			t.Fatalf("open: %v, body %q", err, got.Body)
		}
	}
	head, body := MessageParts(ReqStore, sealed, false)
	if !bytes.Equal(append(head, body...), AppendMessageAs(nil, ReqStore, sealed, false)) {
		t.Fatal("MessageParts differs from AppendMessageAs for a sealed message")
	}
}

// The seal cannot be moved: a body sealed for one message does not open as part of another,
// and a sealed message re-signed by someone else (to be shown as theirs) does not open.
func TestSealedBodyBoundToItsMessage(t *testing.T) {
	_, sealed, _, bob := sealedFixture(t)
	resigned := *sealed
	SignMessage(&resigned, keys.NewIdentity())
	if _, err := VerifySignature(&resigned, nil); err != nil {
		t.Fatal(err)
	}
	if err := OpenMessage(&resigned, bob); !errors.Is(err, keys.ErrNotSealedToMe) {
		t.Fatalf("a re-signed sealed body opened: %v", err)
	}
	moved := *sealed
	moved.ID = "01HZY0000000000000000000AC"
	if err := OpenMessage(&moved, bob); !errors.Is(err, keys.ErrNotSealedToMe) {
		t.Fatalf("a sealed body moved to another message opened: %v", err)
	}
	altered := *sealed
	altered.SealedTo = strings.Repeat("a", keys.FingerprintLen)
	if _, err := VerifySignature(&altered, nil); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("changing the recipient kept the signature valid: %v", err)
	}
}

// Limits: a sealed body is allowed the seal's overhead over the body limit, and no more.
func TestSealedBodyLimit(t *testing.T) {
	m, sealed, _, _ := sealedFixture(t)
	b := AppendMessageAs(nil, ReqStore, sealed, false)
	if _, _, err := DecodeMessageAs(b, ReqStore, len(m.Body)); err != nil {
		t.Fatalf("at the limit: %v", err)
	}
	if _, _, err := DecodeMessageAs(b, ReqStore, len(m.Body)-1); !errors.Is(err, ErrOverLimit) {
		t.Fatalf("past the limit: %v", err)
	}
	unsigned := *sealed
	unsigned.SenderKey, unsigned.Sig = "", ""
	if _, _, err := DecodeMessageAs(AppendMessageAs(nil, ReqStore, &unsigned, false), ReqStore, 1<<20); !errors.Is(err, ErrBadMessage) {
		t.Fatalf("an unsigned sealed message decoded: %v", err)
	}
}

// BenchmarkSealMessage is what sealing adds to storing a 1 KiB message (the sender), and
// opening to its handover (the recipient), beside signing alone.
func BenchmarkSealMessage(b *testing.B) {
	alice, bob := keys.NewIdentity(), keys.NewIdentity()
	card, err := keys.ParseCard(bob.Card())
	if err != nil {
		b.Fatal(err)
	}
	m := &Message{ID: "01HZY0000000000000000000AB", From: "alice", To: "bob", Kind: KindMessage,
		Body: strings.Repeat("x", 1024), SentAt: time.UnixMilli(1700000000000)}
	b.Run("sign", func(b *testing.B) {
		for b.Loop() {
			s := *m
			SignMessage(&s, alice)
		}
	})
	b.Run("seal+sign", func(b *testing.B) {
		for b.Loop() {
			if _, err := SealMessage(m, card, alice); err != nil {
				b.Fatal(err)
			}
		}
	})
	sealed, err := SealMessage(m, card, alice)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("verify+open", func(b *testing.B) {
		for b.Loop() {
			s := *sealed
			if _, err := VerifySignature(&s, nil); err != nil {
				b.Fatal(err)
			}
			if err := OpenMessage(&s, bob); err != nil {
				b.Fatal(err)
			}
		}
	})
}
