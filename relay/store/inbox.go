package store

import (
	"github.com/paf-mesh/paf-mesh/relay/wire"

	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"time"
	"unsafe"

	"github.com/oklog/ulid/v2"
	"go.etcd.io/bbolt"
)

// An Inbox is the persistent unread mailbox of one name, under the state
// root, so that whichever process holds the name next, on this machine, finds
// what was left unread: the unread messages in an append-only log
// (inbox/<name>.log, see inboxLog), and the ids of messages already received,
// for de-duplication, in a bbolt file (inbox/<name>.db).
//
// Arriving messages are written by one writer goroutine. It appends
// everything queued to the log with one fdatasync and only then acknowledges
// each message: a message acknowledged to its sender is on disk, and a burst
// costs one sync instead of one per message. A reader marks messages read
// itself (under logMu): it appends a "read" record before the messages are
// returned, so a message is shown once, even across kill -9: the record is in
// the page cache at once, and made durable by the next commit of arrivals or
// when the inbox is quiet (a reader never waits for the disk; only a crash of
// the machine in between can show a message again). When the inbox is quiet
// the writer copies new ids into bbolt and empties (or rewrites) the log; a
// busy inbox copies them in a goroutine beside the writer, so that no
// acknowledgement waits for the copy. Arrival order is kept, so messages from
// one sender, which arrive in send order, stay in send order.
type Inbox struct {
	name string
	db   *bbolt.DB
	log  *inboxLog
	// syncer is the log's, kept here at load: Add asks it whether syncs leave the
	// processor free, without logMu, and a compaction replaces *log's fields under it.
	syncer     *datasyncer
	filesDir   string
	largeBody  int
	previewLen int
	now        func() time.Time

	// saving holds the files of large bodies being saved (saveLarge, lockFile),
	// each with a channel closed when its save ends.
	savingMu sync.Mutex
	saving   map[string]chan struct{}

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
	parked  bool // the writer waits for wake with nothing in hand

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
	// verified, when not nil, receives the result of the message's signature verification,
	// which runs beside the write (Add with verify): the record is a recChecked, exposed and
	// acknowledged only once it says nil.
	verified chan error
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

// OpenInbox opens (creating it if needed) the inbox of name under cfg.Root and starts its
// writer goroutine; Close stops it. An inbox is one process's at a time: a second open of the
// same inbox waits up to 2 seconds for bbolt's file lock, then fails.
func OpenInbox(cfg Config, name string) (*Inbox, error) {
	cfg = cfg.withDefaults()
	root := cfg.Root
	dir := filepath.Join(root, "inbox")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("relay: inbox dir: %w", err)
	}
	path := filepath.Join(dir, name+".db")
	_, statErr := os.Stat(path)
	fresh := errors.Is(statErr, fs.ErrNotExist)
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
	ib := &Inbox{
		name: name, db: db, largeBody: cfg.LargeBody, previewLen: cfg.PreviewLen, now: cfg.Now,
		saving:   make(map[string]chan struct{}),
		filesDir: filepath.Join(root, "files", name),
		changed:  make(chan struct{}),
		wake:     make(chan struct{}, 1),
		done:     make(chan struct{}),
		newIDs:   make(map[string]int64),

		maxNewIDs: maxNewIDs,
	}
	if fresh {
		// A new inbox holds nothing, and bbolt.Open has synced the empty database: the
		// transactions of load that create its bucket and prune it (tidy) need not wait for
		// the disk (four fdatasyncs and an fsync of the file's growth: five of the six syncs a
		// new inbox cost, on the path of a session's first message after it claims a new
		// name; strace). A crash that loses them leaves the empty database bbolt synced (its
		// meta pages are checksummed, and it falls back to the older one), and the next open
		// creates the bucket again.
		db.NoSync, db.NoGrowSync = true, true
	}
	err = ib.load(filepath.Join(dir, name+".log"))
	db.NoSync, db.NoGrowSync = false, false
	if err != nil {
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
func (ib *Inbox) load(logPath string) error {
	log, recs, err := openInboxLog(logPath)
	if err != nil {
		return err
	}
	ib.log, ib.syncer = log, log.syncer
	at := ib.now().UnixMilli()
	read := make(map[string]bool)
	var adds []msgRef
	for _, r := range recs {
		switch r.payload[0] {
		case recAdd, recMsg, recChecked:
			m, err := decodeLogMessage(r.payload)
			if err != nil {
				return fmt.Errorf("the log %s holds a corrupt record at byte %d: %w", log.path, r.off, err)
			}
			if r.payload[0] == recChecked {
				if _, err := wire.VerifySignature(&m, nil); err != nil {
					// Written while its signature was being checked, and the check
					// failed (or the process died before it could say so): its sender
					// was never told it was delivered, and nobody was shown it.
					continue
				}
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
func (ib *Inbox) moveLegacy(tx *bbolt.Tx) error {
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

// Add queues m; done is called when it is on disk, with nil also for a
// duplicate (already received: the sender may stop retrying). The stored
// form is prepared here, on the caller's goroutine, so that many
// connections encode in parallel and the writer only writes.
//
// body, when not nil, is the message's body instead of m.Body: a received
// message's, which aliases a read buffer and is copied before add returns.
//
// verify asks Add to verify m's signature (wire.VerifySignature; the caller has
// checked everything else about its author): a message that does not verify is
// refused (done gets the error) and never shown. The verification runs on the
// caller's goroutine once m is queued, while the writer writes and syncs it: on a
// lone message the disk's sync and the signature check overlap instead of
// adding up. A message whose body goes to a file of its own is verified while the
// file is written, and before its record is (saveLarge).
// Add returns once the verification is done either way.
func (ib *Inbox) Add(m *wire.Message, body []byte, verify bool, done func(error)) {
	p := pendingMsg{id: m.ID, done: done}
	rec := *m
	if body != nil {
		// A view, not a copy: saveLarge and appendStored below are done with
		// it before add returns, and keep nothing of it.
		rec.Body = unsafe.String(unsafe.SliceData(body), len(body))
	}
	if len(rec.Body) > ib.largeBody {
		var check func() error
		if verify {
			// The log's record does not hold this body, so load could not verify
			// it again (recChecked): verified before the record is written, beside
			// the file's write. A body that does not verify fails the message with
			// its error (p.err), as a file that cannot be written does.
			check = func() error {
				_, err := wire.VerifySignature(m, body)
				return err
			}
			verify = false
		}
		// A retry of a message already stored rewrites the same file.
		p.err = ib.saveLarge(&rec, check)
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
		done(ErrInboxClosed)
		return
	}
	if verify && p.err == nil {
		p.verified = make(chan error, 1)
	}
	lone := ib.parked && len(ib.pending) == 0 && (runtime.GOMAXPROCS(0) > 1 || ib.syncer.async())
	ib.pending = append(ib.pending, p)
	select { // under mu: close closes wake under mu too
	case ib.wake <- struct{}{}:
	default:
	}
	ib.mu.Unlock()
	if p.verified != nil {
		if lone {
			// The writer, parked, was just woken onto this processor's next slot,
			// which no other processor takes at once: it would wait for this
			// verification. Yield it the processor, so that it starts the write now
			// and this goroutine goes on, and verifies, on another processor (measured:
			// the write of a lone message started ~70 µs earlier), or on this one
			// while the writer waits for the disk in the poller (datasyncer: Linux
			// AIO). In a burst the writer is busy and nothing is gained by yielding.
			// With one processor and a plain fdatasync the sync would keep the
			// processor until sysmon takes it back, and the verification would wait
			// for the sync instead: no yield then.
			runtime.Gosched()
		}
		_, err := wire.VerifySignature(m, body)
		p.verified <- err
	}
}

// ErrInboxClosed: the inbox was closed (its name moved to another inbox or process) before
// the message was stored, or before a read. A sender may retry: the name's next inbox takes it.
var ErrInboxClosed = errors.New("relay: inbox closed (the name moved); retry")

// Name is the name whose inbox this is.
func (ib *Inbox) Name() string { return ib.name }

// State returns the unread count and a channel closed at the next change.
func (ib *Inbox) State() (int, <-chan struct{}) {
	ib.mu.Lock()
	defer ib.mu.Unlock()
	return ib.unread, ib.changed
}

// Close stops the writer after it has committed what was queued.
func (ib *Inbox) Close() error {
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
