package statedir

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// tryLock takes an exclusive, non-blocking flock on f. It reports false with a nil error when
// another open file description holds it.
func tryLock(f *os.File) (bool, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return false, err
	}
	var ferr error
	err = rc.Control(func(fd uintptr) {
		for {
			ferr = unix.Flock(int(fd), unix.LOCK_EX|unix.LOCK_NB)
			if !errors.Is(ferr, unix.EINTR) {
				return
			}
		}
	})
	if err != nil {
		return false, err
	}
	if errors.Is(ferr, unix.EWOULDBLOCK) {
		return false, nil
	}
	return ferr == nil, ferr
}

// lockSlot takes the lock of the slot in dir. It fails with ErrBusy when a live peer holds it,
// and with an error wrapping fs.ErrNotExist when dir is not a slot (or stopped being one).
func lockSlot(dir string) (*os.File, error) {
	path := filepath.Join(dir, lockName)
	// No O_CREATE: a directory without a lock file is not a slot, or is being deleted.
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return nil, err
	}
	ok, err := tryLock(f)
	if err != nil || !ok {
		_ = f.Close()
		if err != nil {
			return nil, err
		}
		return nil, ErrBusy
	}
	// The lock file may have been unlinked (the slot deleted) between our open and our lock; a
	// lock on an unlinked file protects nothing.
	fi, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return nil, err
	}
	pi, err := os.Lstat(path)
	if err != nil || !os.SameFile(fi, pi) {
		_ = f.Close()
		if err == nil {
			err = &fs.PathError{Op: "lock", Path: path, Err: fs.ErrNotExist}
		}
		return nil, err
	}
	return f, nil
}

// syncDir makes a rename or creation in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if errors.Is(err, unix.EINVAL) {
		err = nil // some filesystems cannot fsync a directory; nothing more can be done there
	}
	return errors.Join(err, d.Close())
}
