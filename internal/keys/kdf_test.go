package keys

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"testing"

	"golang.org/x/crypto/hkdf"
)

// testKDF is the cheapest argon2id: the package's tests derive many keys, and what they check
// (determinism, separation, caching) does not depend on the cost. The production cost is
// checked by TestProductionKnownAnswer and measured by BenchmarkMasterKey.
var testKDF = kdfParams{Time: 1, MemKiB: 64, Threads: 1}

func init() { kdf = testKDF }

// withKDF runs the rest of the test with the parameters p.
func withKDF(t *testing.T, p kdfParams) {
	t.Helper()
	old := kdf
	kdf = p
	t.Cleanup(func() { kdf = old })
}

// Known answers with the production parameters: the same secret must give the same keys on
// every machine and in every later build, or peers of one mesh silently stop reaching each
// other. A change here is a protocol change.
func TestProductionKnownAnswer(t *testing.T) {
	withKDF(t, prodKDF)
	k := mustFromSecret(t, testSecret)
	const wantMeshID = "8360d1a75cdb507d"
	if k.MeshID != wantMeshID {
		t.Fatalf("MeshID = %s, want %s", k.MeshID, wantMeshID)
	}
}

// Security I #6: mDNS announces the mesh id. It used to be HKDF(secret), which let a captured
// announcement test a guessed secret in microseconds. Now the mesh id (like every key) is an
// HKDF output of the argon2id master key: it differs from what HKDF of the secret gives, and it
// changes with the argon2id cost parameters, so no computation that skips the memory-hard
// derivation (at the production cost) yields it.
func TestAnnouncedMeshIDNeedsTheMemoryHardDerivation(t *testing.T) {
	k := mustFromSecret(t, testSecret)

	oldScheme := make([]byte, meshIDLen)
	if _, err := io.ReadFull(hkdf.New(sha256.New, []byte(testSecret), hkdfSalt, []byte(infoMeshID)), oldScheme); err != nil {
		t.Fatal(err)
	}
	if k.MeshID == hex.EncodeToString(oldScheme) {
		t.Fatal("the mesh id is still HKDF(secret): one guess is checked with one HKDF")
	}

	// The mesh id is exactly the HKDF of the argon2id output, so checking a guess against it
	// means computing argon2id of the guess.
	viaMaster, err := derive(masterKey([]byte(testSecret), kdf), true)
	if err != nil {
		t.Fatal(err)
	}
	if k.MeshID != viaMaster.MeshID || !bytes.Equal(k.Gossip, viaMaster.Gossip) || !bytes.Equal(k.Relay, viaMaster.Relay) {
		t.Fatal("the keys are not the HKDF outputs of the master key")
	}
	// And its value depends on the cost parameters: a cheaper derivation gives another id.
	cheaper := kdfParams{Time: kdf.Time, MemKiB: kdf.MemKiB / 2, Threads: kdf.Threads}
	other, err := derive(masterKey([]byte(testSecret), cheaper), true)
	if err != nil {
		t.Fatal(err)
	}
	if other.MeshID == k.MeshID {
		t.Fatal("halving the memory cost gave the same mesh id")
	}
	// The production cost is the one the spec asks for: at least 64 MiB and 3 passes.
	if prodKDF.MemKiB < 64<<10 || prodKDF.Time < 3 {
		t.Fatalf("production KDF %v is cheaper than argon2id m=64MiB t=3", prodKDF)
	}
}

// BenchmarkMasterKey measures one production derivation: what one guessed secret costs an
// attacker (per core) and what the first start of a peer costs. The security spec asks for at
// least 50 ms on the development machine.
func BenchmarkMasterKey(b *testing.B) {
	secret := []byte(testSecret)
	for b.Loop() {
		masterKey(secret, prodKDF)
	}
}
