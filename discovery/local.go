package discovery

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/paf-mesh/paf-mesh/internal/owner"
)

const (
	// tmpSuffix ends the names of entries being written (".<id>.<random>.tmp").
	tmpSuffix = ".tmp"
	// tempGrace is how old an unlocked temp file must be before a reader sweeps it. A writer
	// locks its temp file microseconds after creating it, so a minute leaves a wide margin; the
	// age only decides when to collect garbage, never whether a peer is alive.
	tempGrace = time.Minute
	// openAttempts bounds re-reads of one entry that is being replaced while we look at it.
	// Each retry means the owner rewrote the entry meanwhile; entries change rarely (a rename),
	// so this only matters under churn, where a test with 300 back-to-back updates still missed
	// a live peer about once in 15,000 scans with 3 attempts.
	openAttempts = 10
)

// Local is the rendezvous directory shared by the peers of one user on one machine. It is a
// [Source] of the other peers' gossip addresses, and [Local.Advertise] publishes this peer's.
// Its methods may be called concurrently.
type Local struct {
	// Self is this peer's ID. Candidates skips the entry with this ID so a peer does not try to
	// join itself. Set it before the first call to Candidates; "" skips nothing.
	Self string

	dir string
	log *slog.Logger

	mu     sync.Mutex
	warned map[fileKey]struct{} // corrupt files already logged; guarded by mu
	// decoded remembers, by file name, the last entry read from each live peer's file and
	// which file it was; guarded by mu. A peer replaces its entry with a new file at every
	// update (rename), so a file seen again is the same entry: a round then checks that its
	// owner lives (the lock) without reading and decoding it again. Every round read and
	// decoded every entry: when one of 50 sessions started, each of the others read the 50
	// entries, and reading and decoding them was 40 % of the round (issue 18).
	decoded map[string]decodedEntry
}

// decodedEntry is an entry as read from one version of its file.
type decodedEntry struct {
	file  fileKey
	entry Entry
}

// fileKey identifies one version of one file (its name, device, inode, size and
// modification time), so a corrupt file is logged once but a replacement that is corrupt
// again is logged again, and an entry is decoded once per version.
type fileKey struct {
	name     string
	dev, ino uint64
	mtime    int64
	size     int64
}

func keyOf(name string, fi fs.FileInfo) fileKey {
	k := fileKey{name: name, mtime: fi.ModTime().UnixNano(), size: fi.Size()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		k.dev, k.ino = uint64(st.Dev), uint64(st.Ino)
	}
	return k
}

// NewLocal opens the rendezvous directory dir, creating it (mode 0700) if needed, and checks
// that files can be created in it. A nil logger discards logs.
func NewLocal(dir string, logger *slog.Logger) (*Local, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if dir == "" {
		return nil, errors.New("discovery: run dir is empty")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, unusableDir(dir, err)
	}
	// Probe by creating a file: MkdirAll succeeds on an existing read-only directory.
	f, err := os.CreateTemp(dir, ".probe.*"+tmpSuffix)
	if err != nil {
		return nil, unusableDir(dir, err)
	}
	name := f.Name()
	cerr := f.Close()
	if err := errors.Join(cerr, os.Remove(name)); err != nil {
		return nil, unusableDir(dir, err)
	}
	// Another local user must not be able to plant entries (whose control socket paths the
	// CLI and the hook connect to): the directory must be ours, and private.
	fixed, err := owner.PrivateDir(dir)
	if err != nil {
		return nil, fmt.Errorf("discovery: run dir %s cannot be trusted: %w; remove it, or choose a directory of your own with --run-dir / PAF_RUN_DIR", dir, err)
	}
	if fixed {
		logger.Warn("discovery: run dir was writable by other users; made it private (0700)", "dir", dir)
	}
	return &Local{dir: dir, log: logger, warned: make(map[fileKey]struct{}), decoded: make(map[string]decodedEntry)}, nil
}

func unusableDir(dir string, err error) error {
	return fmt.Errorf("discovery: run dir %s is not usable: %w; fix its permissions or choose another with --run-dir / PAF_RUN_DIR", dir, err)
}

// Dir returns the rendezvous directory.
func (l *Local) Dir() string { return l.dir }

// Candidates returns the gossip addresses of the live peers in the directory, except Self.
// It implements [Source].
func (l *Local) Candidates(ctx context.Context) ([]Candidate, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	entries, err := l.Entries()
	if err != nil {
		return nil, err
	}
	out := make([]Candidate, 0, len(entries))
	for _, e := range entries {
		if l.Self != "" && e.ID == l.Self {
			continue
		}
		out = append(out, Candidate{ID: e.ID, Addr: e.Addr, Source: SourceLocal, Name: e.Name})
	}
	return out, nil
}

// Entries returns the entries of live peers only, sorted by ID. On the way it removes the
// entries of dead peers, and skips (logging once) entries it cannot read.
func (l *Local) Entries() ([]Entry, error) {
	des, err := os.ReadDir(l.dir)
	if err != nil {
		return nil, fmt.Errorf("discovery: read run dir %s: %w", l.dir, err)
	}
	var out []Entry
	seen := make(map[fileKey]struct{})
	names := make(map[string]bool, len(des))
	for _, de := range des {
		name := de.Name()
		names[name] = true
		switch {
		case strings.HasPrefix(name, "."):
			if strings.HasSuffix(name, tmpSuffix) {
				l.sweepTemp(name)
			} else if strings.HasSuffix(name, goneSuffix) {
				l.sweepGone(name)
			}
		case strings.HasSuffix(name, entrySuffix):
			if e, ok := l.readEntry(name, seen); ok {
				out = append(out, e)
			}
		}
	}
	l.forget(seen, names)
	return out, nil // ReadDir sorts by file name, and the name is the ID.
}

// readEntry returns the entry in file name if its owner is alive. It retries when the file is
// replaced under it, which is what an Update looks like from here.
func (l *Local) readEntry(name string, seen map[fileKey]struct{}) (Entry, bool) {
	path := filepath.Join(l.dir, name)
	for range openAttempts {
		e, st := l.inspect(path, name, seen)
		switch st {
		case entryLive:
			return e, true
		case entrySkip:
			return Entry{}, false
		}
	}
	return Entry{}, false
}

type entryState int

const (
	entrySkip  entryState = iota // dead, unreadable or corrupt
	entryLive                    // owner holds the lock; entry returned
	entryRetry                   // path now names another file; look again
)

func (l *Local) inspect(path, name string, seen map[fileKey]struct{}) (Entry, entryState) {
	// O_NOFOLLOW and O_NONBLOCK: a symlink or a FIFO planted in the dir must not redirect or
	// block the poll.
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			l.log.Debug("discovery: cannot open entry", "path", path, "err", err)
		}
		return Entry{}, entrySkip
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		l.log.Debug("discovery: skipping entry that is not a regular file", "path", path, "err", err)
		return Entry{}, entrySkip
	}
	key := keyOf(name, fi)
	if err := owner.Check(path, fi); err != nil {
		// Planted by another user (root could have, or the dir was shared before it was made
		// private): never trusted, never deleted by us.
		seen[key] = struct{}{}
		l.warnOnce(key, path, err)
		return Entry{}, entrySkip
	}
	// A shared lock, so that two readers never mistake each other for the owner (who holds an
	// exclusive one).
	free, err := flock(f, unix.LOCK_SH|unix.LOCK_NB)
	if err != nil {
		l.log.Debug("discovery: cannot lock entry", "path", path, "err", err)
		return Entry{}, entrySkip
	}
	if !free {
		// Its owner lives. The version of the file decoded before, if this is it.
		l.mu.Lock()
		d, ok := l.decoded[name]
		l.mu.Unlock()
		if ok && d.file == key {
			return d.entry, entryLive
		}
		e, err := readEntryFile(f, strings.TrimSuffix(name, entrySuffix))
		if err != nil {
			seen[key] = struct{}{}
			l.warnOnce(key, path, err)
			return Entry{}, entrySkip
		}
		l.mu.Lock()
		l.decoded[name] = decodedEntry{file: key, entry: e}
		l.mu.Unlock()
		return e, entryLive
	}
	e, derr := readEntryFile(f, strings.TrimSuffix(name, entrySuffix))
	// Nobody holds the owner's lock: the peer is gone. Delete only the file we examined; if the
	// path was replaced meanwhile (an Update, or a new peer with this ID), look at the new one.
	same, err := sameFile(f, path)
	switch {
	case err != nil:
		l.log.Debug("discovery: cannot stat entry", "path", path, "err", err)
		return Entry{}, entrySkip
	case !same:
		if _, err := os.Lstat(path); errors.Is(err, fs.ErrNotExist) {
			return Entry{}, entrySkip // its owner closed it
		}
		return Entry{}, entryRetry
	}
	// Between the check above and the removal a new peer could rename a fresh entry into place;
	// that takes a peer reusing the dead one's ID at that instant, and would only delay its
	// discovery until it next rewrites its entry.
	if err := l.bury(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
		l.log.Debug("discovery: cannot remove stale entry", "path", path, "err", err)
		return Entry{}, entrySkip
	}
	if derr != nil {
		l.log.Warn("discovery: removed unreadable entry of a dead peer", "path", path, "err", derr)
	} else {
		l.log.Debug("discovery: removed entry of a dead peer", "path", path, "id", e.ID, "pid", e.PID)
	}
	return Entry{}, entrySkip
}

// readEntryFile reads and decodes an entry, checking that it belongs to the file it is in.
func readEntryFile(f *os.File, id string) (Entry, error) {
	data, err := io.ReadAll(io.LimitReader(f, maxEntrySize+1))
	if err != nil {
		return Entry{}, fmt.Errorf("read: %w", err)
	}
	e, err := decodeEntry(data)
	if err != nil {
		return Entry{}, err
	}
	if e.ID != id {
		return Entry{}, fmt.Errorf("id %q does not match the file name", e.ID)
	}
	return e, nil
}

// ControlSocket returns the path of e's control socket after checking that it is where a peer
// of this run dir puts it (<dir>/<id>.sock) and is a socket owned by this user: an entry's
// path is never trusted as written. "" with a nil error means e has no control socket.
func (l *Local) ControlSocket(e Entry) (string, error) {
	if e.Control == "" {
		return "", nil
	}
	want := filepath.Join(l.dir, e.ID+".sock")
	if e.Control != want {
		return "", fmt.Errorf("discovery: entry %s names control socket %q, not %q: %w", e.ID, e.Control, want, owner.ErrNotOwned)
	}
	if err := owner.Socket(want); err != nil {
		return "", fmt.Errorf("discovery: control socket of %s: %w", e.ID, err)
	}
	return want, nil
}

// warnOnce logs a corrupt live entry the first time it is seen.
func (l *Local) warnOnce(key fileKey, path string, err error) {
	l.mu.Lock()
	_, done := l.warned[key]
	l.warned[key] = struct{}{}
	l.mu.Unlock()
	if done {
		return
	}
	if errors.Is(err, errFutureVersion) {
		l.log.Warn("discovery: skipping entry written by a newer paf-peer", "path", path, "err", err)
		return
	}
	l.log.Warn("discovery: skipping unreadable entry", "path", path, "err", err)
}

// forget drops the memory of corrupt files that are gone, and of the entries of files not
// in the directory (names) any more, so neither grows forever.
// It keeps keys added by a concurrent scan for files this scan did not see only until the next
// scan, which at worst logs such a file a second time.
func (l *Local) forget(seen map[fileKey]struct{}, names map[string]bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for k := range l.warned {
		if _, ok := seen[k]; !ok {
			delete(l.warned, k)
		}
	}
	for name := range l.decoded {
		if !names[name] {
			delete(l.decoded, name)
		}
	}
}

// sweepTemp removes a temp file left by a writer that died before renaming it into place.
func (l *Local) sweepTemp(name string) {
	path := filepath.Join(l.dir, name)
	fi, err := os.Lstat(path)
	if err != nil || !fi.Mode().IsRegular() || time.Since(fi.ModTime()) < tempGrace {
		return
	}
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0)
	if err != nil {
		return
	}
	defer f.Close()
	if free, err := flock(f, unix.LOCK_EX|unix.LOCK_NB); err != nil || !free {
		return
	}
	if same, err := sameFile(f, path); err != nil || !same {
		return
	}
	if err := os.Remove(path); err == nil {
		l.log.Debug("discovery: removed abandoned temp file", "path", path)
	}
}
