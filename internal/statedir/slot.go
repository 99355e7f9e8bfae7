package statedir

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// ErrBusy means a live peer holds the slot's lock.
var ErrBusy = errors.New("statedir: slot is in use")

const (
	peersDir = "peers"
	lockName = "lock"
	// newPrefix marks a slot under construction; names starting with '.' are never slots.
	newPrefix = ".new-"
	// newAttempts bounds retries on the (astronomically unlikely) clash of random slot names.
	newAttempts = 5
)

// Slot is one peer's private directory under root/peers/, locked for as long as it is open.
// Its methods may be called concurrently.
type Slot struct {
	root    string
	dir     string
	adopted bool

	mu   sync.Mutex
	lock *os.File // holds the flock; nil once closed
}

// Open picks this peer's slot under root/peers/: the first existing slot whose lock is free
// (adopting what a dead peer left: held messages, forwards, inbox), else a new one named by a
// fresh random id. The slot stays locked (flock on root/peers/<slot>/lock) until Close.
// root is created 0700 if missing; an unwritable root is a clear one-line error that names the
// path and says to fix permissions or choose another dir with --state-dir / PAF_STATE_DIR.
func Open(root string) (*Slot, error) {
	peers := filepath.Join(root, peersDir)
	if err := prepare(root, peers); err != nil {
		return nil, err
	}
	names, err := slotNames(peers)
	if err != nil {
		return nil, err
	}
	for _, name := range names {
		dir := filepath.Join(peers, name)
		f, err := lockSlot(dir)
		if err != nil {
			// Busy, gone meanwhile, or not a slot: none of these stops us from making our own.
			continue
		}
		return &Slot{root: root, dir: dir, adopted: true, lock: f}, nil
	}
	return newSlot(root, peers)
}

// prepare creates root and root/peers and checks that files can be created there, because
// MkdirAll succeeds on an existing directory we cannot write.
func prepare(root, peers string) error {
	if err := os.MkdirAll(root, 0o700); err != nil {
		return notWritable(root, err)
	}
	if err := os.MkdirAll(peers, 0o700); err != nil {
		return notWritable(root, err)
	}
	f, err := os.CreateTemp(peers, ".probe-*")
	if err != nil {
		return notWritable(root, err)
	}
	if err := errors.Join(f.Close(), os.Remove(f.Name())); err != nil {
		return notWritable(root, err)
	}
	return nil
}

func notWritable(root string, err error) error {
	return fmt.Errorf("statedir: state dir %s is not writable: %w; fix its permissions or choose another dir with --state-dir / PAF_STATE_DIR", root, err)
}

// slotNames lists the candidate slot names in peers, sorted.
func slotNames(peers string) ([]string, error) {
	des, err := os.ReadDir(peers)
	if err != nil {
		return nil, fmt.Errorf("statedir: list slots in %s: %w", peers, err)
	}
	var names []string
	for _, de := range des {
		if de.IsDir() && !strings.HasPrefix(de.Name(), ".") {
			names = append(names, de.Name())
		}
	}
	return names, nil
}

// newSlot builds a slot under a dot name, locks it, and only then renames it into place, so no
// other peer can see it unlocked and take it.
func newSlot(root, peers string) (*Slot, error) {
	for range newAttempts {
		id := randomID()
		tmp := filepath.Join(peers, newPrefix+id)
		dir := filepath.Join(peers, id)
		if _, err := os.Lstat(dir); err == nil {
			continue // rename would replace an empty directory of that name
		}
		f, err := buildSlot(tmp)
		if err != nil {
			return nil, fmt.Errorf("statedir: create slot in %s: %w", peers, err)
		}
		if err := os.Rename(tmp, dir); err != nil {
			_ = f.Close()
			_ = os.RemoveAll(tmp)
			if errors.Is(err, fs.ErrExist) || errors.Is(err, unix.ENOTEMPTY) {
				continue
			}
			return nil, fmt.Errorf("statedir: create slot %s: %w", dir, err)
		}
		if err := syncDir(peers); err != nil {
			_ = f.Close()
			return nil, fmt.Errorf("statedir: create slot %s: %w", dir, err)
		}
		return &Slot{root: root, dir: dir, lock: f}, nil
	}
	return nil, fmt.Errorf("statedir: create slot in %s: no free name after %d tries", peers, newAttempts)
}

// buildSlot makes dir with a locked lock file in it.
func buildSlot(dir string) (*os.File, error) {
	if err := os.Mkdir(dir, 0o700); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(dir, lockName), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	if ok, err := tryLock(f); err != nil || !ok {
		_ = f.Close()
		_ = os.RemoveAll(dir)
		if err == nil {
			err = ErrBusy // nobody else knows this file; only a hostile process could hold it
		}
		return nil, err
	}
	return f, nil
}

// randomID names a new slot; 64 random bits make clashes between peers negligible.
func randomID() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (it aborts the program instead)
	return hex.EncodeToString(b[:])
}

// Dir returns the slot's directory, root/peers/<slot>, mode 0700.
func (s *Slot) Dir() string { return s.dir }

// Root returns the shared state dir the slot lives in.
func (s *Slot) Root() string { return s.root }

// Adopted reports whether the slot existed before: it was left by a dead peer and may hold its
// messages, forwards and inbox.
func (s *Slot) Adopted() bool { return s.adopted }

// Close releases the slot's lock, leaving its contents for the next peer. It is idempotent.
func (s *Slot) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lock == nil {
		return nil
	}
	err := s.lock.Close()
	s.lock = nil
	if err != nil {
		return fmt.Errorf("statedir: close slot %s: %w", s.dir, err)
	}
	return nil
}

// Orphans lists other slots whose lock is free right now (peers that died), so a running peer
// can adopt their contents later; it does not lock them. The paths are full slot directories,
// sorted, ready for [LockOrphan]. A missing root has no orphans.
//
// Probing takes each free lock for an instant, so a peer calling Open at that very moment may
// pass over that slot and make a new one; nothing is lost, the slot stays an orphan.
func Orphans(root string) ([]string, error) {
	peers := filepath.Join(root, peersDir)
	names, err := slotNames(peers)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, name := range names {
		dir := filepath.Join(peers, name)
		f, err := lockSlot(dir)
		if err != nil {
			continue
		}
		_ = f.Close()
		out = append(out, dir)
	}
	return out, nil
}

// LockOrphan tries to take an orphan slot's lock (for adopting its files); ErrBusy if held.
// dir is a path as returned by [Orphans]. The returned Slot reports Adopted.
func LockOrphan(dir string) (*Slot, error) {
	dir = filepath.Clean(dir)
	f, err := lockSlot(dir)
	if err != nil {
		if errors.Is(err, ErrBusy) {
			return nil, fmt.Errorf("%w: %s", ErrBusy, dir)
		}
		return nil, fmt.Errorf("statedir: lock slot %s: %w", dir, err)
	}
	return &Slot{root: filepath.Dir(filepath.Dir(dir)), dir: dir, adopted: true, lock: f}, nil
}
