package store

import (
	"github.com/paf-mesh/paf-mesh/relay/wire"

	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// withLog runs job holding logMu, unless the writer has stopped.
func (ib *Inbox) withLog(job func()) error {
	ib.logMu.Lock()
	defer ib.logMu.Unlock()
	if ib.logDone {
		return ErrInboxClosed
	}
	job()
	return nil
}

// messages reads the records of refs back (under logMu, or holding fileMu).
func (ib *Inbox) messages(refs []msgRef) ([]wire.Message, error) {
	if len(refs) == 0 {
		return nil, nil
	}
	first, last := refs[0], refs[len(refs)-1]
	span, err := ib.log.read(first.off, int(last.off-first.off)+last.n)
	if err != nil {
		return nil, err
	}
	out := make([]wire.Message, 0, len(refs))
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
func inSendOrder(msgs []wire.Message) {
	var bySender map[string][]int
	for i := range msgs {
		if msgs[i].Kind == wire.KindSystem {
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
		group := make([]wire.Message, len(idx))
		for k, i := range idx {
			group[k] = msgs[i]
		}
		slices.SortStableFunc(group, func(a, b wire.Message) int { return strings.Compare(a.ID, b.ID) })
		for k, i := range idx {
			msgs[i] = group[k]
		}
	}
}

// decodeLogMessage decodes the message of a log record's payload (its type
// byte first): recMsg or recChecked, or recAdd as older versions wrote it.
func decodeLogMessage(payload []byte) (wire.Message, error) {
	switch payload[0] {
	case recMsg, recChecked:
		return decodeStored(payload[1:])
	case recAdd:
		var m wire.Message
		if err := json.Unmarshal(payload[1:], &m); err != nil {
			return wire.Message{}, err
		}
		if m.ID == "" {
			return wire.Message{}, errors.New("a message without an id")
		}
		return m, nil
	}
	return wire.Message{}, fmt.Errorf("a record of type %q, not a message", payload[0])
}

// markRead (under logMu) records that the messages of refs were read and
// drops them from the unread ones; keep says which of ib.refs stay.
//
// The read record is appended without a sync of its own (writeLazy): a
// reader never waits for the disk. It is in the page cache at once, so a
// killed process (kill -9) finds it at the next open and shows nothing
// twice; the next commit of arrivals, or the quiet inbox's tidy, makes it
// durable. A crash of the whole machine in between can show the messages
// again (never lose them). So a question and its answer cost one durable
// write per message, the arrival's (SPEC section 10).
func (ib *Inbox) markRead(read []msgRef, keep func(msgRef) bool) error {
	ids := make([]string, len(read))
	for i, r := range read {
		ids[i] = r.id
	}
	body, err := json.Marshal(ids)
	if err != nil {
		return err
	}
	if _, err := ib.log.writeLazy(appendLogRecord(nil, ib.log.gen, recRead, body)); err != nil {
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

// Take returns every unread message in arrival order and marks them read;
// their ids stay remembered for de-duplication.
func (ib *Inbox) Take() ([]wire.Message, error) {
	if n, _ := ib.State(); n == 0 {
		return nil, nil
	}
	var out []wire.Message
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

// Remove marks read the unread messages with the given ids (read elsewhere:
// a client that showed them acknowledges them), and returns how many.
func (ib *Inbox) Remove(ids []string) (int, error) {
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

// Peek returns the unread messages without marking them read. It reads
// beside the writer rather than queueing behind it: a client that shows
// messages as they arrive (channel push) must see them before a concurrent
// listen has had them marked read.
func (ib *Inbox) Peek() ([]wire.Message, error) {
	ib.fileMu.RLock()
	defer ib.fileMu.RUnlock()
	ib.mu.Lock()
	closed := ib.closed
	refs := slices.Clone(ib.refs)
	ib.mu.Unlock()
	if closed {
		return nil, ErrInboxClosed
	}
	return ib.messages(refs)
}
