package keys

import (
	"bufio"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// MasterCacheFile is the name of the master key cache inside the state directory given to
// FromSecretCached.
const MasterCacheFile = "master-key"

// cacheMagic is the first line of a cache file; a file that does not start with it is not
// ours and is replaced (it can hold no key we would trust anyway).
const cacheMagic = "paf-mesh master key cache v1"

// maxCacheFile bounds how much of a cache file is read: ours is under 256 bytes.
const maxCacheFile = 1024

// infoCacheCheck separates the cache check value from every key derived from the master key.
const infoCacheCheck = "paf-mesh v2 master cache check"

// FromSecretCached is FromSecret with the memory-hard derivation cached in dir/master-key, so
// that only the first peer of a user with a given secret pays for it.
//
// The cache file (mode 0600, refused with ErrLoosePerms if group or others can read or write it)
// holds four lines:
//
//	paf-mesh master key cache v1
//	kdf argon2id t=3 m=65536 p=1
//	check <hex HMAC-SHA256(master key, info || kdf line || secret)>
//	key <hex master key>
//
// A cached key is served only if its check matches the secret given now under the current
// parameters; otherwise (another secret, other parameters, a damaged file) the key is derived
// again and the file replaced atomically, so a changed secret is never served a stale key.
// The check is keyed with the master key itself: without the file nothing about the secret can
// be tested, and whoever can read the file already holds the master key, i.e. every key the
// secret protects, which is what the (equally private) secret file gives. The file name does
// not depend on the secret. The cache is written only into an existing dir (resolving a
// peer's settings must not create its state dir; the peer creates it when it starts, so the
// next start finds the cache). Failing to write it only costs time at the next start.
func FromSecretCached(secret []byte, dir string) (*Keys, error) {
	s, err := checkSecret(secret)
	if err != nil {
		return nil, err
	}
	path := filepath.Join(dir, MasterCacheFile)
	master, err := readCache(path, s, kdf)
	if err != nil {
		return nil, err
	}
	if master == nil {
		master = masterKey(s, kdf)
		writeCache(dir, path, s, kdf, master)
	}
	return derive(master, true)
}

// cacheCheck is the value that ties a cached master key to the secret and parameters.
func cacheCheck(master, secret []byte, p kdfParams) []byte {
	m := hmac.New(sha256.New, master)
	m.Write([]byte(infoCacheCheck + "\n" + p.String() + "\n"))
	m.Write(secret)
	return m.Sum(nil)
}

// readCache returns the cached master key for secret under p, or nil if there is none usable.
// Only permissions that let others at the key are an error.
func readCache(path string, secret []byte, p kdfParams) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return nil, fmt.Errorf("keys: open master key cache: %w", err)
	}
	defer f.Close()
	if err := checkPrivate(f, path, "master key cache"); err != nil {
		return nil, err
	}
	lines := make(map[string]string, 4)
	sc := bufio.NewScanner(io.LimitReader(f, maxCacheFile))
	for i := 0; sc.Scan(); i++ {
		line := sc.Text()
		if i == 0 {
			if line != cacheMagic {
				return nil, nil
			}
			continue
		}
		k, v, _ := strings.Cut(line, " ")
		lines[k] = v
	}
	if lines["kdf"] != p.String() {
		return nil, nil
	}
	check, err1 := hex.DecodeString(lines["check"])
	master, err2 := hex.DecodeString(lines["key"])
	if err1 != nil || err2 != nil || len(master) != KeyLen {
		return nil, nil
	}
	if !hmac.Equal(check, cacheCheck(master, secret, p)) {
		return nil, nil // another secret: derive again
	}
	return master, nil
}

// writeCache replaces the cache file in dir atomically: a private temporary file renamed into place,
// so concurrent starts never read a partial file (each writes the same content for the same
// secret). Errors are ignored on purpose: the cache is an optimisation.
func writeCache(dir, path string, secret []byte, p kdfParams, master []byte) {
	tmp, err := os.CreateTemp(dir, ".master-key-*.tmp") // O_EXCL, mode 0600; fails if dir is missing
	if err != nil {
		return
	}
	defer os.Remove(tmp.Name()) // after a successful rename there is nothing left to remove
	content := fmt.Sprintf("%s\nkdf %s\ncheck %x\nkey %x\n", cacheMagic, p, cacheCheck(master, secret, p), master)
	_, werr := tmp.WriteString(content)
	serr := tmp.Sync()
	if cerr := tmp.Close(); werr != nil || serr != nil || cerr != nil {
		return
	}
	if err := os.Rename(tmp.Name(), path); err == nil {
		syncDir(dir)
	}
}
