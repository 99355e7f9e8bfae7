package keys

import (
	"bytes"
	"crypto/ed25519"
	"encoding/binary"
	"math/rand/v2"
	"testing"
)

// The curve order L, little-endian, as Ed25519 encodes S.
var orderL = [32]byte{
	0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
}

// addL returns s + L (little-endian, 32 bytes; s < L so it fits): the same scalar, not in
// canonical form.
func addL(s []byte) []byte {
	out := make([]byte, 32)
	var carry uint16
	for i := range 32 {
		v := uint16(s[i]) + uint16(orderL[i]) + carry
		out[i], carry = byte(v), v>>8
	}
	return out
}

// sameAsStdlib fails t unless keys.Verify (curve25519-voi) gives crypto/ed25519.Verify's
// answer for pub, msg and sig under domain.
func sameAsStdlib(t *testing.T, what string, pub, msg, sig []byte) bool {
	t.Helper()
	want := len(pub) == ed25519.PublicKeySize && len(sig) == ed25519.SignatureSize &&
		ed25519.Verify(pub, signedBytes("test", msg), sig)
	if got := Verify(pub, "test", msg, sig); got != want {
		t.Errorf("%s: keys.Verify says %v, crypto/ed25519 says %v (pub %x sig %x)", what, got, want, pub, sig)
		return false
	}
	return true
}

// TestSignaturesMatchTheStandardLibrary: signatures are those crypto/ed25519 makes, byte for
// byte, and Verify accepts exactly what crypto/ed25519.Verify accepts, valid signatures and
// the edge cases where Ed25519 implementations are known to differ (non-canonical S, small-order
// keys and R, non-canonical encodings of the key and of R): peers of earlier versions, which
// used crypto/ed25519, and this one agree on every signature.
func TestSignaturesMatchTheStandardLibrary(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 200 {
		seed := make([]byte, ed25519.SeedSize)
		for j := range seed {
			seed[j] = byte(r.Uint32())
		}
		id, err := IdentityFromSeed(seed)
		if err != nil {
			t.Fatal(err)
		}
		msg := make([]byte, r.IntN(2048))
		for j := range msg {
			msg[j] = byte(r.Uint32())
		}
		sig := id.Sign("test", msg)
		if want := ed25519.Sign(id.sign, signedBytes("test", msg)); !bytes.Equal(sig, want) {
			t.Fatalf("key %d: signature %x, crypto/ed25519 signs %x", i, sig, want)
		}
		if !Verify(id.Public(), "test", msg, sig) {
			t.Fatalf("key %d: its own signature does not verify", i)
		}
		// Any one bit flipped, in the signature, the key or the message.
		bad := bytes.Clone(sig)
		bad[r.IntN(len(bad))] ^= 1 << r.IntN(8)
		sameAsStdlib(t, "flipped signature bit", id.Public(), msg, bad)
		pub := bytes.Clone(id.Public())
		pub[r.IntN(len(pub))] ^= 1 << r.IntN(8)
		sameAsStdlib(t, "flipped key bit", pub, msg, sig)
		if len(msg) > 0 {
			m := bytes.Clone(msg)
			m[r.IntN(len(m))] ^= 1 << r.IntN(8)
			sameAsStdlib(t, "flipped message bit", id.Public(), m, sig)
		}
		// S + L: the same scalar in a non-canonical form (malleability); refused by both.
		mall := append(bytes.Clone(sig[:32]), addL(sig[32:])...)
		sameAsStdlib(t, "S + L", id.Public(), msg, mall)
	}

	// Small-order and non-canonical points. identity is the neutral point's encoding (y = 1);
	// nonCanonicalIdentity encodes y = 1 + p (not reduced); the others are points of order 2,
	// 4 and 8 and y = p - 1 with the sign bit set.
	identity := make([]byte, 32)
	identity[0] = 1
	nonCanonicalIdentity := make([]byte, 32)
	binary.LittleEndian.PutUint64(nonCanonicalIdentity, 0xffffffffffffffee)
	for i := 8; i < 31; i++ {
		nonCanonicalIdentity[i] = 0xff
	}
	nonCanonicalIdentity[31] = 0x7f
	order2 := bytes.Repeat([]byte{0xff}, 32) // y = -1 (with the last byte 0x7f below)
	order2[0], order2[31] = 0xec, 0x7f
	order4 := make([]byte, 32) // y = 0
	order4Neg := make([]byte, 32)
	order4Neg[31] = 0x80
	order8 := []byte{ // y of a point of order 8
		0x26, 0xe8, 0x95, 0x8f, 0xc2, 0xb2, 0x27, 0xb0, 0x45, 0xc3, 0xf4, 0x89, 0xf2, 0xef, 0x98, 0xf0,
		0xd5, 0xdf, 0xac, 0x05, 0xd3, 0xc6, 0x33, 0x39, 0xb1, 0x38, 0x02, 0x88, 0x6d, 0x53, 0xfc, 0x05,
	}
	points := map[string][]byte{
		"identity": identity, "non-canonical identity": nonCanonicalIdentity,
		"order 2": order2, "order 4": order4, "order 4, sign bit": order4Neg, "order 8": order8,
	}
	zeroS := make([]byte, 32)
	oneS := make([]byte, 32)
	oneS[0] = 1
	// The neutral point as key and R with S = 0 satisfies the equation: crypto/ed25519
	// accepts it, so must Verify (an edge where the two must agree on yes, not only no).
	if !Verify(identity, "test", nil, append(bytes.Clone(identity), zeroS...)) {
		t.Error("the neutral key's zero signature is refused; crypto/ed25519 accepts it")
	}
	for an, a := range points {
		for rn, rp := range points {
			for _, s := range [][]byte{zeroS, oneS} {
				for _, msg := range [][]byte{nil, []byte("hello")} {
					sameAsStdlib(t, "A "+an+", R "+rn, a, msg, append(bytes.Clone(rp), s...))
				}
			}
		}
	}
	// A valid key with a small-order R and S = 0, and the other way round.
	id, err := IdentityFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))
	if err != nil {
		t.Fatal(err)
	}
	for rn, rp := range points {
		sameAsStdlib(t, "valid key, R "+rn, id.Public(), []byte("m"), append(bytes.Clone(rp), zeroS...))
	}
}

// FuzzVerifyMatchesStdlib: for any key, message and signature, keys.Verify and
// crypto/ed25519.Verify agree. The corpus starts from a valid triple, so that mutations
// explore near-valid signatures and not only garbage.
func FuzzVerifyMatchesStdlib(f *testing.F) {
	id, err := IdentityFromSeed(bytes.Repeat([]byte{9}, ed25519.SeedSize))
	if err != nil {
		f.Fatal(err)
	}
	msg := []byte("a message")
	f.Add([]byte(id.Public()), msg, id.Sign("test", msg))
	f.Add(make([]byte, 32), []byte{}, make([]byte, 64))
	f.Fuzz(func(t *testing.T, pub, msg, sig []byte) {
		sameAsStdlib(t, "fuzz", pub, msg, sig)
	})
}
