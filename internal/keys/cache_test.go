package keys

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

// cacheKeyLine returns the "key ..." line of dir's cache file.
func cacheKeyLine(t *testing.T, dir string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, MasterCacheFile))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "key ") {
			return l
		}
	}
	t.Fatalf("cache file has no key line:\n%s", b)
	return ""
}

func TestFromSecretCached(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	want := mustFromSecret(t, testSecret)

	// A missing dir is not created: the keys are derived all the same, and not cached.
	k, err := FromSecretCached([]byte(testSecret), dir)
	if err != nil || k.MeshID != want.MeshID {
		t.Fatalf("without a state dir: %v, %v", k, err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("FromSecretCached created the missing dir: %v", err)
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}

	first, err := FromSecretCached([]byte(testSecret+"\n"), dir)
	if err != nil {
		t.Fatal(err)
	}
	if first.MeshID != want.MeshID || !bytes.Equal(first.Gossip, want.Gossip) || !bytes.Equal(first.Relay, want.Relay) || !first.Secure {
		t.Fatalf("cached derivation differs from FromSecret: %v vs %v", first, want)
	}
	path := filepath.Join(dir, MasterCacheFile)
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("cache file mode %04o, want 0600", st.Mode().Perm())
	}
	content, _ := os.ReadFile(path)
	if bytes.Contains(content, []byte(testSecret)) {
		t.Fatal("the cache file contains the secret")
	}

	// A served cached key comes from the file, not from a new derivation: plant a different
	// (valid) master key with its matching check and see it served.
	planted := bytes.Repeat([]byte{7}, KeyLen)
	writeCache(dir, path, []byte(testSecret), kdf, planted)
	got, err := FromSecretCached([]byte(testSecret), dir)
	if err != nil {
		t.Fatal(err)
	}
	fromPlanted, _ := derive(planted, true)
	if got.MeshID != fromPlanted.MeshID {
		t.Fatal("a valid cache entry was not used")
	}

	// A changed secret is never served the stale key; the cache then holds the new one.
	other := testSecret + " but another"
	wantOther := mustFromSecret(t, other)
	gotOther, err := FromSecretCached([]byte(other), dir)
	if err != nil {
		t.Fatal(err)
	}
	if gotOther.MeshID != wantOther.MeshID || !bytes.Equal(gotOther.Gossip, wantOther.Gossip) {
		t.Fatal("a changed secret was served a stale cached key")
	}
	again, err := FromSecretCached([]byte(other), dir)
	if err != nil || again.MeshID != wantOther.MeshID {
		t.Fatalf("second use of the new secret: %v %v", again, err)
	}

	// Other KDF parameters never reuse a key derived with the old ones.
	withKDF(t, kdfParams{Time: 2, MemKiB: 64, Threads: 1})
	before := cacheKeyLine(t, dir)
	k2, err := FromSecretCached([]byte(other), dir)
	if err != nil {
		t.Fatal(err)
	}
	if k2.MeshID == wantOther.MeshID || cacheKeyLine(t, dir) == before {
		t.Fatal("a key cached under other KDF parameters was served")
	}
}

func TestFromSecretCachedDamagedOrForeign(t *testing.T) {
	want := mustFromSecret(t, testSecret)
	tests := map[string]string{
		"empty":        "",
		"not ours":     "hello\n",
		"short key":    cacheMagic + "\nkdf " + testKDF.String() + "\ncheck 00\nkey 0102\n",
		"bad hex":      cacheMagic + "\nkdf " + testKDF.String() + "\ncheck zz\nkey " + strings.Repeat("zz", KeyLen) + "\n",
		"wrong check":  cacheMagic + "\nkdf " + testKDF.String() + "\ncheck " + strings.Repeat("00", 32) + "\nkey " + strings.Repeat("07", KeyLen) + "\n",
		"huge garbage": strings.Repeat("x", 3*maxCacheFile),
	}
	for name, content := range tests {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, MasterCacheFile), []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
			got, err := FromSecretCached([]byte(testSecret), dir)
			if err != nil {
				t.Fatal(err)
			}
			if got.MeshID != want.MeshID || !bytes.Equal(got.Relay, want.Relay) {
				t.Fatal("a damaged cache changed the keys")
			}
			if cacheKeyLine(t, dir) == "" {
				t.Fatal("the damaged cache was not replaced")
			}
		})
	}
}

func TestFromSecretCachedRefusesLoosePerms(t *testing.T) {
	if !checkPerms {
		t.Skip("no Unix permissions on this platform")
	}
	dir := t.TempDir()
	if _, err := FromSecretCached([]byte(testSecret), dir); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, MasterCacheFile)
	if err := os.Chmod(path, 0o640); err != nil {
		t.Fatal(err)
	}
	_, err := FromSecretCached([]byte(testSecret), dir)
	if !errors.Is(err, ErrLoosePerms) || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("err = %v, want ErrLoosePerms with the chmod command", err)
	}
	// A bad secret is refused before the cache is looked at or created.
	empty := t.TempDir()
	if _, err := FromSecretCached([]byte("short"), empty); !errors.Is(err, ErrSecretTooShort) {
		t.Fatalf("err = %v, want ErrSecretTooShort", err)
	}
	if _, err := os.Stat(filepath.Join(empty, MasterCacheFile)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a refused secret created a cache file: %v", err)
	}
}

// Concurrent first starts of one user's peers all get the same keys, and the cache file is
// complete afterwards.
func TestFromSecretCachedConcurrent(t *testing.T) {
	dir := t.TempDir()
	want := mustFromSecret(t, testSecret)
	var bad atomic.Int32
	done := make(chan struct{})
	const n = 8
	for range n {
		go func() {
			defer func() { done <- struct{}{} }()
			k, err := FromSecretCached([]byte(testSecret), dir)
			if err != nil || k.MeshID != want.MeshID {
				bad.Add(1)
			}
		}()
	}
	for range n {
		<-done
	}
	if bad.Load() != 0 {
		t.Fatalf("%d of %d concurrent derivations differed or failed", bad.Load(), n)
	}
	got, err := FromSecretCached([]byte(testSecret), dir)
	if err != nil || got.MeshID != want.MeshID {
		t.Fatalf("after concurrent starts: %v %v", got, err)
	}
}
