package discovery

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

var (
	// ErrIDInUse means a live peer already advertises the ID.
	ErrIDInUse = errors.New("discovery: id is already advertised by a live peer")
	// ErrClosed is returned by [Advert.Update] after [Advert.Close].
	ErrClosed = errors.New("discovery: advert is closed")
	// ErrWatchUnsupported is returned by [Local.Watch] where the system cannot watch a
	// directory (not Linux).
	ErrWatchUnsupported = errors.New("discovery: watching the run dir is not supported here")
)

// Advert is this peer's entry in the rendezvous directory. It holds the entry's lock, which is
// what tells readers the peer is alive, until Close or the death of the process. Its methods
// may be called concurrently.
type Advert struct {
	dir  string
	id   string
	path string

	mu      sync.Mutex
	f       *os.File // open, locked entry file; nil once closed
	started time.Time
}

// Advertise publishes e as <e.ID>.json and keeps it locked until [Advert.Close]. e.ID must be
// usable as a file name and e.Addr must be host:port. Advertise sets Version, and fills PID,
// Host and Started when they are zero. It fails with [ErrIDInUse] when a live peer already
// advertises e.ID.
func (l *Local) Advertise(e Entry) (*Advert, error) {
	e = withDefaults(e, time.Time{})
	if err := checkEntry(e); err != nil {
		return nil, fmt.Errorf("discovery: advertise: %w", err)
	}
	path := filepath.Join(l.dir, e.ID+entrySuffix)
	// A check, not a guarantee: two peers advertising one ID at the same instant can both pass
	// it. IDs are unique per peer run, so this only catches mistakes such as a second Advertise.
	if live, err := heldByOther(path); err != nil {
		return nil, fmt.Errorf("discovery: advertise %s: %w", e.ID, err)
	} else if live {
		return nil, fmt.Errorf("%w: %s", ErrIDInUse, e.ID)
	}
	f, err := writeEntryFile(l.dir, path, e)
	if err != nil {
		return nil, fmt.Errorf("discovery: advertise %s: %w", e.ID, err)
	}
	return &Advert{dir: l.dir, id: e.ID, path: path, f: f, started: e.Started}, nil
}

// Path returns the entry file's path.
func (a *Advert) Path() string { return a.path }

// Update rewrites the entry atomically, keeping the lock: the new file is locked before it
// replaces the old one, whose lock is released only afterwards. e.ID must be empty or the
// advertised ID; a zero Started keeps the original one.
func (a *Advert) Update(e Entry) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.f == nil {
		return ErrClosed
	}
	if e.ID != "" && e.ID != a.id {
		return fmt.Errorf("discovery: update %s: cannot change the id to %q; close and advertise anew", a.id, e.ID)
	}
	e.ID = a.id
	e = withDefaults(e, a.started)
	if err := checkEntry(e); err != nil {
		return fmt.Errorf("discovery: update %s: %w", a.id, err)
	}
	f, err := writeEntryFile(a.dir, a.path, e)
	if err != nil {
		return fmt.Errorf("discovery: update %s: %w", a.id, err)
	}
	old := a.f
	a.f = f
	a.started = e.Started
	// The old file is unlinked already; closing it releases its lock and nothing else.
	_ = old.Close()
	return nil
}

// Close removes the entry and releases the lock. It is idempotent. If the path has meanwhile
// been taken over by another file, that file is left alone.
func (a *Advert) Close() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.f == nil {
		return nil
	}
	var errs []error
	// Remove while still holding the lock, so no reader can take the entry for a dead peer's.
	if same, err := sameFile(a.f, a.path); err != nil {
		errs = append(errs, err)
	} else if same {
		if err := os.Remove(a.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	errs = append(errs, a.f.Close())
	a.f = nil
	if err := errors.Join(errs...); err != nil {
		// The lock is released either way, so readers will clean up whatever is left.
		return fmt.Errorf("discovery: close advert %s: %w", a.id, err)
	}
	return nil
}

// abandon simulates the death of the advertiser for tests: the lock goes, the file stays.
func (a *Advert) abandon() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.f != nil {
		_ = a.f.Close()
		a.f = nil
	}
}

// withDefaults fills the fields the advertiser knows better than its caller.
func withDefaults(e Entry, started time.Time) Entry {
	e.Version = entryVersion
	if e.PID == 0 {
		e.PID = os.Getpid()
	}
	if e.Host == "" {
		if h, err := os.Hostname(); err == nil {
			e.Host = h
		}
	}
	if e.Started.IsZero() {
		e.Started = started
	}
	if e.Started.IsZero() {
		e.Started = time.Now()
	}
	// Strip the monotonic reading so the entry equals what readers decode.
	e.Started = e.Started.Round(0)
	return e
}

// heldByOther reports whether the file at path exists and is locked by a live owner.
func heldByOther(path string) (bool, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer f.Close()
	free, err := flock(f, unix.LOCK_SH|unix.LOCK_NB)
	if err != nil {
		return false, err
	}
	return !free, nil
}

// writeEntryFile writes e to a temp file in dir, locks it, fsyncs it and renames it to path.
// The returned file holds the lock; the caller keeps it open for as long as the peer lives.
// The directory is not fsynced: the run dir only matters while its peers run, and a crash
// that could lose the rename also kills every peer whose entry it holds.
func writeEntryFile(dir, path string, e Entry) (_ *os.File, err error) {
	data, err := encodeEntry(e)
	if err != nil {
		return nil, err
	}
	f, err := os.CreateTemp(dir, "."+e.ID+".*"+tmpSuffix) // mode 0600
	if err != nil {
		return nil, fmt.Errorf("create temp entry: %w", err)
	}
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(f.Name())
		}
	}()
	// Blocking, not LOCK_NB: nobody else has reason to lock a fresh temp file, except a
	// sweeping reader probing an old one, which lets go at once.
	if _, err := flock(f, unix.LOCK_EX); err != nil {
		return nil, fmt.Errorf("lock %s: %w", f.Name(), err)
	}
	if _, err := f.Write(data); err != nil {
		return nil, fmt.Errorf("write %s: %w", f.Name(), err)
	}
	if err := f.Sync(); err != nil {
		return nil, fmt.Errorf("sync %s: %w", f.Name(), err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return nil, fmt.Errorf("rename into place: %w", err)
	}
	return f, nil
}
