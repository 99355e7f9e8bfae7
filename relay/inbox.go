package relay

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"go.etcd.io/bbolt"
)

// An inbox is the persistent unread mailbox of one name, in its own bbolt
// file under the state root (inbox/<name>.db), so that whichever process
// holds the name next, on this machine, finds what was left unread.
//
// Writes go through one writer goroutine that commits everything queued in
// one transaction (one fsync) and only then acknowledges each message: a
// message acknowledged to its sender is on disk, and a burst costs one fsync
// instead of one per message. Arrival order is kept, so messages from one
// sender, which arrive in send order, stay in send order.
type inbox struct {
	name      string
	db        *bbolt.DB
	filesDir  string
	largeBody int
	now       func() time.Time

	mu        sync.Mutex
	pending   []pendingMsg
	unread    int
	changed   chan struct{} // closed and replaced whenever unread changes
	closed    bool
	lastPrune time.Time // guarded by the db's write lock (only take prunes)
	wake      chan struct{}
	done      chan struct{}
}

type pendingMsg struct {
	m    *Message
	done func(error) // called once the message is durable (or refused)
}

var (
	bucketUnread = []byte("unread")
	bucketSeen   = []byte("seen")
)

// seenRetention is how long message ids are remembered for de-duplication:
// longer than a stored message can live (30 days) so a late re-delivery of a
// message already shown is still recognised.
const seenRetention = 31 * 24 * time.Hour

// previewLen is how much of a large body the agent sees inline.
const previewLen = 1000

func openInbox(root, name string, largeBody int, now func() time.Time) (*inbox, error) {
	dir := filepath.Join(root, "inbox")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("relay: inbox dir: %w", err)
	}
	path := filepath.Join(dir, name+".db")
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{
		Timeout: 2 * time.Second,
		// The freelist is rebuilt at open instead of written on every
		// commit: one page write fewer per batch of messages.
		NoFreelistSync: true,
		FreelistType:   bbolt.FreelistMapType,
	})
	if err != nil {
		return nil, fmt.Errorf("relay: open inbox of %q (%s): %w", name, path, err)
	}
	ib := &inbox{
		name: name, db: db, largeBody: largeBody, now: now,
		filesDir: filepath.Join(root, "files", name),
		changed:  make(chan struct{}),
		wake:     make(chan struct{}, 1),
		done:     make(chan struct{}),
	}
	err = db.Update(func(tx *bbolt.Tx) error {
		u, err := tx.CreateBucketIfNotExists(bucketUnread)
		if err != nil {
			return err
		}
		if _, err := tx.CreateBucketIfNotExists(bucketSeen); err != nil {
			return err
		}
		ib.unread = u.Stats().KeyN
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("relay: init inbox of %q: %w", name, err)
	}
	go ib.writer()
	return ib, nil
}

// add queues m; done is called when it is on disk, with nil also for a
// duplicate (already received: the sender may stop retrying).
func (ib *inbox) add(m *Message, done func(error)) {
	ib.mu.Lock()
	if ib.closed {
		ib.mu.Unlock()
		done(errInboxClosed)
		return
	}
	ib.pending = append(ib.pending, pendingMsg{m, done})
	select { // under mu: close closes wake under mu too
	case ib.wake <- struct{}{}:
	default:
	}
	ib.mu.Unlock()
}

var errInboxClosed = errors.New("relay: inbox closed (the name moved); retry")

func (ib *inbox) writer() {
	defer close(ib.done)
	for {
		_, open := <-ib.wake
		ib.mu.Lock()
		batch := ib.pending
		ib.pending = nil
		ib.mu.Unlock()
		if len(batch) > 0 {
			ib.commit(batch)
		}
		if !open {
			return
		}
	}
}

func (ib *inbox) commit(batch []pendingMsg) {
	results := make([]error, len(batch))
	added := 0
	err := ib.db.Update(func(tx *bbolt.Tx) error {
		u, s := tx.Bucket(bucketUnread), tx.Bucket(bucketSeen)
		// Keys only grow (sequence numbers; ULIDs mostly): fill pages full
		// rather than half, writing fewer pages per message.
		u.FillPercent, s.FillPercent = 1.0, 0.9
		added = 0
		now := ib.now()
		for i, p := range batch {
			results[i] = nil
			id := []byte(p.m.ID)
			if s.Get(id) != nil {
				continue // a retry of a message we have: acknowledge again
			}
			rec := *p.m
			if len(rec.Body) > ib.largeBody {
				if err := ib.saveLarge(&rec); err != nil {
					results[i] = err
					continue
				}
			}
			b, err := json.Marshal(&rec)
			if err != nil {
				results[i] = err
				continue
			}
			seq, _ := u.NextSequence()
			if err := u.Put(binary.BigEndian.AppendUint64(nil, seq), b); err != nil {
				return err
			}
			if err := s.Put(id, binary.BigEndian.AppendUint64(nil, uint64(now.UnixMilli()))); err != nil {
				return err
			}
			added++
		}
		return nil
	})
	for i, p := range batch {
		if err != nil {
			p.done(fmt.Errorf("relay: store in inbox of %q: %w", ib.name, err))
		} else {
			p.done(results[i])
		}
	}
	if err == nil && added > 0 {
		ib.mu.Lock()
		ib.unread += added
		close(ib.changed)
		ib.changed = make(chan struct{})
		ib.mu.Unlock()
	}
}

// saveLarge writes a large body to its own file (0600) and replaces it in rec
// by a preview that names the file.
func (ib *inbox) saveLarge(rec *Message) error {
	if err := os.MkdirAll(ib.filesDir, 0o700); err != nil {
		return fmt.Errorf("relay: save large message: %w", err)
	}
	name := fmt.Sprintf("%s-%s-%s.md", rec.SentAt.UTC().Format("20060102-150405"), rec.From, rec.ID)
	path := filepath.Join(ib.filesDir, name)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("relay: save large message: %w", err)
	}
	_, werr := f.WriteString(rec.Body)
	serr := f.Sync()
	cerr := f.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		return fmt.Errorf("relay: save large message to %s: %w", path, err)
	}
	size := len(rec.Body)
	rec.Body = preview(rec.Body, previewLen) + fmt.Sprintf("\n\n[… %d bytes in all; the full text is in %s]", size, path)
	rec.File = path
	return nil
}

func preview(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return strings.TrimRight(s[:cut], " \n")
}

// take returns every unread message in arrival order and removes them from
// the inbox; their ids stay remembered for de-duplication.
func (ib *inbox) take() ([]Message, error) {
	var out []Message
	err := ib.db.Update(func(tx *bbolt.Tx) error {
		out = out[:0]
		u := tx.Bucket(bucketUnread)
		c := u.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			var m Message
			if err := json.Unmarshal(v, &m); err != nil {
				return fmt.Errorf("relay: inbox of %q holds a corrupt record: %w", ib.name, err)
			}
			out = append(out, m)
		}
		for k, _ := c.First(); k != nil; k, _ = c.First() {
			if err := u.Delete(k); err != nil {
				return err
			}
		}
		if now := ib.now(); now.Sub(ib.lastPrune) > time.Hour {
			ib.lastPrune = now
			return ib.pruneSeen(tx)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	ib.mu.Lock()
	ib.unread = 0
	close(ib.changed)
	ib.changed = make(chan struct{})
	ib.mu.Unlock()
	return out, nil
}

// remove deletes the unread messages with the given ids (read elsewhere: a
// client that showed them acknowledges them), and returns how many it removed.
func (ib *inbox) remove(ids []string) (int, error) {
	want := make(map[string]bool, len(ids))
	for _, id := range ids {
		want[id] = true
	}
	removed := 0
	err := ib.db.Update(func(tx *bbolt.Tx) error {
		removed = 0
		u := tx.Bucket(bucketUnread)
		var keys [][]byte
		err := u.ForEach(func(k, v []byte) error {
			var m struct{ ID string }
			if json.Unmarshal(v, &m) == nil && want[m.ID] {
				keys = append(keys, append([]byte(nil), k...))
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, k := range keys {
			if err := u.Delete(k); err != nil {
				return err
			}
		}
		removed = len(keys)
		return nil
	})
	if err != nil || removed == 0 {
		return 0, err
	}
	ib.mu.Lock()
	ib.unread -= removed
	close(ib.changed)
	ib.changed = make(chan struct{})
	ib.mu.Unlock()
	return removed, nil
}

// peek returns unread messages without removing them.
func (ib *inbox) peek() ([]Message, error) {
	var out []Message
	err := ib.db.View(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketUnread).ForEach(func(_, v []byte) error {
			var m Message
			if err := json.Unmarshal(v, &m); err != nil {
				return err
			}
			out = append(out, m)
			return nil
		})
	})
	return out, err
}

// pruneSeen forgets ids older than seenRetention.
func (ib *inbox) pruneSeen(tx *bbolt.Tx) error {
	s := tx.Bucket(bucketSeen)
	cutoff := uint64(ib.now().Add(-seenRetention).UnixMilli())
	c := s.Cursor()
	var old [][]byte
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if len(v) == 8 && binary.BigEndian.Uint64(v) < cutoff {
			old = append(old, append([]byte(nil), k...))
		}
	}
	for _, k := range old {
		if err := s.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// state returns the unread count and a channel closed at the next change.
func (ib *inbox) state() (int, <-chan struct{}) {
	ib.mu.Lock()
	defer ib.mu.Unlock()
	return ib.unread, ib.changed
}

// close stops the writer after it has committed what was queued.
func (ib *inbox) close() error {
	ib.mu.Lock()
	if ib.closed {
		ib.mu.Unlock()
		<-ib.done
		return nil
	}
	ib.closed = true
	close(ib.wake)
	ib.mu.Unlock()
	<-ib.done
	return ib.db.Close()
}
