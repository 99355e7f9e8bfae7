package discovery

import (
	"errors"
	"io/fs"
	"os"

	"golang.org/x/sys/unix"
)

// flock applies how (unix.LOCK_SH, unix.LOCK_EX, optionally |unix.LOCK_NB) to f. It reports
// false with a nil error when LOCK_NB was given and another open file description holds a
// conflicting lock.
func flock(f *os.File, how int) (bool, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return false, err
	}
	var ferr error
	err = rc.Control(func(fd uintptr) {
		for {
			ferr = unix.Flock(int(fd), how)
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

// sameFile reports whether path still names the file f has open. A missing path is false with a
// nil error.
func sameFile(f *os.File, path string) (bool, error) {
	fi, err := f.Stat()
	if err != nil {
		return false, err
	}
	pi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return os.SameFile(fi, pi), nil
}
