package store

import (
	"encoding/binary"
	"fmt"
	"maps"
	"runtime"
	"slices"
	"time"

	"github.com/oklog/ulid/v2"
	"go.etcd.io/bbolt"
)

func (ib *Inbox) writer() {
	defer close(ib.done)
	defer ib.idle.Stop()
	for {
		ib.mu.Lock()
		ib.parked = true
		ib.mu.Unlock()
		select {
		case _, open := <-ib.wake:
			ib.mu.Lock()
			batch := ib.pending
			ib.pending = nil
			ib.parked = false
			ib.mu.Unlock()
			if len(batch) > 0 {
				ib.logMu.Lock()
				tell := ib.commit(batch)
				ib.logMu.Unlock()
				// Told without logMu: a listener woken here marks what it takes
				// read at once (markRead), not once the writer is done below.
				tell()
			}
			ib.logMu.Lock()
			if len(batch) > 0 {
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
			ib.mu.Lock()
			ib.parked = false
			ib.mu.Unlock()
			ib.logMu.Lock()
			_ = ib.tidy()
			ib.logMu.Unlock()
		}
	}
}

// commit (under logMu) writes a batch of arriving messages to the log and
// makes the stored ones readable and counted (refs, unread). It returns tell,
// which the writer calls without logMu: it wakes whoever waits for messages,
// then acknowledges each one (or reports why it could not be stored).
func (ib *Inbox) commit(batch []pendingMsg) (tell func()) {
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
	var addedAt []int                           // the batch index of each of added
	inBatch := make(map[string]int, len(batch)) // id -> batch index of its first copy
	sameAs := map[int]int{}                     // a copy -> its first copy in this batch
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
			if first, ok := inBatch[p.id]; ok {
				sameAs[i] = first // answered as its first copy is
				continue
			}
			if ib.inMemory(p.id) || (s != nil && ib.mayBeSeen(p.id) && s.Get([]byte(p.id)) != nil) {
				continue // a retry of a message we have: acknowledge again
			}
			inBatch[p.id] = i
			typ := byte(recMsg)
			if p.verified != nil {
				typ = recChecked
			}
			start := len(buf)
			buf = appendLogRecord(buf, ib.log.gen, typ, p.rec)
			added = append(added, msgRef{id: p.id, off: int64(start), n: len(buf) - start})
			addedAt = append(addedAt, i)
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
		return func() {
			for _, p := range batch {
				p.done(err)
			}
		}
	}
	// Messages whose signatures were checked beside the write count only if
	// they verified: one that did not stays in the log as a dead recChecked
	// record (load checks it again), is neither shown nor remembered as
	// received, and its sender hears why.
	kept := added[:0]
	for k, r := range added {
		i := addedAt[k]
		if c := batch[i].verified; c != nil {
			if err := <-c; err != nil {
				results[i] = err
				continue
			}
		}
		kept = append(kept, r)
	}
	added = kept
	for i, first := range sameAs {
		results[i] = results[first]
	}
	arrived := ib.now().UnixMilli()
	ib.mu.Lock()
	for _, r := range added {
		r.off += at
		ib.refs = append(ib.refs, r)
	}
	ib.unread += len(added) // with refs: a reader that takes them counts them off
	ib.mu.Unlock()
	for _, r := range added {
		ib.liveBytes += int64(r.n)
		ib.newIDs[r.id] = arrived
	}
	return func() {
		// The messages are counted and readable already (refs, unread, above),
		// so a sender told "delivered" can rely on the recipient seeing them.
		//
		// Waiters first: a paf_listen woken here is what its agent waits for,
		// while the sender's acknowledgement has time to spare (its agent's
		// next call, a paf_listen for the answer, waits for the round trip of
		// an agent). Yielding the processor lets the woken listener read,
		// mark read and write its result before the acknowledgements' TCP
		// writes (10-80 µs each on a busy machine) take it: with one
		// processor (paf-peer mcp) it would otherwise run after them. With
		// more, the woken listener runs on another processor at once, and
		// the acknowledgements are not held back for it.
		// Measured, question -> answer, both orders interleaved in one run:
		// p50 3-5 % lower, 39 and 51 of 60 blocks faster.
		if len(added) > 0 {
			ib.changeUnread(0)
			if runtime.GOMAXPROCS(0) == 1 {
				runtime.Gosched()
			}
		}
		for i, p := range batch {
			p.done(results[i])
		}
		// The answers are queued on their connections, whose writer goroutines
		// were woken: let them run before this goroutine starts the next
		// commit, which would otherwise hold the processor until its sync
		// blocks.
		runtime.Gosched()
	}
}

// mayBeSeen reports whether id may be in bbolt's seen ids: it is not a
// ULID, or its time is not after the latest one there.
func (ib *Inbox) mayBeSeen(id string) bool {
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
func (ib *Inbox) startCopy() {
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
func (ib *Inbox) reapCopy(wait bool) {
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
func (ib *Inbox) inMemory(id string) bool {
	if _, ok := ib.newIDs[id]; ok {
		return true
	}
	if ib.copying != nil {
		_, ok := ib.copying.ids[id]
		return ok
	}
	return false
}

// changeUnread adds delta (which may be 0) to the unread count and tells
// whoever waits.
func (ib *Inbox) changeUnread(delta int) {
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
func (ib *Inbox) tidy() error {
	ib.reapCopy(true)
	// Read records appended lazily become durable now, once per quiet spell,
	// before the log may start over.
	if err := ib.log.syncLazy(); err != nil {
		return err
	}
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
func (ib *Inbox) compact() error {
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

// pruneSeen forgets ids older than seenRetention.
func (ib *Inbox) pruneSeen(tx *bbolt.Tx) error {
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
