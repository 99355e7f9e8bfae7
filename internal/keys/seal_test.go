package keys

import (
	"bytes"
	"errors"
	"testing"
)

func TestSealOpensOnlyForItsIdentity(t *testing.T) {
	bob, eve := NewIdentity(), NewIdentity()
	card, err := ParseCard(bob.Card())
	if err != nil {
		t.Fatal(err)
	}
	if card.Fingerprint != bob.Fingerprint() {
		t.Fatalf("card fingerprint %s, want %s", card.Fingerprint, bob.Fingerprint())
	}
	info, msg := []byte("id|from|to"), []byte("the plan is in /tmp/x")
	sealed, err := card.Seal(info, msg)
	if err != nil {
		t.Fatal(err)
	}
	if len(sealed) != len(msg)+SealOverhead {
		t.Fatalf("sealed %d bytes, want %d", len(sealed), len(msg)+SealOverhead)
	}
	if bytes.Contains(sealed, msg) {
		t.Fatal("the plaintext is in the sealed bytes")
	}
	got, err := bob.Open(info, sealed)
	if err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("bob opens: %q, %v", got, err)
	}
	if _, err := eve.Open(info, sealed); !errors.Is(err, ErrNotSealedToMe) {
		t.Fatalf("eve opens bob's message: %v", err)
	}
	if _, err := bob.Open([]byte("id|mallory|to"), sealed); !errors.Is(err, ErrNotSealedToMe) {
		t.Fatalf("opened with another context: %v", err)
	}
	flipped := bytes.Clone(sealed)
	flipped[len(flipped)-1] ^= 1
	if _, err := bob.Open(info, flipped); !errors.Is(err, ErrNotSealedToMe) {
		t.Fatalf("opened altered ciphertext: %v", err)
	}
}

// A card binds the sealing key to the identity's key: another key spliced in, or a card cut
// short, is refused, so nobody can publish a card under another identity's fingerprint.
func TestParseCardRefusesForgeries(t *testing.T) {
	bob, eve := NewIdentity(), NewIdentity()
	spliced := append(append([]byte{}, bob.Card()[:32]...), eve.Card()[32:]...)
	for name, b := range map[string][]byte{
		"spliced": spliced,
		"short":   bob.Card()[:CardLen-1],
		"long":    append(bytes.Clone(bob.Card()), 0),
		"empty":   nil,
	} {
		if _, err := ParseCard(b); err == nil {
			t.Errorf("%s card accepted", name)
		}
	}
	// Stable: the same seed gives the same card.
	again, err := IdentityFromSeed(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	once, _ := IdentityFromSeed(bytes.Repeat([]byte{7}, 32))
	if !bytes.Equal(again.Card(), once.Card()) {
		t.Fatal("a seed gives two cards")
	}
}

// ParseCard remembers the cards it checked (the sessions of one user announce one card): a
// card met again parses to the same, a forgery met after its genuine card is still refused,
// and the memory stays bounded past maxCheckedCards.
func TestParseCardRemembersCheckedCards(t *testing.T) {
	bob, eve := NewIdentity(), NewIdentity()
	first, err := ParseCard(bob.Card())
	if err != nil {
		t.Fatal(err)
	}
	again, err := ParseCard(bytes.Clone(bob.Card()))
	if err != nil || again.Fingerprint != first.Fingerprint || !bytes.Equal(again.Bytes(), first.Bytes()) || again.seal == nil || !again.seal.Equal(first.seal) {
		t.Fatalf("the card parsed again = %+v, %v; want %+v", again, err, first)
	}
	spliced := append(append([]byte{}, bob.Card()[:32]...), eve.Card()[32:]...)
	if _, err := ParseCard(spliced); err == nil {
		t.Fatal("a spliced card was accepted after the genuine one was remembered")
	}
	flipped := bytes.Clone(bob.Card())
	flipped[len(flipped)-1] ^= 1
	if _, err := ParseCard(flipped); err == nil {
		t.Fatal("a card with a flipped signature bit was accepted after the genuine one was remembered")
	}
	for range maxCheckedCards + 1 {
		if _, err := ParseCard(NewIdentity().Card()); err != nil {
			t.Fatal(err)
		}
	}
	checkedCards.mu.Lock()
	n := len(checkedCards.m)
	checkedCards.mu.Unlock()
	if n > maxCheckedCards {
		t.Fatalf("%d cards remembered; want at most %d", n, maxCheckedCards)
	}
	if c, err := ParseCard(bob.Card()); err != nil || c.Fingerprint != first.Fingerprint {
		t.Fatalf("bob's card after the set was emptied: %+v, %v", c, err)
	}
}

func FuzzParseCard(f *testing.F) {
	f.Add(NewIdentity().Card())
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseCard(b)
		if err != nil {
			return
		}
		if _, err := c.Seal([]byte("i"), []byte("x")); err != nil {
			t.Fatalf("a parsed card cannot seal: %v", err)
		}
	})
}
