package statedir

import (
	"fmt"
	"os"
	"path/filepath"
)

// WriteFileAtomic writes data to path via temp file + fsync + rename + dir fsync, with perm.
// After a crash path holds either the old content or the new, never a mix, and readers never
// see a partial file. The temp file is created next to path (a rename cannot cross
// filesystems) and is removed if anything fails. perm is applied exactly, whatever the umask.
func WriteFileAtomic(path string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	if err := replace(dir, path, data, perm); err != nil {
		return fmt.Errorf("statedir: write %s: %w", path, err)
	}
	// The new content is in place either way; a failure here means the rename might not
	// survive a crash, which the caller may want to know.
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("statedir: write %s: sync dir: %w", path, err)
	}
	return nil
}

// replace writes data to a temp file in dir, fsyncs it and renames it to path.
func replace(dir, path string, data []byte, perm os.FileMode) (err error) {
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			_ = f.Close() // may be closed already; the error then is of no interest
			_ = os.Remove(tmp)
		}
	}()
	if err := f.Chmod(perm); err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
