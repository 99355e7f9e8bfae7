package relay

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/oklog/ulid/v2"
	"go.etcd.io/bbolt"
)

// An inbox is the persistent unread mailbox of one name, under the state
// root, so that whichever process holds the name next, on this machine, finds
// what was left unread: the unread messages in an append-only log
// (inbox/<name>.log, see inboxLog), and the ids of messages already received,
// for de-duplication, in a bbolt file (inbox/<name>.db).
//
// Arriving messages are written by one writer goroutine. It appends
// everything queued to the log with one fdatasync and only then acknowledges
// each message: a message acknowledged to its sender is on disk, and a burst
// costs one sync instead of one per message. A reader marks messages read
// itself (under logMu): it appends a "read" record, also synced before the
// messages are returned, so a message is shown once. When the inbox is quiet
// the writer copies new ids into bbolt and empties (or rewrites) the log; a
// busy inbox copies them in a goroutine beside the writer, so that no
// acknowledgement waits for the copy. Arrival order is kept, so messages from
// one sender, which arrive in send order, stay in send order.
type inbox struct {
	name      string
	db        *bbolt.DB
	log       *inboxLog
	filesDir  string
	largeBody int
	now       func() time.Time

	// fileMu is held by the writer while it empties or replaces the log,
	// and by readers outside the writer (peek) while they read it.
	fileMu sync.RWMutex

	mu      sync.Mutex
	pending []pendingMsg
	unread  int
	changed chan struct{} // closed and replaced whenever unread changes
	closed  bool
	wake    chan struct{}
	done    chan struct{}

	// refs are the unread messages, in arrival order: changed by the
	// writer under mu, read by others under mu (and fileMu, for offsets).
	refs []msgRef

	// logMu is held by whoever works on the log: the writer goroutine for
	// arrivals and tidying, a reader marking messages read (take, remove)
	// on its own goroutine, with no hand-off to the writer and back. It
	// guards the log and the fields below.
	logMu   sync.Mutex
	logDone bool // the writer has stopped; the log is closed or closing

	liveBytes int64            // bytes of their records in the log
	newIDs    map[string]int64 // ids in the log and not yet in bbolt: arrival, Unix ms
	// copying, when not nil, is a copy of ids into bbolt running beside the
	// writer (see startCopy): its ids are still in the log and are looked up
	// there until it is done.
	copying *idCopy
	// maxNewIDs is the count of new ids at which a busy writer starts a
	// copy (maxNewIDs, the constant, except in tests).
	maxNewIDs int
	// beforeCopy, when set (tests), runs in the copying goroutine first; an
	// error it returns fails the copy.
	beforeCopy func() error
	wbuf       []byte // the writer's batch buffer, kept up to maxWriteBuf
	// seenUpTo is the latest ULID time (Unix ms) of any id in bbolt: an id
	// with a later time cannot be there, so the writer does not look it up
	// (ids are ULIDs, whose time is that of their sending; see mayBeSeen).
	seenUpTo  uint64
	idle      *time.Timer // fires when the inbox has been quiet for tidyAfter
	lastPrune time.Time
}

// storedOverhead is room enough for a stored message's encoding besides its
// body, intent and file path (ids, names, lengths).
const storedOverhead = 256

// recPool recycles the buffers of pendingMsg.rec (and ib.wbuf is kept for
// the writer's batches): under load every message would otherwise cost two
// allocations of its size, and the garbage collector was a fifth of a busy
// receiver's CPU.
// Buffers that a large message grew past maxPooledRec are left to the
// collector.
var recPool = sync.Pool{New: func() any { return new([]byte) }}

const (
	maxPooledRec = 64 << 10
	maxWriteBuf  = 1 << 20
)

// putRec returns a buffer to recPool, holding b (whose memory it is).
func putRec(bp *[]byte, b []byte) {
	if cap(b) <= maxPooledRec {
		*bp = b[:0]
		recPool.Put(bp)
	}
}

// pendingMsg is a message waiting for the writer, already encoded.
type pendingMsg struct {
	id   string
	buf  *[]byte     // rec's memory, from recPool
	rec  []byte      // the stored form (appendStored), or nil if encoding failed
	err  error       // why it could not be encoded
	done func(error) // called once the message is durable (or refused)
}

// msgRef locates an unread message's record in the log.
type msgRef struct {
	id  string
	off int64
	n   int // whole record, header included
}

var (
	bucketSeen = []byte("seen")
	// bucketUnread held unread messages before the log did; an inbox that
	// still has it is moved into the log at open.
	bucketUnread = []byte("unread")
)

// seenRetention is how long message ids are remembered for de-duplication:
// longer than a stored message can live (30 days) so a late re-delivery of a
// message already shown is still recognised.
const seenRetention = 31 * 24 * time.Hour

// previewLen is how much of a large body the agent sees inline.
const previewLen = 1000

const (
	// tidyAfter is how long an inbox is quiet before the writer copies new
	// ids into bbolt and empties or compacts the log.
	tidyAfter = 500 * time.Millisecond
	// maxNewIDs bounds the ids kept in memory between two copies.
	maxNewIDs = 65536
	// compactAt is the log size above which a log that is mostly read
	// messages is rewritten with only the unread ones.
	compactAt = 1 << 20
	// compactBusyAt is the same for an inbox that is never quiet.
	compactBusyAt = 4 << 20
)

func openInbox(root, name string, largeBody int, now func() time.Time) (*inbox, error) {
	dir := filepath.Join(root, "inbox")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("relay: inbox dir: %w", err)
	}
	path := filepath.Join(dir, name+".db")
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{
		Timeout: 2 * time.Second,
		// The freelist is rebuilt at open instead of written on every
		// commit: one page write fewer per commit.
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
		newIDs:   make(map[string]int64),

		maxNewIDs: maxNewIDs,
	}
	if err := ib.load(filepath.Join(dir, name+".log")); err != nil {
		if ib.log != nil {
			ib.log.close()
		}
		db.Close()
		return nil, fmt.Errorf("relay: open inbox of %q: %w", name, err)
	}
	ib.unread = len(ib.refs)
	ib.idle = time.NewTimer(tidyAfter)
	go ib.writer()
	return ib, nil
}

// load reads the log back (what is unread is every message added and not
// read since) and moves in messages left in bbolt by an older version.
func (ib *inbox) load(logPath string) error {
	log, recs, err := openInboxLog(logPath)
	if err != nil {
		return err
	}
	ib.log = log
	at := ib.now().UnixMilli()
	read := make(map[string]bool)
	var adds []msgRef
	for _, r := range recs {
		switch r.payload[0] {
		case recAdd, recMsg:
			m, err := decodeLogMessage(r.payload)
			if err != nil {
				return fmt.Errorf("the log %s holds a corrupt record at byte %d: %w", log.path, r.off, err)
			}
			if _, dup := ib.newIDs[m.ID]; dup {
				continue
			}
			ib.newIDs[m.ID] = at
			adds = append(adds, msgRef{id: m.ID, off: r.off, n: recHeaderLen + len(r.payload)})
		case recRead:
			var ids []string
			if err := json.Unmarshal(r.payload[1:], &ids); err != nil {
				return fmt.Errorf("the log %s holds a corrupt record at byte %d: %v", log.path, r.off, err)
			}
			for _, id := range ids {
				read[id] = true
			}
		default:
			return fmt.Errorf("the log %s holds a record of unknown type %q at byte %d", log.path, r.payload[0], r.off)
		}
	}
	for _, r := range adds {
		if !read[r.id] {
			ib.refs = append(ib.refs, r)
			ib.liveBytes += int64(r.n)
		}
	}
	err = ib.db.Update(func(tx *bbolt.Tx) error {
		seen, err := tx.CreateBucketIfNotExists(bucketSeen)
		if err != nil {
			return err
		}
		// ULIDs sort by time, so the latest is among the last keys; ids
		// that are not ULIDs (from other implementations) may sort after
		// them, so look back until one parses.
		c := seen.Cursor()
		for k, _ := c.Last(); k != nil; k, _ = c.Prev() {
			if u, err := ulid.ParseStrict(string(k)); err == nil {
				ib.seenUpTo = u.Time()
				break
			}
		}
		return ib.moveLegacy(tx)
	})
	if err != nil {
		return err
	}
	return ib.tidy()
}

// moveLegacy moves the messages of an older version's "unread" bucket into
// the log, then drops the bucket (in tx, after the log is synced).
func (ib *inbox) moveLegacy(tx *bbolt.Tx) error {
	u := tx.Bucket(bucketUnread)
	if u == nil {
		return nil
	}
	var buf []byte
	var added []msgRef
	err := u.ForEach(func(_, v []byte) error {
		var m struct{ ID string }
		if err := json.Unmarshal(v, &m); err != nil || m.ID == "" {
			return fmt.Errorf("bbolt holds a corrupt unread message: %v", err)
		}
		if _, dup := ib.newIDs[m.ID]; dup {
			return nil // moved before, and the bucket drop was lost
		}
		ib.newIDs[m.ID] = ib.now().UnixMilli()
		start := len(buf)
		buf = appendLogRecord(buf, ib.log.gen, recAdd, v)
		added = append(added, msgRef{id: m.ID, off: int64(start), n: len(buf) - start})
		return nil
	})
	if err != nil {
		return err
	}
	if len(buf) > 0 {
		at, err := ib.log.write(buf)
		if err != nil {
			return err
		}
		for _, r := range added {
			r.off += at
			ib.refs = append(ib.refs, r)
			ib.liveBytes += int64(r.n)
		}
	}
	return tx.DeleteBucket(bucketUnread)
}

// add queues m; done is called when it is on disk, with nil also for a
// duplicate (already received: the sender may stop retrying). The stored
// form is prepared here, on the caller's goroutine, so that many
// connections encode in parallel and the writer only writes.
//
// body, when not nil, is the message's body instead of m.Body: a received
// message's, which aliases a read buffer and is copied before add returns.
func (ib *inbox) add(m *Message, body []byte, done func(error)) {
	p := pendingMsg{id: m.ID, done: done}
	rec := *m
	if body != nil {
		// A view, not a copy: saveLarge and appendStored below are done with
		// it before add returns, and keep nothing of it.
		rec.Body = unsafe.String(unsafe.SliceData(body), len(body))
	}
	if len(rec.Body) > ib.largeBody {
		// A retry of a message already stored rewrites the same file.
		p.err = ib.saveLarge(&rec)
	}
	if p.err == nil {
		p.buf = recPool.Get().(*[]byte)
		b := (*p.buf)[:0]
		if need := storedOverhead + len(rec.Body) + len(rec.Intent) + len(rec.File); cap(b) < need {
			b = make([]byte, 0, need)
		}
		p.rec, p.err = appendStored(b, &rec)
	}
	ib.mu.Lock()
	if ib.closed {
		ib.mu.Unlock()
		done(errInboxClosed)
		return
	}
	ib.pending = append(ib.pending, p)
	select { // under mu: close closes wake under mu too
	case ib.wake <- struct{}{}:
	default:
	}
	ib.mu.Unlock()
}

var errInboxClosed = errors.New("relay: inbox closed (the name moved); retry")

func (ib *inbox) writer() {
	defer close(ib.done)
	defer ib.idle.Stop()
	for {
		select {
		case _, open := <-ib.wake:
			ib.mu.Lock()
			batch := ib.pending
			ib.pending = nil
			ib.mu.Unlock()
			ib.logMu.Lock()
			if len(batch) > 0 {
				ib.commit(batch)
				ib.idle.Reset(tidyAfter)
				_ = ib.log.growAhead() // if it fails, the next write grows the file itself
			}
			if !open {
				_ = ib.tidy() // best effort: the log is as good
				ib.logDone = true
				ib.logMu.Unlock()
				return
			}
			// A busy inbox is never quiet for tidyAfter: copy its new ids
			// into bbolt beside the writer when they grow many (a copy of
			// 65,536 ids takes ~100 ms, which no acknowledgement should
			// wait for), and tidy it when a mostly read log grows large.
			ib.reapCopy(len(ib.newIDs) >= 2*ib.maxNewIDs) // wait only if ids pile up faster than they are copied
			if len(ib.newIDs) >= ib.maxNewIDs {
				ib.startCopy()
			}
			if ib.log.size > compactBusyAt && ib.liveBytes < ib.log.size/2 {
				_ = ib.tidy()
			}
			ib.logMu.Unlock()
		case <-ib.idle.C:
			// An error leaves everything in the log, which is as
			// durable; the next tidy tries again.
			ib.logMu.Lock()
			_ = ib.tidy()
			ib.logMu.Unlock()
		}
	}
}

// commit writes a batch of arriving messages to the log, then acknowledges
// each one (or reports why it could not be stored).
func (ib *inbox) commit(batch []pendingMsg) {
	results := make([]error, len(batch))
	size := 0
	for _, p := range batch {
		size += recHeaderLen + 1 + len(p.rec)
	}
	buf := ib.wbuf[:0]
	if cap(buf) < size {
		buf = make([]byte, 0, size)
	}
	defer func() {
		if cap(buf) <= maxWriteBuf {
			ib.wbuf = buf[:0]
		}
		for _, p := range batch {
			if p.buf != nil {
				putRec(p.buf, p.rec)
			}
		}
	}()
	var added []msgRef
	inBatch := make(map[string]bool, len(batch))
	check := func(tx *bbolt.Tx) error {
		var s *bbolt.Bucket
		if tx != nil {
			s = tx.Bucket(bucketSeen)
		}
		for i, p := range batch {
			if p.err != nil {
				results[i] = p.err
				continue
			}
			if ib.inMemory(p.id) || inBatch[p.id] || (s != nil && ib.mayBeSeen(p.id) && s.Get([]byte(p.id)) != nil) {
				continue // a retry of a message we have: acknowledge again
			}
			inBatch[p.id] = true
			start := len(buf)
			buf = appendLogRecord(buf, ib.log.gen, recMsg, p.rec)
			added = append(added, msgRef{id: p.id, off: int64(start), n: len(buf) - start})
		}
		return nil
	}
	var err error
	if slices.ContainsFunc(batch, func(p pendingMsg) bool { return p.err == nil && ib.mayBeSeen(p.id) }) {
		err = ib.db.View(check)
	} else {
		err = check(nil) // no id can be in bbolt: no read transaction
	}
	var at int64
	if err == nil && len(buf) > 0 {
		at, err = ib.log.write(buf)
	}
	if err != nil {
		err = fmt.Errorf("relay: store in inbox of %q: %w", ib.name, err)
		for _, p := range batch {
			p.done(err)
		}
		return
	}
	arrived := ib.now().UnixMilli()
	ib.mu.Lock()
	for _, r := range added {
		r.off += at
		ib.refs = append(ib.refs, r)
	}
	ib.mu.Unlock()
	for _, r := range added {
		ib.liveBytes += int64(r.n)
		ib.newIDs[r.id] = arrived
	}
	// Counted (and waiters woken) before the senders hear: a sender told
	// "delivered" can rely on the recipient seeing the message.
	if len(added) > 0 {
		ib.changeUnread(len(added))
	}
	for i, p := range batch {
		p.done(results[i])
	}
	// The answers are queued on their connections, whose writer goroutines
	// were woken: let them run before this goroutine starts the next commit,
	// which would otherwise hold the processor until its sync blocks.
	runtime.Gosched()
}

// mayBeSeen reports whether id may be in bbolt's seen ids: it is not a
// ULID, or its time is not after the latest one there.
func (ib *inbox) mayBeSeen(id string) bool {
	u, err := ulid.ParseStrict(id)
	return err != nil || u.Time() <= ib.seenUpTo
}

// putSeen puts ids into the seen bucket of tx and returns the latest ULID
// time among them (0 if none is a ULID).
func putSeen(tx *bbolt.Tx, ids map[string]int64) (upTo uint64, err error) {
	s := tx.Bucket(bucketSeen)
	s.FillPercent = 0.9 // ids are ULIDs, which mostly grow
	// In key order: bbolt inserts into sorted pages, and random order makes
	// each insert move the rest of a page.
	for _, id := range slices.Sorted(maps.Keys(ids)) {
		if err := s.Put([]byte(id), binary.BigEndian.AppendUint64(nil, uint64(ids[id]))); err != nil {
			return 0, err
		}
		if u, err := ulid.ParseStrict(id); err == nil {
			upTo = max(upTo, u.Time())
		}
	}
	return upTo, nil
}

// idCopy is a copy of received ids into bbolt, run by its own goroutine
// while the writer goes on committing arrivals. The writer only reads ids
// while the copy runs, and takes its result from done.
type idCopy struct {
	ids  map[string]int64
	done chan copyResult // receives once
}

type copyResult struct {
	upTo uint64 // the latest ULID time copied
	err  error
}

// startCopy (writer, under logMu) hands the new ids to a copy beside the
// writer, unless one is running.
func (ib *inbox) startCopy() {
	if ib.copying != nil {
		return
	}
	c := &idCopy{ids: ib.newIDs, done: make(chan copyResult, 1)}
	ib.copying, ib.newIDs = c, make(map[string]int64, len(c.ids))
	before := ib.beforeCopy
	go func() {
		var r copyResult
		if before != nil {
			r.err = before()
		}
		if r.err == nil {
			r.err = ib.db.Update(func(tx *bbolt.Tx) (err error) {
				r.upTo, err = putSeen(tx, c.ids)
				return err
			})
		}
		c.done <- r
	}()
}

// reapCopy (writer, under logMu) takes the result of a finished copy, or
// waits for the running one when wait is set. Ids that a failed copy did not
// store go back to newIDs, for the next copy or tidy.
func (ib *inbox) reapCopy(wait bool) {
	c := ib.copying
	if c == nil {
		return
	}
	var r copyResult
	if wait {
		r = <-c.done
	} else {
		select {
		case r = <-c.done:
		default:
			return
		}
	}
	ib.copying = nil
	if r.err != nil {
		for id, at := range c.ids {
			if _, ok := ib.newIDs[id]; !ok {
				ib.newIDs[id] = at
			}
		}
		return
	}
	ib.seenUpTo = max(ib.seenUpTo, r.upTo)
}

// inMemory reports whether id is among the ids received and not yet in
// bbolt, or being copied there (writer, under logMu).
func (ib *inbox) inMemory(id string) bool {
	if _, ok := ib.newIDs[id]; ok {
		return true
	}
	if ib.copying != nil {
		_, ok := ib.copying.ids[id]
		return ok
	}
	return false
}

// changeUnread adds delta to the unread count and tells whoever waits.
func (ib *inbox) changeUnread(delta int) {
	ib.mu.Lock()
	ib.unread += delta
	close(ib.changed)
	ib.changed = make(chan struct{})
	ib.mu.Unlock()
}

// tidy (under logMu) copies the new ids into bbolt, then empties the log if
// nothing in it is unread, or rewrites it with only the unread messages if
// most of it is read.
//
// A copy running beside the writer is waited for first: the log may be
// emptied or rewritten only once every id it held is in bbolt.
func (ib *inbox) tidy() error {
	ib.reapCopy(true)
	if len(ib.newIDs) > 0 || ib.now().Sub(ib.lastPrune) > time.Hour {
		var upTo uint64
		err := ib.db.Update(func(tx *bbolt.Tx) (err error) {
			if upTo, err = putSeen(tx, ib.newIDs); err != nil {
				return err
			}
			if now := ib.now(); now.Sub(ib.lastPrune) > time.Hour {
				ib.lastPrune = now
				return ib.pruneSeen(tx)
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("relay: record received ids of %q: %w", ib.name, err)
		}
		ib.seenUpTo = max(ib.seenUpTo, upTo) // only once they are there
		clear(ib.newIDs)
	}
	switch {
	case len(ib.refs) == 0:
		ib.liveBytes = 0
		ib.fileMu.Lock()
		defer ib.fileMu.Unlock()
		return ib.log.reset()
	case ib.log.size > compactAt && ib.liveBytes < ib.log.size/2:
		return ib.compact()
	}
	return nil
}

// compact rewrites the log with only the unread messages' records.
func (ib *inbox) compact() error {
	buf := make([]byte, 0, ib.liveBytes)
	refs := make([]msgRef, len(ib.refs))
	for i, r := range ib.refs {
		b, err := ib.log.read(r.off, r.n)
		if err != nil {
			return err
		}
		refs[i] = msgRef{id: r.id, off: fileHeaderLen + int64(len(buf)), n: r.n}
		buf = append(buf, b...)
	}
	ib.fileMu.Lock()
	defer ib.fileMu.Unlock()
	if err := ib.log.replace(buf); err != nil {
		return err
	}
	ib.mu.Lock()
	ib.refs = refs
	ib.mu.Unlock()
	return nil
}

// withLog runs job holding logMu, unless the writer has stopped.
func (ib *inbox) withLog(job func()) error {
	ib.logMu.Lock()
	defer ib.logMu.Unlock()
	if ib.logDone {
		return errInboxClosed
	}
	job()
	return nil
}

// messages reads the records of refs back (under logMu, or holding fileMu).
func (ib *inbox) messages(refs []msgRef) ([]Message, error) {
	if len(refs) == 0 {
		return nil, nil
	}
	first, last := refs[0], refs[len(refs)-1]
	span, err := ib.log.read(first.off, int(last.off-first.off)+last.n)
	if err != nil {
		return nil, err
	}
	out := make([]Message, 0, len(refs))
	for _, r := range refs {
		rel := r.off - first.off
		recs, valid := decodeLogRecords(span[rel:rel+int64(r.n)], ib.log.gen)
		if len(recs) != 1 || valid != r.n {
			return nil, fmt.Errorf("relay: inbox of %q: the log %s is damaged at byte %d", ib.name, ib.log.path, r.off)
		}
		m, err := decodeLogMessage(recs[0])
		if err != nil {
			return nil, fmt.Errorf("relay: inbox of %q holds a corrupt record at byte %d of %s: %w", ib.name, r.off, ib.log.path, err)
		}
		out = append(out, m)
	}
	inSendOrder(out)
	return out, nil
}

// inSendOrder puts each sender's messages in the order they were sent, by
// their ids (ULIDs: time-ordered, and monotonic within a sending peer),
// leaving every other message where it arrived. One sender's messages can
// arrive out of order: one stored while its recipient was away or
// unreachable, handed over by a holder just after a later one that came
// directly. System notices keep their place.
func inSendOrder(msgs []Message) {
	var bySender map[string][]int
	for i := range msgs {
		if msgs[i].Kind == KindSystem {
			continue
		}
		if bySender == nil {
			bySender = make(map[string][]int)
		}
		bySender[msgs[i].From] = append(bySender[msgs[i].From], i)
	}
	for _, idx := range bySender {
		if slices.IsSortedFunc(idx, func(a, b int) int { return strings.Compare(msgs[a].ID, msgs[b].ID) }) {
			continue
		}
		group := make([]Message, len(idx))
		for k, i := range idx {
			group[k] = msgs[i]
		}
		slices.SortStableFunc(group, func(a, b Message) int { return strings.Compare(a.ID, b.ID) })
		for k, i := range idx {
			msgs[i] = group[k]
		}
	}
}

// decodeLogMessage decodes the message of a log record's payload (its type
// byte first): recMsg, or recAdd as older versions wrote it.
func decodeLogMessage(payload []byte) (Message, error) {
	switch payload[0] {
	case recMsg:
		return decodeStored(payload[1:])
	case recAdd:
		var m Message
		if err := json.Unmarshal(payload[1:], &m); err != nil {
			return Message{}, err
		}
		if m.ID == "" {
			return Message{}, errors.New("a message without an id")
		}
		return m, nil
	}
	return Message{}, fmt.Errorf("a record of type %q, not a message", payload[0])
}

// markRead (under logMu) records that the messages of refs were read and
// drops them from the unread ones; keep says which of ib.refs stay.
func (ib *inbox) markRead(read []msgRef, keep func(msgRef) bool) error {
	ids := make([]string, len(read))
	for i, r := range read {
		ids[i] = r.id
	}
	body, err := json.Marshal(ids)
	if err != nil {
		return err
	}
	if _, err := ib.log.write(appendLogRecord(nil, ib.log.gen, recRead, body)); err != nil {
		return err
	}
	ib.mu.Lock()
	rest := ib.refs[:0]
	for _, r := range ib.refs {
		if keep(r) {
			rest = append(rest, r)
		} else {
			ib.liveBytes -= int64(r.n)
		}
	}
	clear(ib.refs[len(rest):])
	ib.refs = rest
	ib.mu.Unlock()
	ib.changeUnread(-len(read))
	ib.idle.Reset(tidyAfter)
	return nil
}

// take returns every unread message in arrival order and marks them read;
// their ids stay remembered for de-duplication.
func (ib *inbox) take() ([]Message, error) {
	if n, _ := ib.state(); n == 0 {
		return nil, nil
	}
	var out []Message
	var err error
	if werr := ib.withLog(func() {
		read := slices.Clone(ib.refs)
		if out, err = ib.messages(read); err != nil || len(read) == 0 {
			return
		}
		err = ib.markRead(read, func(msgRef) bool { return false })
	}); werr != nil {
		return nil, werr
	}
	if err != nil {
		return nil, err
	}
	return out, nil
}

// remove marks read the unread messages with the given ids (read elsewhere:
// a client that showed them acknowledges them), and returns how many.
func (ib *inbox) remove(ids []string) (int, error) {
	want := make(map[string]bool, len(ids))
	for _, id := range ids {
		want[id] = true
	}
	removed := 0
	var err error
	if werr := ib.withLog(func() {
		var read []msgRef
		for _, r := range ib.refs {
			if want[r.id] {
				read = append(read, r)
			}
		}
		if len(read) == 0 {
			return
		}
		if err = ib.markRead(read, func(r msgRef) bool { return !want[r.id] }); err == nil {
			removed = len(read)
		}
	}); werr != nil {
		return 0, werr
	}
	return removed, err
}

// peek returns the unread messages without marking them read. It reads
// beside the writer rather than queueing behind it: a client that shows
// messages as they arrive (channel push) must see them before a concurrent
// listen has had them marked read.
func (ib *inbox) peek() ([]Message, error) {
	ib.fileMu.RLock()
	defer ib.fileMu.RUnlock()
	ib.mu.Lock()
	closed := ib.closed
	refs := slices.Clone(ib.refs)
	ib.mu.Unlock()
	if closed {
		return nil, errInboxClosed
	}
	return ib.messages(refs)
}

// saveLarge writes a large body to its own file (0600) and replaces it in rec
// by a preview that names the file.
func (ib *inbox) saveLarge(rec *Message) error {
	if err := os.MkdirAll(ib.filesDir, 0o700); err != nil {
		return fmt.Errorf("relay: save large message: %w", err)
	}
	path := filepath.Join(ib.filesDir, largeFileName(rec))
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("relay: save large message: %w", err)
	}
	_, werr := f.WriteString(rec.Body)
	serr := f.Sync()
	cerr := f.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		// Nothing half-written stays behind (a full disk would keep filling
		// up with parts of the retries). The error goes back to the sender:
		// it says what failed, not where on this machine.
		_ = os.Remove(path)
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return fmt.Errorf("relay: could not save a message of %d bytes to a file: %w", len(rec.Body), err)
	}
	size := len(rec.Body)
	rec.Body = preview(rec.Body, previewLen) + fmt.Sprintf("\n\n[… %d bytes in all; the full text is in %s]", size, path)
	rec.File = path
	return nil
}

// largeFileName is the name of the file that holds rec's body: the time it
// was sent (formatted here) and a hash of its sender and id, so that a retry
// of one message writes the same file and nothing a sender chose (its name,
// the id, the body) ever becomes part of a path.
func largeFileName(rec *Message) string {
	h := sha256.Sum256([]byte("paf saved body\x00" + rec.From + "\x00" + rec.ID))
	return rec.SentAt.UTC().Format("20060102-150405") + "-" + hex.EncodeToString(h[:16]) + ".md"
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
	ib.fileMu.Lock() // no peek is reading the log
	defer ib.fileMu.Unlock()
	return errors.Join(ib.log.close(), ib.db.Close())
}
