package keys

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// LocalKeyFile is the name of the open-mode key file inside the directory given to LocalKeys.
const LocalKeyFile = "key"

// LocalKeys loads dir/key, creating it with KeyLen random bytes (mode 0600) if it does not
// exist, and derives open-mode Keys (Secure=false) from it. Only processes that can read the
// file, i.e. this user's peers on this machine, can then authenticate to each other.
//
// Several peers may start at the same moment. The key is written completely to a private
// temporary file and then hard-linked to dir/key; link fails if the name exists, so exactly one
// candidate wins, no reader ever sees a partial key, and the losers read the winner's key.
// An existing key file with loose permissions (ErrLoosePerms) or the wrong size is an error and
// is never replaced: replacing it would silently cut this peer off from the others.
func LocalKeys(dir string) (*Keys, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("keys: create key dir: %w", err)
	}
	path := filepath.Join(dir, LocalKeyFile)
	key, err := readKeyFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		key, err = createKeyFile(dir, path)
	}
	if err != nil {
		return nil, err
	}
	return derive(key, false)
}

// readKeyFile reads an existing key file, checking permissions and size.
func readKeyFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		// fs.ErrNotExist stays matchable: LocalKeys creates the file in that case.
		return nil, fmt.Errorf("keys: open key file: %w", err)
	}
	defer f.Close()
	if err := checkPrivate(f, path, "key file"); err != nil {
		return nil, err
	}
	// Read one byte more than expected to tell "exactly KeyLen" from "longer".
	key := make([]byte, KeyLen+1)
	n, err := io.ReadFull(f, key)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("keys: read key file %s: %w", path, err)
	}
	if n != KeyLen {
		return nil, fmt.Errorf("keys: key file %s is not a paf key (%s, want exactly %d bytes); "+
			"move it away and a new one is created, but peers still using the old key will not "+
			"reach this one until restarted", path, sizeDesc(n, KeyLen), KeyLen)
	}
	return key[:KeyLen], nil
}

func sizeDesc(n, want int) string {
	if n > want {
		return fmt.Sprintf("more than %d bytes", want)
	}
	return fmt.Sprintf("%d bytes", n)
}

// createKeyFile writes a new random key to a temporary file and links it into place. If another
// process linked its key first, that key is read and returned instead.
func createKeyFile(dir, path string) ([]byte, error) {
	key := make([]byte, KeyLen)
	// crypto/rand.Read never fails on supported platforms (it aborts the program instead).
	_, _ = rand.Read(key)

	// CreateTemp opens with O_EXCL and mode 0600, so the key is private from the first byte.
	tmp, err := os.CreateTemp(dir, ".key-*.tmp")
	if err != nil {
		return nil, fmt.Errorf("keys: create key file: %w", err)
	}
	tmpName := tmp.Name()
	defer os.Remove(tmpName) // after a successful link the key lives on under path

	if _, err := tmp.Write(key); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("keys: write key file %s: %w", tmpName, err)
	}
	// Sync before linking so a crash cannot leave a visible but empty key file behind.
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("keys: sync key file %s: %w", tmpName, err)
	}
	if err := tmp.Close(); err != nil {
		return nil, fmt.Errorf("keys: close key file %s: %w", tmpName, err)
	}

	switch err := os.Link(tmpName, path); {
	case err == nil:
		syncDir(dir)
		return key, nil
	case errors.Is(err, fs.ErrExist):
		// Another peer won the race; its file was complete before it became visible.
		return readKeyFile(path)
	default:
		return nil, fmt.Errorf("keys: install key file %s: %w", path, err)
	}
}

// syncDir makes the new directory entry durable. Failure is not fatal: the key is already in
// place and readable, and some file systems do not support syncing directories.
func syncDir(dir string) {
	d, err := os.Open(dir)
	if err != nil {
		return
	}
	_ = d.Sync()
	_ = d.Close()
}
