package store

import (
	"strings"

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
//
// It keeps, in memory, what is held by name and by source (HeldRecord.Src), counted in the
// bytes each record takes in the file (its key and value), so that Put can refuse a message
// past any of HeldLimits without reading the file.
//
// Lock order: wmu (held by every write: Put, Drop, Adopt), then mu (the usage counters).
type Held struct {
	db  *bbolt.DB
	now func() time.Time

	wmu sync.Mutex // serialises writes, so a quota check and its insert see the same usage

	mu    sync.Mutex
	usage heldUsage // guarded by mu
}

// heldUsage is what a Held keeps, by name and by source, in record bytes.
type heldUsage struct {
	bytes   int64
	names   map[string]nameUsage
	sources map[string]int64
}

type nameUsage struct {
	msgs  int
	bytes int64
}

// HeldRecord is what a holder keeps per message.
type HeldRecord struct {
	Msg      wire.Message `json:"m"`
	StoredAt time.Time    `json:"at"`
	Expires  time.Time    `json:"exp"`
	// Src is who the holder charges the message to: one or more keys separated by spaces
	// (ChargeKeys), the sending identity ("id:" and its fingerprint) and the sending
	// connection's address (see relay's source); a single address in records written before
	// identities, empty in records written before quotas per source existed.
	Src string `json:"src,omitempty"`
}

// HeldLimits bound what a Held keeps. A zero field is no limit.
type HeldLimits struct {
	// Bytes bounds everything held, for every name and source together.
	Bytes int64
	// NameBytes and NameMessages bound what is held for one recipient name.
	NameBytes    int64
	NameMessages int
	// SenderBytes bounds what is held on behalf of one sending identity (a charge key with
	// IdentityPrefix), AddrBytes on behalf of one sending address (any other charge key; see
	// HeldRecord.Src).
	SenderBytes int64
	AddrBytes   int64
}

// heldMeta is the part of a record that usage needs, decoded without keeping the body.
type heldMeta struct {
	Src string `json:"src"`
}

func srcOf(v []byte) string {
	var m heldMeta
	_ = json.Unmarshal(v, &m) // a damaged record is charged to no source
	return m.Src
}

// encodeHeld is the record Put keeps for m, stored at now.
func encodeHeld(m *wire.Message, now time.Time, ttl time.Duration, src string) ([]byte, error) {
	return json.Marshal(HeldRecord{Msg: *m, StoredAt: now, Expires: now.Add(ttl), Src: src})
}

// HeldSize is what Put charges against HeldLimits for m from src when its clock reads now:
// the bytes its record takes in the file.
func HeldSize(m *wire.Message, now time.Time, ttl time.Duration, src string) (int64, error) {
	rec, err := encodeHeld(m, now, ttl, src)
	if err != nil {
		return 0, err
	}
	return recordSize([]byte(m.ID), rec), nil
}

// recordSize is what a record is charged: the bytes of its key and value in the file.
func recordSize(k, v []byte) int64 { return int64(len(k) + len(v)) }

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

// recount rebuilds the usage counters from disk.
func (h *Held) recount() error {
	u := heldUsage{names: map[string]nameUsage{}, sources: map[string]int64{}}
	err := h.db.View(func(tx *bbolt.Tx) error {
		return tx.ForEach(func(name []byte, b *bbolt.Bucket) error {
			return b.ForEach(func(k, v []byte) error {
				u.add(string(name), srcOf(v), recordSize(k, v))
				return nil
			})
		})
	})
	if err != nil {
		return err
	}
	h.mu.Lock()
	h.usage = u
	h.mu.Unlock()
	return nil
}

// IdentityPrefix starts the charge key of a sending identity: "id:" and its fingerprint.
const IdentityPrefix = "id:"

// ChargeKeys splits a record's Src into the keys it is charged to.
func ChargeKeys(src string) []string {
	if src == "" {
		return []string{""}
	}
	return strings.Fields(src)
}

func (u *heldUsage) add(name, src string, size int64) {
	n := u.names[name]
	n.msgs++
	n.bytes += size
	u.names[name] = n
	for _, k := range ChargeKeys(src) {
		u.sources[k] += size
	}
	u.bytes += size
}

func (u *heldUsage) remove(name, src string, size int64) {
	n := u.names[name]
	n.msgs--
	n.bytes -= size
	if n.msgs <= 0 {
		delete(u.names, name)
	} else {
		u.names[name] = n
	}
	for _, k := range ChargeKeys(src) {
		if u.sources[k] -= size; u.sources[k] <= 0 {
			delete(u.sources, k)
		}
	}
	u.bytes -= size
}

// ErrQuota: a message is refused because keeping it would pass one of Put's limits. The
// error's text says which, and what the sender can do.
var ErrQuota = errors.New("quota reached")

// Put stores m for its recipient unless already held, charged to src. It refuses with
// ErrQuota when keeping it would pass one of lim's limits; a message already held is never
// refused (a retry, or a copy from another holder).
func (h *Held) Put(m *wire.Message, ttl time.Duration, src string, lim HeldLimits) (added bool, err error) {
	rec, err := encodeHeld(m, h.now(), ttl, src)
	if err != nil {
		return false, err
	}
	size := recordSize([]byte(m.ID), rec)
	h.wmu.Lock()
	defer h.wmu.Unlock()
	err = h.db.Update(func(tx *bbolt.Tx) error {
		if b := tx.Bucket([]byte(m.To)); b != nil && b.Get([]byte(m.ID)) != nil {
			return nil
		}
		if err := h.checkLimits(m.To, src, size, lim); err != nil {
			return err
		}
		b, err := tx.CreateBucketIfNotExists([]byte(m.To))
		if err != nil {
			return err
		}
		added = true
		return b.Put([]byte(m.ID), rec)
	})
	if err != nil {
		return false, err
	}
	if added {
		h.mu.Lock()
		h.usage.add(m.To, src, size)
		h.mu.Unlock()
	}
	return added, nil
}

// checkLimits refuses a record of size bytes for name from src that would pass lim. h.wmu is
// held, so the usage cannot change before the record is added.
func (h *Held) checkLimits(name, src string, size int64, lim HeldLimits) error {
	h.mu.Lock()
	n, total := h.usage.names[name], h.usage.bytes
	keys := ChargeKeys(src)
	used := make([]int64, len(keys))
	for i, k := range keys {
		used[i] = h.usage.sources[k]
	}
	h.mu.Unlock()
	switch {
	case lim.NameMessages > 0 && n.msgs >= lim.NameMessages:
		return fmt.Errorf("%w: %d messages are already waiting for %q here, the most this holder keeps for one name; send again after %s has come online and read them",
			ErrQuota, n.msgs, name, name)
	case lim.NameBytes > 0 && n.bytes+size > lim.NameBytes:
		return fmt.Errorf("%w: the messages waiting for %q here take %d bytes, and this one (%d) would pass the %d this holder keeps for one name; send again after %s has come online and read them, or send a shorter message",
			ErrQuota, name, n.bytes, size, lim.NameBytes, name)
	}
	for i, k := range keys {
		if fp, ok := strings.CutPrefix(k, IdentityPrefix); ok {
			if lim.SenderBytes > 0 && used[i]+size > lim.SenderBytes {
				return fmt.Errorf("%w: the stored messages sent by identity %s take %d bytes here, and this one (%d) would pass the %d this holder keeps for one sender; send again after their recipients have come online and collected them (or they expired)",
					ErrQuota, fp, used[i], size, lim.SenderBytes)
			}
		} else if lim.AddrBytes > 0 && used[i]+size > lim.AddrBytes {
			return fmt.Errorf("%w: the stored messages sent from %s take %d bytes here, and this one (%d) would pass the %d this holder keeps for one sending address; send again after their recipients have come online and collected them (or they expired)",
				ErrQuota, srcLabel(k), used[i], size, lim.AddrBytes)
		}
	}
	if lim.Bytes > 0 && total+size > lim.Bytes {
		return fmt.Errorf("%w: this holder already keeps %d bytes for offline names, and this message (%d) would pass its total of %d; send again later, or when %s is online",
			ErrQuota, total, size, lim.Bytes, name)
	}
	return nil
}

func srcLabel(src string) string {
	if src == "" {
		return "an unknown address"
	}
	return src
}

// HeldUsage is what a Held keeps, in record bytes.
type HeldUsage struct {
	Bytes int64 // everything
	// Names and Sources: by recipient name, and by charge key (ChargeKeys of HeldRecord.Src).
	Names   map[string]int64
	Sources map[string]int64
}

// Usage returns what is held, in the bytes Put's limits count.
func (h *Held) Usage() HeldUsage {
	h.mu.Lock()
	defer h.mu.Unlock()
	u := HeldUsage{Bytes: h.usage.bytes, Names: make(map[string]int64, len(h.usage.names)), Sources: make(map[string]int64, len(h.usage.sources))}
	for n, c := range h.usage.names {
		u.Names[n] = c.bytes
	}
	for s, b := range h.usage.sources {
		u.Sources[s] = b
	}
	return u
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
	out := make([]string, 0, len(h.usage.names))
	for n := range h.usage.names {
		out = append(out, n)
	}
	return out
}

// Totals is how many messages are held, for how many names.
func (h *Held) Totals() (msgs, names int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, c := range h.usage.names {
		msgs += c.msgs
		names++
	}
	return msgs, names
}

// Count is how many messages are held for name.
func (h *Held) Count(name string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.usage.names[name].msgs
}

// Drop forgets the given ids held for name.
func (h *Held) Drop(name string, ids []string) error {
	type dropped struct {
		src  string
		size int64
	}
	var gone []dropped
	h.wmu.Lock()
	defer h.wmu.Unlock()
	err := h.db.Update(func(tx *bbolt.Tx) error {
		gone = gone[:0]
		b := tx.Bucket([]byte(name))
		if b == nil {
			return nil
		}
		for _, id := range ids {
			if v := b.Get([]byte(id)); v != nil {
				gone = append(gone, dropped{srcOf(v), recordSize([]byte(id), v)})
				if err := b.Delete([]byte(id)); err != nil {
					return err
				}
			}
		}
		if k, _ := b.Cursor().First(); k == nil {
			return tx.DeleteBucket([]byte(name))
		}
		return nil
	})
	if err == nil && len(gone) > 0 {
		h.mu.Lock()
		for _, d := range gone {
			h.usage.remove(name, d.src, d.size)
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
// gone) into this store, keeping their expiry and source. The limits of Put do not apply:
// these messages were accepted already, and refusing them now would lose them; until they
// are handed over or expire, Put may refuse more.
func (h *Held) Adopt(path string) (int, error) {
	h.wmu.Lock()
	defer h.wmu.Unlock()
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
