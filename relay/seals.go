package relay

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/paf-mesh/paf-mesh/internal/keys"
	"github.com/paf-mesh/paf-mesh/mesh"
	"github.com/paf-mesh/paf-mesh/relay/wire"
)

// Sealing stored messages (SPEC section 7): a message kept by holders for a name that is not
// online is sealed to the identity that holds the name, or reserves it, or held it within the
// store TTL. A peer learns an identity's sealing key from its card (keys.SealCard), which
// every relay announces in the mesh tag TagCard; the card is bound to the peer id's
// fingerprint, so a peer cannot announce another identity's. What a peer has seen is kept in
// a book shared by the user's peers on the machine (StateRoot/seals.json), for the store TTL.

// TagCard is the mesh tag with the peer identity's sealing card, base64 (no padding).
const TagCard = "k"

// Announce sets the tags a relay announces: its address, its identity's sealing card and,
// for a holder, how many messages it holds (a peer restarted on a slot with held messages
// says so in its first metadata; holdLoop announces later changes).
func (r *Relay) Announce(m *mesh.Meta, addr string) {
	SetMetaAddr(m, addr)
	m.SetTag(TagCard, base64.RawStdEncoding.EncodeToString(r.cfg.Identity.Card()))
	if r.held != nil {
		msgs, names := r.held.Totals()
		SetMetaHeld(m, msgs, names)
	}
}

// cardOf is the sealing card m announces, if it announces a valid one of its own identity.
func cardOf(m mesh.Member) (keys.SealCard, bool) {
	t := m.Meta.Tag(TagCard)
	if t == "" {
		return keys.SealCard{}, false
	}
	b, err := base64.RawStdEncoding.DecodeString(t)
	if err != nil {
		return keys.SealCard{}, false
	}
	c, err := keys.ParseCard(b)
	if err != nil {
		return keys.SealCard{}, false
	}
	if fp, ok := keys.PeerIDFingerprint(m.ID); !ok || fp != c.Fingerprint {
		return keys.SealCard{}, false
	}
	return c, true
}

// sealFile is the book's file in the state root.
const sealFile = "seals.json"

// sealRefresh is how stale a book entry may grow before a sighting is written again.
const sealRefresh = time.Hour

// sealSaveEvery spaces out the book's writes. Each write reads, merges and rewrites the
// whole file with an fsync; written at every sighting, 50 sessions starting together made
// each peer write it about 50 times in a few seconds (a twentieth of their CPU; issue 18).
// A sighting waits at most this long (plus a hold round) for its write; Relay.Close writes
// what is left. What a crash in between loses is those sightings of this peer: names held
// by peers alive at that moment, which the other peers of this user record in the same
// file, and which this peer learns again when it next sees them. Until some peer of this
// user records it, a message to such a name after its holder left is stored unsealed, and
// send's result says so (notSealed).
const sealSaveEvery = 2 * time.Second

// sealBook remembers, per name, the card of the identity last seen holding it, and when.
type sealBook struct {
	path string
	ttl  time.Duration
	now  func() time.Time
	log  *slog.Logger

	mu      sync.Mutex
	entries map[string]sealEntry
	modTime time.Time // of the file when last read or written
	dirty   bool      // entries has sightings the file may not have
	saved   time.Time // when this peer last wrote the file (real clock)
}

type sealEntry struct {
	Card keys.Raw  `json:"card"`
	Seen time.Time `json:"seen"`

	// encoded is Card as TagCard announces it, when this peer recorded it from a sighting:
	// observe compares every member's tag with it at every round.
	encoded string
}

// tag is Card as TagCard announces it.
func (e sealEntry) tag() string {
	if e.encoded != "" {
		return e.encoded
	}
	return base64.RawStdEncoding.EncodeToString([]byte(e.Card))
}

func newSealBook(root string, ttl time.Duration, now func() time.Time, log *slog.Logger) *sealBook {
	b := &sealBook{path: filepath.Join(root, sealFile), ttl: ttl, now: now, log: log, entries: map[string]sealEntry{}}
	b.mu.Lock()
	b.reloadLocked()
	b.mu.Unlock()
	return b
}

// observe records the cards of the peers in members that hold a name, and writes the book if
// it knows something the file may not and its last write is sealSaveEvery old. holdLoop calls
// it every round, which writes a sighting held back.
func (b *sealBook) observe(members []mesh.Member) {
	now := b.now()
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, m := range members {
		if m.Meta.Name == "" || (m.State != mesh.MemberAlive && m.State != mesh.MemberSuspect) {
			continue
		}
		e, had := b.entries[m.Meta.Name]
		if had && now.Sub(e.Seen) < sealRefresh && m.Meta.Tag(TagCard) == e.tag() {
			continue // known: checked when it was recorded
		}
		c, ok := cardOf(m)
		if !ok {
			continue
		}
		b.entries[m.Meta.Name] = sealEntry{Card: keys.Raw(c.Bytes()), Seen: now, encoded: m.Meta.Tag(TagCard)}
		b.dirty = true
	}
	if b.dirty && time.Since(b.saved) >= sealSaveEvery {
		b.saveLocked()
	}
}

// pending says whether the book knows something the file may not: holdLoop then comes back
// within sealSaveEvery to write it.
func (b *sealBook) pending() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.dirty
}

// flush writes the book now if it knows something the file may not (Relay.Close).
func (b *sealBook) flush() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.dirty {
		b.saveLocked()
	}
}

// lookup returns the card of the identity last seen holding name within the TTL.
func (b *sealBook) lookup(name string) (keys.SealCard, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	e, ok := b.entries[name]
	if !ok || b.now().Sub(e.Seen) >= b.ttl {
		b.reloadLocked() // another peer of this user may have seen it
		if e, ok = b.entries[name]; !ok || b.now().Sub(e.Seen) >= b.ttl {
			return keys.SealCard{}, false
		}
	}
	c, err := keys.ParseCard([]byte(e.Card))
	return c, err == nil
}

// reloadLocked merges the file into the entries if it changed since last read.
func (b *sealBook) reloadLocked() {
	st, err := os.Stat(b.path)
	if err != nil || st.ModTime().Equal(b.modTime) {
		return
	}
	disk, err := readSeals(b.path)
	if err != nil {
		b.log.Warn("the book of sealing keys is unreadable; it is rewritten from what this peer sees", "path", b.path, "err", err)
		return
	}
	b.modTime = st.ModTime()
	mergeSeals(b.entries, disk)
}

// saveLocked merges the file and the entries, drops entries past the TTL, and writes the
// file atomically. Peers of one user on one machine share it: a write that loses a race with
// another only loses that peer's latest sightings, which it writes again at its next.
func (b *sealBook) saveLocked() {
	// Written or not, the next write waits its turn: a file that cannot be written is not
	// tried (and warned about) at every round.
	b.dirty, b.saved = false, time.Now()
	if disk, err := readSeals(b.path); err == nil {
		mergeSeals(b.entries, disk)
	}
	now := b.now()
	maps.DeleteFunc(b.entries, func(_ string, e sealEntry) bool { return now.Sub(e.Seen) >= b.ttl })
	data, err := json.Marshal(b.entries)
	if err == nil {
		err = writeFileAtomic(b.path, data)
	}
	if err != nil {
		b.log.Warn("could not write the book of sealing keys; messages stored for names seen only by this peer may go unsealed after it stops", "path", b.path, "err", err)
		return
	}
	if st, err := os.Stat(b.path); err == nil {
		b.modTime = st.ModTime()
	}
}

// maxSealFile bounds the book's file as read: far above any real mesh's names.
const maxSealFile = 4 << 20

func readSeals(path string) (map[string]sealEntry, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return map[string]sealEntry{}, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var m map[string]sealEntry
	if err := json.NewDecoder(io.LimitReader(f, maxSealFile)).Decode(&m); err != nil {
		return nil, fmt.Errorf("decode %s: %w", path, err)
	}
	for name := range m {
		if n, err := mesh.NormalizeName(name); err != nil || n != name {
			delete(m, name)
		}
	}
	return m, nil
}

// mergeSeals keeps, per name, the later sighting of into and from.
func mergeSeals(into, from map[string]sealEntry) {
	for name, e := range from {
		if cur, ok := into[name]; !ok || e.Seen.After(cur.Seen) {
			if ok && cur.Card == e.Card {
				e.encoded = cur.encoded
			}
			into[name] = e
		}
	}
}

func writeFileAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// cardFor is the card to seal a message for route's name to: its owner's (online, or a
// failed peer reserving it), else the book's.
func (r *Relay) cardFor(route mesh.Route) (keys.SealCard, bool) {
	if route.Owner.ID != "" {
		if c, ok := cardOf(route.Owner); ok {
			return c, true
		}
	}
	if o, ok := r.dir.Owner(route.Name); ok {
		if c, ok := cardOf(o); ok {
			return c, true
		}
	}
	r.seals.observe(r.dir.Members())
	return r.seals.lookup(route.Name)
}

// notSealed is the Result.Reason of a message stored unsealed.
func notSealed(name string) string {
	return fmt.Sprintf("not sealed: no peer of yours has seen %s's identity yet, so its holders can read this message", name)
}

// sealForStore returns what to store for m, sent to route's name: m sealed to the name's
// identity when it is known, else m itself and the reason to tell the sender.
func (r *Relay) sealForStore(m *Message, route mesh.Route) (*Message, string, error) {
	if m.SealedTo != "" || m.Kind == KindSystem {
		return m, "", nil
	}
	card, ok := r.cardFor(route)
	if !ok {
		return m, notSealed(route.Name), nil
	}
	s, err := wire.SealMessage(m, card, r.cfg.Identity)
	if err != nil {
		return nil, "", err
	}
	return s, "", nil
}
