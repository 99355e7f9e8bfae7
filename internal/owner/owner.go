package owner

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sync"
	"syscall"
)

// ErrNotOwned is wrapped by every refusal of this package.
var ErrNotOwned = errors.New("not owned by this user")

// Me is the effective user id of this process.
func Me() uint32 { return me() }

// me is the effective uid, asked once: this program never changes it, and discovery checks
// the owner of every run-dir entry at every round (a geteuid each, issue 18).
var me = sync.OnceValue(func() uint32 { return uint32(os.Geteuid()) })

// UID returns the owner of the file fi describes.
func UID(fi fs.FileInfo) (uint32, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, false
	}
	return st.Uid, true
}

// Check returns nil when fi is owned by this process's user, and otherwise an
// error wrapping ErrNotOwned that names the owner.
func Check(path string, fi fs.FileInfo) error {
	uid, ok := UID(fi)
	if !ok {
		return fmt.Errorf("%s: cannot tell its owner: %w", path, ErrNotOwned)
	}
	if uid != Me() {
		return fmt.Errorf("%s is owned by uid %d, not by you (uid %d): %w", path, uid, Me(), ErrNotOwned)
	}
	return nil
}

// PrivateDir checks that dir (and, if dir is a symbolic link, the link itself)
// is a directory owned by this user. A directory of ours that others may write
// to is made private (0700), since a group- or world-writable rendezvous lets
// another user plant entries; fixed reports that this happened.
func PrivateDir(dir string) (fixed bool, err error) {
	li, err := os.Lstat(dir)
	if err != nil {
		return false, err
	}
	if li.Mode()&fs.ModeSymlink != 0 {
		if err := Check(dir, li); err != nil {
			return false, err
		}
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return false, err
	}
	if !fi.IsDir() {
		return false, fmt.Errorf("%s is not a directory", dir)
	}
	if err := Check(dir, fi); err != nil {
		return false, err
	}
	if fi.Mode().Perm()&0o022 != 0 {
		if err := os.Chmod(dir, 0o700); err != nil {
			return false, fmt.Errorf("%s is writable by other users and could not be made private: %w", dir, err)
		}
		return true, nil
	}
	return false, nil
}

// Socket checks that path is a unix socket owned by this user, without
// following a symbolic link.
func Socket(path string) error {
	fi, err := os.Lstat(path)
	if err != nil {
		return err
	}
	if fi.Mode().Type() != fs.ModeSocket {
		return fmt.Errorf("%s is not a socket: %w", path, ErrNotOwned)
	}
	return Check(path, fi)
}
