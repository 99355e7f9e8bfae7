package discovery

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/paf-mesh/paf-mesh/internal/owner"
)

const (
	// goneSuffix ends the names of tombstones (".<id>.gone"): the entry of a peer that died
	// without removing it, renamed out of the way by the reader that found its lock free. A
	// tombstone is what lets a peer that starts later (a session restarted after a crash) tell
	// "this peer died" from "this peer never had an entry here" (a brief peer, or one in
	// another run dir), which a missing entry alone cannot.
	goneSuffix = ".gone"
	// goneKeep is how long tombstones are kept (by the time the reader made them): far longer
	// than it takes a crashed session to be restarted and to claim its name again, and than a
	// name is reserved for a failed peer (mesh's NameGrace, seconds).
	goneKeep = 5 * time.Minute
)

// Gone reports whether the peer with this ID is known to have stopped without withdrawing its
// entry: the entry is there but its owner's lock is free (the process died: crashed, killed),
// or a reader already found it so and left a tombstone. It says true only on that proof, never
// for a live owner (whose lock is held for as long as its process lives), and false for an ID
// that never had an entry here, for an entry withdrawn by [Advert.Close] (a clean stop, which
// the mesh learns of from the peer's goodbye) and whenever the directory cannot be read. A dead
// entry it finds is buried as [Local.Entries] would. Cost: one open, or two lstats for an ID
// with no entry.
func (l *Local) Gone(id string) bool {
	if checkID(id) != nil {
		return false
	}
	name := id + entrySuffix
	path := filepath.Join(l.dir, name)
	for range openAttempts {
		f, err := os.OpenFile(path, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0)
		if errors.Is(err, fs.ErrNotExist) {
			return l.tombstone(id)
		}
		if err != nil {
			return false
		}
		dead, retry := l.deadEntry(f, path, name)
		f.Close()
		if !retry {
			return dead
		}
	}
	return false
}

// deadEntry reports whether f, opened at path, is an entry whose owner's lock is free and
// which path still names (then it is buried), or that path was replaced meanwhile (retry).
func (l *Local) deadEntry(f *os.File, path, name string) (dead, retry bool) {
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() || owner.Check(path, fi) != nil {
		return false, false
	}
	free, err := flock(f, unix.LOCK_SH|unix.LOCK_NB)
	if err != nil || !free {
		return false, false
	}
	same, err := sameFile(f, path)
	switch {
	case err != nil:
		return false, false
	case !same:
		return false, true // an Update renamed a new (locked) file into place: look again
	}
	if err := l.bury(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
		l.log.Debug("discovery: cannot remove stale entry", "path", path, "err", err)
	}
	return true, false
}

// bury moves the entry file name (<id>.json) of a dead peer out of the way, to its tombstone,
// and dates the tombstone now (sweepGone removes it after goneKeep).
func (l *Local) bury(name string) error {
	id := strings.TrimSuffix(name, entrySuffix)
	grave := filepath.Join(l.dir, "."+id+goneSuffix)
	if err := os.Rename(filepath.Join(l.dir, name), grave); err != nil {
		return err
	}
	now := time.Now()
	if err := os.Chtimes(grave, now, now); err != nil {
		l.log.Debug("discovery: cannot date tombstone", "path", grave, "err", err)
	}
	return nil
}

// tombstone reports whether a tombstone of id is in the directory.
func (l *Local) tombstone(id string) bool {
	path := filepath.Join(l.dir, "."+id+goneSuffix)
	fi, err := os.Lstat(path)
	return err == nil && fi.Mode().IsRegular() && owner.Check(path, fi) == nil
}

// sweepGone removes a tombstone older than goneKeep.
func (l *Local) sweepGone(name string) {
	path := filepath.Join(l.dir, name)
	fi, err := os.Lstat(path)
	if err != nil || !fi.Mode().IsRegular() || time.Since(fi.ModTime()) < goneKeep {
		return
	}
	if err := os.Remove(path); err == nil {
		l.log.Debug("discovery: removed old tombstone", "path", path)
	}
}
