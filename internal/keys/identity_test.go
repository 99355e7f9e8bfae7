package keys

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func TestLoadIdentityCreatesOnceAndReloads(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	// Peers starting together must all end up with one identity.
	ids := make([]*Identity, 8)
	var wg sync.WaitGroup
	for i := range ids {
		wg.Go(func() {
			id, err := LoadIdentity(dir)
			if err != nil {
				t.Error(err)
				return
			}
			ids[i] = id
		})
	}
	wg.Wait()
	for _, id := range ids[1:] {
		if id == nil || id.Fingerprint() != ids[0].Fingerprint() {
			t.Fatalf("concurrent loads gave different identities: %v vs %v", id, ids[0])
		}
	}
	st, err := os.Stat(filepath.Join(dir, IdentityFile))
	if err != nil {
		t.Fatal(err)
	}
	if checkPerms && st.Mode().Perm() != 0o600 {
		t.Fatalf("identity file mode %v, want 0600", st.Mode().Perm())
	}
	again, err := LoadIdentity(dir)
	if err != nil || again.Fingerprint() != ids[0].Fingerprint() {
		t.Fatalf("reload: %v, %v (want %s)", again, err, ids[0].Fingerprint())
	}
	if len(again.Fingerprint()) != FingerprintLen {
		t.Fatalf("fingerprint %q has %d characters", again.Fingerprint(), len(again.Fingerprint()))
	}
	if s := again.String(); strings.Contains(s, string(again.StaticPrivate())) || !strings.Contains(s, again.Fingerprint()) {
		t.Fatalf("String() = %q", s)
	}
}

func TestLoadIdentityRefusesBadFiles(t *testing.T) {
	if !checkPerms {
		t.Skip("no Unix permissions here")
	}
	dir := t.TempDir()
	path := filepath.Join(dir, IdentityFile)
	if err := os.WriteFile(path, make([]byte, 32), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadIdentity(dir); !errors.Is(err, ErrLoosePerms) || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("loose identity file: %v, want ErrLoosePerms saying chmod 600", err)
	}
	if err := os.WriteFile(path, make([]byte, 31), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadIdentity(dir); err == nil || !strings.Contains(err.Error(), "31 bytes") {
		t.Fatalf("short identity file: %v", err)
	}
	if b, _ := os.ReadFile(path); len(b) != 31 {
		t.Fatal("a bad identity file was replaced")
	}
}

func TestIdentitySignatures(t *testing.T) {
	a, b := NewIdentity(), NewIdentity()
	msg := []byte("hello")
	sig := a.Sign("test", msg)
	if !Verify(a.Public(), "test", msg, sig) {
		t.Fatal("own signature refused")
	}
	for name, ok := range map[string]bool{
		"other domain":  Verify(a.Public(), "test2", msg, sig),
		"other message": Verify(a.Public(), "test", []byte("hellO"), sig),
		"other key":     Verify(b.Public(), "test", msg, sig),
		"short sig":     Verify(a.Public(), "test", msg, sig[:10]),
		"short key":     Verify(a.Public()[:5], "test", msg, sig),
	} {
		if ok {
			t.Errorf("%s: signature accepted", name)
		}
	}
}

func TestCertificateBindsStaticKey(t *testing.T) {
	a, b := NewIdentity(), NewIdentity()
	pub, err := VerifyCertificate(a.Certificate(), a.StaticPublic())
	if err != nil || !pub.Equal(a.Public()) {
		t.Fatalf("own certificate: %v", err)
	}
	// b's static key with a's certificate: someone presenting a's identity with a key of its own.
	if _, err := VerifyCertificate(a.Certificate(), b.StaticPublic()); err == nil {
		t.Fatal("a certificate was accepted for another transport key")
	}
	if _, err := VerifyCertificate(a.Certificate()[:CertificateLen-1], a.StaticPublic()); err == nil {
		t.Fatal("a truncated certificate was accepted")
	}
	// The same seed gives the same identity and keys.
	seed := make([]byte, 32)
	x, _ := IdentityFromSeed(seed)
	y, _ := IdentityFromSeed(seed)
	if x.Fingerprint() != y.Fingerprint() || string(x.StaticPublic()) != string(y.StaticPublic()) {
		t.Fatal("derivation is not deterministic")
	}
	if _, err := IdentityFromSeed(seed[:31]); err == nil {
		t.Fatal("a short seed was accepted")
	}
}

func TestPeerIDs(t *testing.T) {
	id := NewIdentity()
	p1, p2 := id.NewPeerID(), id.NewPeerID()
	if p1 == p2 {
		t.Fatal("two peer ids are equal")
	}
	fp, ok := PeerIDFingerprint(p1)
	if !ok || fp != id.Fingerprint() {
		t.Fatalf("PeerIDFingerprint(%q) = %q, %v", p1, fp, ok)
	}
	for _, bad := range []string{
		"", "0123456789abcdef", id.Fingerprint(), id.Fingerprint() + "-", id.Fingerprint() + "-0123",
		id.Fingerprint() + "-0123456789ABCDEF", id.Fingerprint() + "-0123456789abcdeg",
		"ABCDEFGHIJKLMNOP-0123456789abcdef", "abcdefghijklmno1-0123456789abcdef",
		id.Fingerprint() + "x-0123456789abcdef", id.Fingerprint() + "-0123456789abcdef-",
	} {
		if fp, ok := PeerIDFingerprint(bad); ok {
			t.Errorf("PeerIDFingerprint(%q) = %q, true", bad, fp)
		}
	}
}
