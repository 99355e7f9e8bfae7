package store

import (
	"github.com/paf-mesh/paf-mesh/relay/wire"

	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"go.etcd.io/bbolt"
	"golang.org/x/sys/unix"
)

// An Outbox keeps, on disk, the messages a sending peer accepted and has not yet seen
// delivered or stored (SPEC section 3, "queued"): a message whose first attempt may have left
// the process (a lost acknowledgement, a partition, a timeout) is kept here and retried with
// the same id until the recipient's peer or its holders confirm it.
//
// Each peer has its own file, root/outbox/<peer id>.db, locked (bbolt's flock) while the peer
// runs. Entries are keyed by a sequence number, so they read back in the order they were
// queued, which keeps each sender's order through retries. A file whose lock no process holds
// was left by a peer that is gone (crashed, or a brief CLI peer that exited with messages it
// could not hand over): another peer of the same state dir takes it over (OpenOrphanOutbox,
// then Remove once it has the entries in its own keeping).
//
// Methods are safe for concurrent use.
type Outbox struct {
	db   *bbolt.DB
	path string

	mu   sync.Mutex
	next uint64 // the next sequence number; guarded by mu
}

// QueuedMsg is one entry of an Outbox.
type QueuedMsg struct {
	Seq      uint64
	Msg      wire.Message
	QueuedAt time.Time
}

var bucketQueued = []byte("queued")

// outboxDir is where the outboxes of a state root live.
func outboxDir(root string) string { return filepath.Join(root, "outbox") }

// OpenOutbox opens (creating it if needed) the outbox of peer id under root and locks it for
// as long as it is open.
func OpenOutbox(root, id string) (*Outbox, error) {
	if id == "" || strings.ContainsAny(id, `/\.`) {
		return nil, fmt.Errorf("relay: outbox of peer %q: not a file name", id)
	}
	dir := outboxDir(root)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("relay: outbox dir: %w", err)
	}
	return openOutbox(filepath.Join(dir, id+".db"), 2*time.Second)
}

func openOutbox(path string, timeout time.Duration) (*Outbox, error) {
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: timeout})
	if err != nil {
		return nil, fmt.Errorf("relay: open outbox %s: %w", path, err)
	}
	o := &Outbox{db: db, path: path}
	err = db.Update(func(tx *bbolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketQueued)
		if err != nil {
			return err
		}
		if k, _ := b.Cursor().Last(); len(k) == 8 {
			o.next = binary.BigEndian.Uint64(k) + 1
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("relay: open outbox %s: %w", path, err)
	}
	return o, nil
}

// Path is the outbox's file.
func (o *Outbox) Path() string { return o.path }

// Put appends m, queued at at, durably, and returns its sequence number.
func (o *Outbox) Put(m *wire.Message, at time.Time) (uint64, error) {
	v := binary.BigEndian.AppendUint64(nil, uint64(at.UnixMilli()))
	v = wire.AppendMessageAs(v, wire.ReqDeliver, m, false)
	o.mu.Lock()
	defer o.mu.Unlock()
	seq := o.next
	err := o.db.Update(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketQueued).Put(binary.BigEndian.AppendUint64(nil, seq), v)
	})
	if err != nil {
		return 0, fmt.Errorf("relay: queue message %s in %s: %w", m.ID, o.path, err)
	}
	o.next++
	return seq, nil
}

// Delete removes the entries seqs (delivered or stored); unknown ones are ignored.
func (o *Outbox) Delete(seqs ...uint64) error {
	return o.db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketQueued)
		for _, s := range seqs {
			if err := b.Delete(binary.BigEndian.AppendUint64(nil, s)); err != nil {
				return err
			}
		}
		return nil
	})
}

// List returns the entries in the order they were queued. An entry that does not decode (a
// damaged file) is returned as an error after the others: it is never guessed at.
func (o *Outbox) List() ([]QueuedMsg, error) {
	var out []QueuedMsg
	var bad []error
	err := o.db.View(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketQueued).ForEach(func(k, v []byte) error {
			if len(k) != 8 || len(v) < 8 {
				bad = append(bad, fmt.Errorf("%w: outbox entry of %d bytes", wire.ErrBadMessage, len(v)))
				return nil
			}
			m, _, err := wire.DecodeMessageAs(v[8:], wire.ReqDeliver, math.MaxInt32)
			if err != nil {
				bad = append(bad, err)
				return nil
			}
			out = append(out, QueuedMsg{Seq: binary.BigEndian.Uint64(k), Msg: *m, QueuedAt: time.UnixMilli(int64(binary.BigEndian.Uint64(v)))})
			return nil
		})
	})
	if err == nil && len(bad) > 0 {
		err = fmt.Errorf("relay: outbox %s: %d damaged entries left in place: %w", o.path, len(bad), errors.Join(bad...))
	}
	return out, err
}

// Len is the number of entries.
func (o *Outbox) Len() int {
	n := 0
	_ = o.db.View(func(tx *bbolt.Tx) error {
		n = tx.Bucket(bucketQueued).Stats().KeyN
		return nil
	})
	return n
}

// Close closes the file, and removes it when it is empty: an outbox left on disk is one that
// still has messages for another peer to take over.
func (o *Outbox) Close() error {
	empty := o.Len() == 0
	if err := o.db.Close(); err != nil {
		return err
	}
	if empty {
		if err := os.Remove(o.path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	return nil
}

// Remove closes the outbox and deletes its file: its entries have been taken over.
func (o *Outbox) Remove() error {
	if err := o.db.Close(); err != nil {
		return err
	}
	return os.Remove(o.path)
}

// OrphanOutboxes lists the outbox files under root that no live process holds (their lock is
// free), other than self's, oldest name first. Another peer may take one between this call
// and OpenOrphanOutbox, which then fails.
func OrphanOutboxes(root, self string) []string {
	ents, err := os.ReadDir(outboxDir(root))
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range ents {
		name := e.Name()
		if !e.Type().IsRegular() || !strings.HasSuffix(name, ".db") || name == self+".db" {
			continue
		}
		path := filepath.Join(outboxDir(root), name)
		if lockFree(path) {
			out = append(out, path)
		}
	}
	sort.Strings(out)
	return out
}

// lockFree reports whether no process holds path's flock (bbolt's lock of an open file).
func lockFree(path string) bool {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return false
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		return false
	}
	_ = unix.Flock(int(f.Fd()), unix.LOCK_UN)
	return true
}

// OpenOrphanOutbox opens an outbox that OrphanOutboxes listed, failing at once when another
// process has it (its owner, or another peer taking it over).
func OpenOrphanOutbox(path string) (*Outbox, error) {
	return openOutbox(path, 100*time.Millisecond)
}
