package keys

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
)

// Environment variables that carry a shared secret, in order of preference. IPC_SHARED_SECRET
// is the name the seed projects used; it is still honoured so existing setups keep working.
const (
	EnvSecret       = "PAF_SECRET"
	EnvSecretLegacy = "IPC_SHARED_SECRET"
)

// maxSecretFileSize bounds how much LoadSecretFile reads: a secret is a line of text, and a
// mistyped path to a large file should fail clearly instead of being hashed as a "secret".
const maxSecretFileSize = 64 << 10

// checkPerms is false on Windows, where Unix permission bits are synthesised from the
// read-only attribute and always look group/world accessible.
var checkPerms = runtime.GOOS != "windows"

// SecretFromEnv returns the shared secret from PAF_SECRET, else IPC_SHARED_SECRET, and the name
// of the variable it came from. Both unset or empty gives (nil, ""): open mode. The value is
// returned as is (FromSecret trims and validates it), so a variable holding only whitespace is
// reported as an empty secret rather than silently meaning open mode.
func SecretFromEnv(getenv func(string) string) (secret []byte, source string) {
	for _, name := range []string{EnvSecret, EnvSecretLegacy} {
		if v := getenv(name); v != "" {
			return []byte(v), name
		}
	}
	return nil, ""
}

// LoadSecretFile reads a shared secret from path. The file must be a regular file that neither
// group nor others can read or write (mode&0077 == 0, e.g. 0600 or 0400); otherwise the error
// wraps ErrLoosePerms and gives the chmod command. A missing file wraps fs.ErrNotExist.
// The permissions are checked on the opened file, so they cannot change between check and read.
func LoadSecretFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("keys: secret file %s does not exist; create it with: "+
				"paf-peer secret new --file %s (or: (umask 077; openssl rand -base64 32 > %s)): %w", path, path, path, err)
		}
		return nil, fmt.Errorf("keys: open secret file: %w", err)
	}
	defer f.Close()
	if err := checkPrivate(f, path, "secret file"); err != nil {
		return nil, err
	}
	b, err := io.ReadAll(io.LimitReader(f, maxSecretFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("keys: read secret file %s: %w", path, err)
	}
	if len(b) > maxSecretFileSize {
		return nil, fmt.Errorf("keys: secret file %s is larger than %d bytes; it should hold one line, "+
			"e.g. the output of: openssl rand -base64 32", path, maxSecretFileSize)
	}
	return b, nil
}

// checkPrivate verifies that f is a regular file private to its owner. what names the file in
// errors ("secret file", "key file").
func checkPrivate(f *os.File, path, what string) error {
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("keys: stat %s %s: %w", what, path, err)
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("keys: %s %s is not a regular file (%s)", what, path, st.Mode().Type())
	}
	if perm := st.Mode().Perm(); checkPerms && perm&0o077 != 0 {
		return &sentinelError{
			msg:      fmt.Sprintf("keys: %s %s has mode %04o; run: chmod 600 %s", what, path, perm, path),
			sentinel: ErrLoosePerms,
		}
	}
	return nil
}

// sentinelError carries a complete, user-facing message while still matching a sentinel with
// errors.Is, so the message reads as one instruction instead of "sentinel: detail".
type sentinelError struct {
	msg      string
	sentinel error
}

func (e *sentinelError) Error() string { return e.msg }
func (e *sentinelError) Unwrap() error { return e.sentinel }

// DefaultSecretFile is $XDG_CONFIG_HOME/paf/secret, or ~/.config/paf/secret.
func DefaultSecretFile(getenv func(string) string) (string, error) {
	base := getenv("XDG_CONFIG_HOME")
	if base == "" {
		home := getenv("HOME")
		if home == "" {
			return "", errors.New("no config dir: neither $XDG_CONFIG_HOME nor $HOME is set; give a path with --file")
		}
		base = filepath.Join(home, ".config")
	}
	return filepath.Join(base, "paf", "secret"), nil
}

// WriteSecretFile writes content to path with mode 0600. Without force it fails if path
// exists (O_EXCL, so not even a file created meanwhile is replaced); with force it replaces
// path atomically (a private temporary file renamed over it), so a reader never sees a partial
// secret and the old file's looser mode, if any, does not survive.
func WriteSecretFile(path, content string, force bool) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	if !force {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("secret file %s exists; keep it, or replace it with --force (peers still using the old secret will no longer reach this one)", path)
		}
		if err != nil {
			return fmt.Errorf("create secret file: %w", err)
		}
		_, werr := f.WriteString(content)
		serr := f.Sync()
		if cerr := f.Close(); werr != nil || serr != nil || cerr != nil {
			os.Remove(path)
			return fmt.Errorf("write secret file %s: %w", path, errors.Join(werr, serr, cerr))
		}
		return nil
	}
	tmp, err := os.CreateTemp(dir, ".secret-*.tmp") // O_EXCL, mode 0600
	if err != nil {
		return fmt.Errorf("create secret file: %w", err)
	}
	defer os.Remove(tmp.Name())
	_, werr := tmp.WriteString(content)
	serr := tmp.Sync()
	if cerr := tmp.Close(); werr != nil || serr != nil || cerr != nil {
		return fmt.Errorf("write secret file %s: %w", path, errors.Join(werr, serr, cerr))
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("replace secret file %s: %w", path, err)
	}
	return nil
}
