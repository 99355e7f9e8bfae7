package store

import (
	"github.com/paf-mesh/paf-mesh/relay/wire"

	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"go.etcd.io/bbolt"
)

// Held keeps, on disk, the messages this peer holds for names that
// are offline. It lives in the peer's own state slot (held.db): one bucket
// per recipient name, keyed by message id. Ids are ULIDs, so a bucket reads
// in send order (and a sender's ids are monotonic, so its messages keep
// their order exactly).
type Held struct {
	db  *bbolt.DB
	now func() time.Time

	mu     sync.Mutex
	counts map[string]int // name -> messages held
}

// HeldRecord is what a holder keeps per message.
type HeldRecord struct {
	Msg      wire.Message `json:"m"`
	StoredAt time.Time    `json:"at"`
	Expires  time.Time    `json:"exp"`
}

const heldFile = "held.db"

// OpenHeld opens (creating it if needed) dir/held.db; now is the clock of expiry.
func OpenHeld(dir string, now func() time.Time) (*Held, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("relay: held store dir: %w", err)
	}
	path := filepath.Join(dir, heldFile)
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: 2 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("relay: open held messages %s: %w", path, err)
	}
	h := &Held{db: db, now: now}
	if err := h.recount(); err != nil {
		db.Close()
		return nil, err
	}
	return h, nil
}

// recount rebuilds the per-name counts from disk.
func (h *Held) recount() error {
	counts := map[string]int{}
	err := h.db.View(func(tx *bbolt.Tx) error {
		return tx.ForEach(func(name []byte, b *bbolt.Bucket) error {
			if n := b.Stats().KeyN; n > 0 {
				counts[string(name)] = n
			}
			return nil
		})
	})
	if err != nil {
		return err
	}
	h.mu.Lock()
	h.counts = counts
	h.mu.Unlock()
	return nil
}

// ErrQuota: the recipient already has as many messages held here as Put's quota allows.
var ErrQuota = errors.New("quota reached")

// Put stores m for its recipient unless already held. It refuses with
// ErrQuota when the recipient already has quota messages held here.
func (h *Held) Put(m *wire.Message, ttl time.Duration, quota int) (added bool, err error) {
	now := h.now()
	rec, err := json.Marshal(HeldRecord{Msg: *m, StoredAt: now, Expires: now.Add(ttl)})
	if err != nil {
		return false, err
	}
	err = h.db.Update(func(tx *bbolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists([]byte(m.To))
		if err != nil {
			return err
		}
		if b.Get([]byte(m.ID)) != nil {
			return nil
		}
		if quota > 0 && b.Stats().KeyN >= quota {
			return fmt.Errorf("%w: %d messages are already waiting for %q here", ErrQuota, quota, m.To)
		}
		added = true
		return b.Put([]byte(m.ID), rec)
	})
	if err == nil && added {
		h.mu.Lock()
		h.counts[m.To]++
		h.mu.Unlock()
	}
	return added, err
}

// List returns the records held for name, oldest first.
func (h *Held) List(name string) ([]HeldRecord, error) {
	var out []HeldRecord
	err := h.db.View(func(tx *bbolt.Tx) error {
		b := tx.Bucket([]byte(name))
		if b == nil {
			return nil
		}
		return b.ForEach(func(_, v []byte) error {
			var r HeldRecord
			if err := json.Unmarshal(v, &r); err != nil {
				return nil // a damaged record must not block the others
			}
			out = append(out, r)
			return nil
		})
	})
	return out, err
}

// Names returns the recipients this peer holds messages for.
func (h *Held) Names() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]string, 0, len(h.counts))
	for n, c := range h.counts {
		if c > 0 {
			out = append(out, n)
		}
	}
	return out
}

// Totals is how many messages are held, for how many names.
func (h *Held) Totals() (msgs, names int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, c := range h.counts {
		if c > 0 {
			msgs += c
			names++
		}
	}
	return msgs, names
}

// Count is how many messages are held for name.
func (h *Held) Count(name string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.counts[name]
}

// Drop forgets the given ids held for name.
func (h *Held) Drop(name string, ids []string) error {
	removed := 0
	err := h.db.Update(func(tx *bbolt.Tx) error {
		removed = 0
		b := tx.Bucket([]byte(name))
		if b == nil {
			return nil
		}
		for _, id := range ids {
			if b.Get([]byte(id)) != nil {
				if err := b.Delete([]byte(id)); err != nil {
					return err
				}
				removed++
			}
		}
		if k, _ := b.Cursor().First(); k == nil {
			return tx.DeleteBucket([]byte(name))
		}
		return nil
	})
	if err == nil && removed > 0 {
		h.mu.Lock()
		h.counts[name] -= removed
		if h.counts[name] <= 0 {
			delete(h.counts, name)
		}
		h.mu.Unlock()
	}
	return err
}

// Expired returns records past their expiry, across all names.
func (h *Held) Expired() ([]HeldRecord, error) {
	now := h.now()
	var out []HeldRecord
	err := h.db.View(func(tx *bbolt.Tx) error {
		return tx.ForEach(func(_ []byte, b *bbolt.Bucket) error {
			return b.ForEach(func(_, v []byte) error {
				var r HeldRecord
				if json.Unmarshal(v, &r) == nil && !r.Expires.After(now) {
					out = append(out, r)
				}
				return nil
			})
		})
	})
	return out, err
}

// Adopt merges every record of another held.db (left by a peer that is
// gone) into this store, keeping their expiry.
func (h *Held) Adopt(path string) (int, error) {
	other, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: time.Second, ReadOnly: true})
	if err != nil {
		return 0, err
	}
	defer other.Close()
	n := 0
	err = other.View(func(otx *bbolt.Tx) error {
		return h.db.Update(func(tx *bbolt.Tx) error {
			return otx.ForEach(func(name []byte, ob *bbolt.Bucket) error {
				b, err := tx.CreateBucketIfNotExists(name)
				if err != nil {
					return err
				}
				return ob.ForEach(func(k, v []byte) error {
					if b.Get(k) != nil {
						return nil
					}
					n++
					return b.Put(append([]byte(nil), k...), append([]byte(nil), v...))
				})
			})
		})
	})
	if err != nil {
		return 0, err
	}
	return n, h.recount()
}

// Close closes the file.
func (h *Held) Close() error { return h.db.Close() }
