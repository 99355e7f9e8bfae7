package store

import (
	"github.com/paf-mesh/paf-mesh/relay/wire"

	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/oklog/ulid/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"go.etcd.io/bbolt"

	"github.com/paf-mesh/paf-mesh/internal/testutil"
)

// openTestInbox opens the inbox of "bob" under root.
func openTestInbox(t *testing.T, root string) *Inbox {
	t.Helper()
	ib, err := OpenInbox(Config{Root: root, LargeBody: 10 << 10}, "bob")
	if err != nil {
		t.Fatal(err)
	}
	return ib
}

// tidiedWhenQuiet checks, in a synctest bubble, that what the inbox's
// writer does once the inbox has been quiet for tidyAfter (done says whether
// it is done) is not done a millisecond before and is done at tidyAfter. The
// bubble's clock stands still while the test and the writer work (file
// syscalls included) and moves only when both wait, so "quiet" is exact.
func tidiedWhenQuiet(t *testing.T, what string, done func() bool) {
	t.Helper()
	synctest.Wait()
	time.Sleep(tidyAfter - time.Millisecond)
	synctest.Wait()
	if done() {
		t.Fatalf("%s before the inbox was quiet for %s", what, tidyAfter)
	}
	time.Sleep(time.Millisecond)
	synctest.Wait()
	if !done() {
		t.Fatalf("%s: not after the inbox was quiet for %s", what, tidyAfter)
	}
}

// addSync adds m to ib and returns the result its sender would get.
func addSync(ib *Inbox, m *wire.Message) error {
	errc := make(chan error, 1)
	ib.Add(m, nil, false, func(err error) { errc <- err })
	return <-errc
}

func testMessage(i int) *wire.Message {
	return &wire.Message{
		ID: fmt.Sprintf("01TEST%020d", i), From: "alice", To: "bob", Kind: wire.KindMessage,
		Body: fmt.Sprintf("message %d", i), SentAt: time.Unix(1_700_000_000, 0).UTC(),
	}
}

// jsonAdd is a message as logs written before recMsg hold it (recAdd, JSON).
type jsonAdd struct{ *wire.Message }

// checkedAdd is a message written while its signature was being verified (recChecked).
type checkedAdd struct{ *wire.Message }

// writeLog writes the log of name under root as a process that died would
// have left it: the records of recs (a *wire.Message is an add record, a jsonAdd
// one in the older JSON form, a checkedAdd one written while its signature was being
// verified, a []string a read record), then tail.
func writeLog(t *testing.T, root, name string, recs []any, tail []byte) {
	t.Helper()
	buf := append([]byte(nil), logMagic...)
	buf = append(buf, 0, 0, 0, 1, 0, 0, 0, 0) // generation 1
	for _, r := range recs {
		var (
			typ byte
			b   []byte
			err error
		)
		switch r := r.(type) {
		case *wire.Message:
			typ = recMsg
			b, err = appendStored(nil, r)
		case checkedAdd:
			typ = recChecked
			b, err = appendStored(nil, r.Message)
		case jsonAdd:
			typ = recAdd
			b, err = json.Marshal(r.Message)
		case []string:
			typ = recRead
			b, err = json.Marshal(r)
		default:
			t.Fatalf("writeLog: record of type %T", r)
		}
		if err != nil {
			t.Fatal(err)
		}
		buf = appendLogRecord(buf, 1, typ, b)
	}
	buf = append(buf, tail...)
	dir := filepath.Join(root, "inbox")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".log"), buf, 0o600); err != nil {
		t.Fatal(err)
	}
}

func ids(ms []wire.Message) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.ID
	}
	return out
}

func TestInboxLogRecordRoundTrip(t *testing.T) {
	payloads := [][]byte{[]byte("a"), {}, bytes.Repeat([]byte("x"), 70000), []byte(`{"ID":"x"}`)}
	var buf []byte
	for _, p := range payloads {
		buf = appendLogRecord(buf, 7, recAdd, p)
	}
	whole := len(buf)
	recs, valid := decodeLogRecords(buf, 7)
	if valid != whole || len(recs) != len(payloads) {
		t.Fatalf("decoded %d records, %d of %d bytes", len(recs), valid, whole)
	}
	for i := range payloads {
		if recs[i][0] != recAdd || !bytes.Equal(recs[i][1:], payloads[i]) {
			t.Fatalf("record %d differs", i)
		}
	}
	cases := map[string]struct {
		data      []byte
		wantRecs  int
		wantValid int
	}{
		"empty":               {nil, 0, 0},
		"short header":        {buf[:5], 0, 0},
		"torn last payload":   {buf[:whole-1], 3, whole - len(payloads[3]) - recHeaderLen - 1},
		"flipped byte":        {flip(buf, recHeaderLen), 0, 0},
		"zeros after":         {append(append([]byte(nil), buf...), make([]byte, 64)...), 4, whole},
		"older generation":    {append(append([]byte(nil), buf...), appendLogRecord(nil, 6, recAdd, []byte("x"))...), 4, whole},
		"length over limit":   {[]byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 7, 0, 0, 0, 0}, 0, 0},
		"length past the end": {[]byte{0, 0, 0, 9, 0, 0, 0, 7, 0, 0, 0, 0, 1}, 0, 0},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			recs, valid := decodeLogRecords(tc.data, 7)
			if len(recs) != tc.wantRecs || valid != tc.wantValid {
				t.Fatalf("got %d records, %d valid bytes; want %d, %d", len(recs), valid, tc.wantRecs, tc.wantValid)
			}
		})
	}
}

func flip(b []byte, i int) []byte {
	c := append([]byte(nil), b...)
	c[i] ^= 0x40
	return c
}

// A process that acknowledged messages and died: the next open finds every
// one not read, once, in order; a torn record at the end (never
// acknowledged) is dropped, and ids it had not yet copied to bbolt still
// de-duplicate.
func TestInboxRecoversFromLog(t *testing.T) { synctest.Test(t, testInboxRecoversFromLog) }

func testInboxRecoversFromLog(t *testing.T) {
	root := t.TempDir()
	m := func(i int) *wire.Message { return testMessage(i) }
	torn, err := appendStored(nil, &wire.Message{ID: "01HZY00000000000000000T0RN", From: "alice", To: "bob", Kind: wire.KindMessage})
	testutil.Must(t, err)
	torn = appendLogRecord(nil, 1, recMsg, torn)
	// m(0) and m(1) as an older version wrote them (JSON), the rest in the
	// binary form: a log of a peer that was upgraded holds both.
	writeLog(t, root, "bob", []any{jsonAdd{m(0)}, jsonAdd{m(1)}, []string{m(0).ID}, m(2), m(3), m(2), []string{m(3).ID}, m(4)}, torn[:len(torn)-3])

	ib := openTestInbox(t, root)
	defer ib.Close()
	if n, _ := ib.State(); n != 3 {
		t.Fatalf("unread after recovery = %d, want 3", n)
	}
	for i := range 5 { // retries of read and unread messages alike
		testutil.Must(t, addSync(ib, m(i)))
	}
	if n, _ := ib.State(); n != 3 {
		t.Fatalf("retries of recovered messages were counted: unread %d", n)
	}
	got, err := ib.Take()
	if err != nil {
		t.Fatal(err)
	}
	want := []string{m(1).ID, m(2).ID, m(4).ID}
	if fmt.Sprint(ids(got)) != fmt.Sprint(want) {
		t.Fatalf("recovered %v, want %v", ids(got), want)
	}
	tidiedWhenQuiet(t, "the read log started over", func() bool {
		var size int64
		testutil.Must(t, ib.withLog(func() { size = ib.log.size }))
		return size == fileHeaderLen
	})
	for i := range 5 { // now remembered in bbolt only
		testutil.Must(t, addSync(ib, m(i)))
	}
	if n, _ := ib.State(); n != 0 {
		t.Fatalf("a message already read was taken again: unread %d", n)
	}
}

// A restart keeps unread messages, and reads survive it too.
func TestInboxRestart(t *testing.T) {
	root := t.TempDir()
	ib := openTestInbox(t, root)
	for i := range 10 {
		testutil.Must(t, addSync(ib, testMessage(i)))
	}
	if n, err := ib.Remove([]string{testMessage(3).ID, testMessage(7).ID}); err != nil || n != 2 {
		t.Fatalf("remove: %d %v", n, err)
	}
	testutil.Must(t, ib.Close())
	ib = openTestInbox(t, root)
	defer ib.Close()
	got, err := ib.Take()
	if err != nil || len(got) != 8 {
		t.Fatalf("after restart: %v, %v", ids(got), err)
	}
	for _, m := range got {
		if m.ID == testMessage(3).ID || m.ID == testMessage(7).ID {
			t.Fatalf("a message marked read came back: %s", m.ID)
		}
	}
}

// An inbox written by the previous version (unread messages in bbolt) is
// moved into the log at open, once.
func TestInboxMovesLegacyUnread(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "inbox")
	testutil.Must(t, os.MkdirAll(dir, 0o700))
	db, err := bbolt.Open(filepath.Join(dir, "bob.db"), 0o600, nil)
	testutil.Must(t, err)
	testutil.Must(t, db.Update(func(tx *bbolt.Tx) error {
		u, err := tx.CreateBucket(bucketUnread)
		if err != nil {
			return err
		}
		for i := range 3 {
			b, _ := json.Marshal(testMessage(i))
			if err := u.Put([]byte{0, 0, 0, 0, 0, 0, 0, byte(i + 1)}, b); err != nil {
				return err
			}
		}
		_, err = tx.CreateBucket(bucketSeen)
		return err
	}))
	testutil.Must(t, db.Close())
	for range 2 { // the second open finds nothing more to move
		ib := openTestInbox(t, root)
		if n, _ := ib.State(); n != 3 {
			t.Fatalf("unread = %d, want 3", n)
		}
		testutil.Must(t, ib.Close())
	}
}

// The writer looks an id up in bbolt only if its ULID time is not after the
// latest one there; retries of ids kept in bbolt must still be recognised,
// after a restart too, and new ids of any time accepted.
func TestInboxDedupByULIDTime(t *testing.T) { synctest.Test(t, testInboxDedupByULIDTime) }

func testInboxDedupByULIDTime(t *testing.T) {
	root := t.TempDir()
	at := func(ms uint64, i int) *wire.Message {
		m := testMessage(i)
		m.ID = ulid.MustNew(ms, strings.NewReader(strings.Repeat("\x01", 16))).String()
		return m
	}
	old, mid, late := at(1_000_000, 1), at(2_000_000, 2), at(3_000_000, 3)
	ib := openTestInbox(t, root)
	testutil.Must(t, addSync(ib, mid))
	if _, err := ib.Take(); err != nil {
		t.Fatal(err)
	}
	tidiedWhenQuiet(t, "the id moved into bbolt", func() bool {
		var n int
		testutil.Must(t, ib.withLog(func() { n = len(ib.newIDs) }))
		return n == 0
	})
	testutil.Must(t, ib.Close())

	ib = openTestInbox(t, root) // seenUpTo comes from bbolt now
	defer ib.Close()
	if got := ib.seenUpTo; got != 2_000_000 {
		t.Fatalf("seenUpTo after restart = %d, want 2000000", got)
	}
	for _, tc := range []struct {
		m      *wire.Message
		unread int
	}{
		{mid, 0},  // a retry of an id in bbolt: recognised
		{old, 1},  // new, but older than the latest in bbolt: looked up, accepted
		{late, 2}, // new and later: accepted without a lookup
		{late, 2}, // its retry: recognised from memory
	} {
		testutil.Must(t, addSync(ib, tc.m))
		if n, _ := ib.State(); n != tc.unread {
			t.Fatalf("after adding %s: unread %d, want %d", tc.m.ID, n, tc.unread)
		}
	}
}

func TestInboxRefusesCorruptLogRecord(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "inbox")
	testutil.Must(t, os.MkdirAll(dir, 0o700))
	testutil.Must(t, os.WriteFile(filepath.Join(dir, "bob.log"), append([]byte("PAFINBX1\x00\x00\x00\x01\x00\x00\x00\x00"), appendLogRecord(nil, 1, recAdd, []byte("not json"))...), 0o600))
	_, err := OpenInbox(Config{Root: root, LargeBody: 10 << 10}, "bob")
	if err == nil {
		t.Fatal("an inbox whose log holds a checksummed record that is not a message opened without error")
	}
	if want := "corrupt record"; !bytes.Contains([]byte(err.Error()), []byte(want)) {
		t.Fatalf("error %q does not say %q", err, want)
	}
}

// Messages are de-duplicated whether the first copy is in the same batch or
// already in the log (TestInboxRecoversFromLog covers ids kept in bbolt), and
// readers see messages as soon as they are acknowledged.
func TestInboxDedupAcrossLogAndStore(t *testing.T) {
	ib := openTestInbox(t, t.TempDir())
	defer ib.Close()
	var wg sync.WaitGroup
	for range 3 { // three copies of 1..20, concurrently
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 1; i <= 20; i++ {
				if err := addSync(ib, testMessage(i)); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	if n, _ := ib.State(); n != 20 {
		t.Fatalf("unread = %d, want 20", n)
	}
	peeked, err := ib.Peek()
	if err != nil || len(peeked) != 20 {
		t.Fatalf("peek: %d messages, %v", len(peeked), err)
	}
	for i := 1; i <= 20; i++ { // retries, after a peek
		testutil.Must(t, addSync(ib, testMessage(i)))
	}
	if n, err := ib.Remove([]string{testMessage(5).ID}); err != nil || n != 1 {
		t.Fatalf("remove: %d %v", n, err)
	}
	got, err := ib.Take()
	if err != nil || len(got) != 19 {
		t.Fatalf("take: %d messages, %v", len(got), err)
	}
	for i := range got[1:] {
		if got[i].ID >= got[i+1].ID {
			t.Fatalf("out of order: %v", ids(got))
		}
	}
}

// A log that is mostly read is rewritten with only the unread messages, and
// they still read back whole and in order.
func TestInboxCompactsLog(t *testing.T) { synctest.Test(t, testInboxCompactsLog) }

func testInboxCompactsLog(t *testing.T) {
	root := t.TempDir()
	ib := openTestInbox(t, root)
	defer ib.Close()
	const n = 1500 // about 1.7 MB of records: over compactAt
	var read []string
	for i := range n {
		m := testMessage(i)
		m.Body = strings.Repeat("y", 1000)
		testutil.Must(t, addSync(ib, m))
		if i%10 != 0 {
			read = append(read, m.ID)
		}
	}
	if got, err := ib.Remove(read); err != nil || got != len(read) {
		t.Fatalf("remove: %d, %v", got, err)
	}
	tidiedWhenQuiet(t, "the log compacted", func() bool {
		var size int64
		testutil.Must(t, ib.withLog(func() { size = ib.log.size }))
		return size < compactAt/2
	})
	got, err := ib.Take()
	if err != nil || len(got) != n/10 {
		t.Fatalf("take: %d, %v", len(got), err)
	}
	for i, m := range got {
		if m.ID != testMessage(i*10).ID || len(m.Body) != 1000 {
			t.Fatalf("message %d after compaction: %s, %d bytes", i, m.ID, len(m.Body))
		}
	}
}

// FuzzDecodeLogRecords: whatever a damaged log holds, reading it never
// panics, and the records it accepts are exactly the valid prefix.
// Stored messages round-trip, File included, and come back equal.
func TestStoredMessageRoundTrip(t *testing.T) {
	for name, m := range map[string]*wire.Message{
		"plain":     testMessage(1),
		"large":     {ID: "01HZY0000000000000000XARGE", From: "alice", To: "bob", Kind: wire.KindReply, Body: "preview …", File: "/state/files/bob/x.md", SentAt: time.UnixMilli(1_700_000_000_123)},
		"broadcast": {ID: "01HZY000000000000000000000", From: "alice", To: "bob", Kind: wire.KindMessage, Broadcast: true, ConversationID: "c1", Intent: "review", ForwardedFrom: "robert", SentAt: time.UnixMilli(5)},
	} {
		t.Run(name, func(t *testing.T) {
			b, err := appendStored(nil, m)
			testutil.Must(t, err)
			got, err := decodeStored(b)
			testutil.Must(t, err)
			if !got.SentAt.Equal(m.SentAt) {
				t.Fatalf("SentAt %v, want %v", got.SentAt, m.SentAt)
			}
			got.SentAt = m.SentAt
			if got != *m {
				t.Fatalf("decoded %+v, want %+v", got, *m)
			}
		})
	}
	if _, err := appendStored(nil, &wire.Message{ID: "01X", File: strings.Repeat("d", 1<<16)}); err == nil {
		t.Fatal("a file path over 64 KiB was encoded")
	}
}

// FuzzDecodeStored: a stored message read back from disk never panics, and
// whatever decodes re-encodes to the same bytes.
func FuzzDecodeStored(f *testing.F) {
	for _, m := range []*wire.Message{testMessage(1), {ID: "01HZY00000000000000000000Z", From: "alice", To: "bob", Kind: wire.KindSystem, File: "/x/y.md", Body: "p"}} {
		b, err := appendStored(nil, m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		f.Add(b[:len(b)-1])
	}
	f.Add([]byte{0, 5, 'a'})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeStored(b)
		if err != nil {
			return
		}
		again, err := appendStored(nil, &m)
		if err != nil {
			t.Fatalf("decoded message does not re-encode: %v", err)
		}
		if n := 2 + (int(b[0])<<8 | int(b[1])); b[n] == 1 {
			// A version 1 record (before signatures) is re-encoded in the current version:
			// the same message, other bytes.
			back, err := decodeStored(again)
			if err != nil || !sameMessage(back, m) {
				t.Fatalf("a version 1 record re-encodes to another message: %+v, %v", back, err)
			}
			return
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("re-encoding differs:\n got %x\nwant %x", again, b)
		}
	})
}

// sameMessage compares two messages, times by instant.
func sameMessage(a, b wire.Message) bool {
	if !a.SentAt.Equal(b.SentAt) {
		return false
	}
	a.SentAt = b.SentAt
	return a == b
}

func FuzzDecodeLogRecords(f *testing.F) {
	f.Add([]byte{})
	f.Add(appendLogRecord(nil, 1, recAdd, []byte(`{"ID":"01A"}`)))
	f.Add(appendLogRecord(appendLogRecord(nil, 1, recRead, []byte(`["a"]`)), 1, recAdd, []byte("bc"))[:25])
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4})
	f.Fuzz(func(t *testing.T, data []byte) {
		recs, valid := decodeLogRecords(data, 1)
		for _, r := range recs {
			if len(r) == 0 {
				t.Fatal("an empty record was accepted")
			}
		}
		if valid < 0 || valid > len(data) {
			t.Fatalf("valid = %d of %d bytes", valid, len(data))
		}
		var again []byte
		for _, r := range recs {
			again = appendLogRecord(again, 1, r[0], r[1:])
		}
		if !bytes.Equal(again, data[:valid]) {
			t.Fatal("the accepted records do not re-encode to the valid prefix")
		}
	})
}

// Peeks run beside the writer (not queued behind it): while messages arrive,
// are read and the log is compacted, every peek sees whole messages in
// arrival order.
func TestInboxPeekBesideWriter(t *testing.T) {
	ib := openTestInbox(t, t.TempDir())
	defer ib.Close()
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		defer close(done)
		for i := range 5000 { // over compactBusyAt
			m := testMessage(i)
			m.Body = strings.Repeat("z", 1200)
			if err := addSync(ib, m); err != nil {
				t.Error(err)
				return
			}
			if i%4 != 0 { // mostly read: the log gets compacted on the way
				if _, err := ib.Remove([]string{m.ID}); err != nil {
					t.Error(err)
					return
				}
			}
		}
	})
	peeks := 0
	for {
		select {
		case <-done:
			wg.Wait()
			if peeks == 0 {
				t.Fatal("no peek ran")
			}
			var size int64
			testutil.Must(t, ib.withLog(func() { size = ib.log.size }))
			if size >= compactBusyAt {
				t.Fatalf("the log was never compacted: %d bytes", size)
			}
			return
		default:
		}
		ms, err := ib.Peek()
		if err != nil {
			t.Fatal(err)
		}
		for i := range ms {
			if len(ms[i].Body) != 1200 || (i > 0 && ms[i-1].ID >= ms[i].ID) {
				t.Fatalf("peek %d: message %d is %s with %d bytes", peeks, i, ms[i].ID, len(ms[i].Body))
			}
		}
		peeks++
	}
}

// A file that is not an inbox log is refused with a message that says what
// to do, and nothing in it is overwritten.
func TestInboxRefusesForeignLog(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "inbox")
	testutil.Must(t, os.MkdirAll(dir, 0o700))
	path := filepath.Join(dir, "bob.log")
	testutil.Must(t, os.WriteFile(path, []byte("something else entirely"), 0o600))
	_, err := OpenInbox(Config{Root: root, LargeBody: 10 << 10}, "bob")
	if err == nil || !strings.Contains(err.Error(), "not an inbox log") || !strings.Contains(err.Error(), "move it away") {
		t.Fatalf("err = %v", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "something else entirely" {
		t.Fatal("the foreign file was changed")
	}
}

// After the log starts over, records of the older generation left past the
// new end are never read back, even when a new record ends exactly where an
// old one did.
func TestInboxLogStartOverIgnoresOldRecords(t *testing.T) {
	root := t.TempDir()
	ib := openTestInbox(t, root)
	for i := range 5 {
		testutil.Must(t, addSync(ib, testMessage(i)))
	}
	if got, err := ib.Take(); err != nil || len(got) != 5 {
		t.Fatalf("take: %d %v", len(got), err)
	}
	testutil.Must(t, ib.withLog(func() { testutil.Must(t, ib.tidy()) })) // starts over
	testutil.Must(t, addSync(ib, testMessage(0)))                        // a retry: known, not added
	testutil.Must(t, addSync(ib, testMessage(10)))                       // same size as message 0's record
	testutil.Must(t, ib.Close())
	ib = openTestInbox(t, root)
	defer ib.Close()
	got, err := ib.Take()
	if err != nil || fmt.Sprint(ids(got)) != fmt.Sprint([]string{testMessage(10).ID}) {
		t.Fatalf("after restart: %v, %v", ids(got), err)
	}
}

// A busy inbox copies its received ids into bbolt beside the writer:
// acknowledgements do not wait for the copy, retries of ids being copied are
// still recognised, and a copy that fails leaves its ids to the next one.
func TestInboxCopiesIDsBesideWriter(t *testing.T) {
	for name, fail := range map[string]bool{"copy succeeds": false, "copy fails": true} {
		t.Run(name, func(t *testing.T) {
			root := t.TempDir()
			ib := openTestInbox(t, root)
			release := make(chan struct{})
			testutil.Must(t, ib.withLog(func() {
				ib.maxNewIDs = 4
				ib.beforeCopy = func() error {
					<-release
					if fail {
						return errors.New("injected copy failure")
					}
					return nil
				}
			}))
			for i := 1; i <= 4; i++ { // the fourth commit starts the copy, which waits for release
				testutil.Must(t, addSync(ib, testMessage(i)))
			}
			// The writer starts the copy after it has acknowledged the batch.
			testutil.WaitFor(t, 5*time.Second, "a copy to start after maxNewIDs ids", func() bool {
				var copying bool
				testutil.Must(t, ib.withLog(func() { copying = ib.copying != nil }))
				return copying
			})
			// While the copy is held: new messages are acknowledged, and retries
			// of the ids in the copy and of new ones are recognised.
			added := make(chan error, 1)
			go func() {
				for _, i := range []int{5, 6, 7, 8, 1, 2, 3, 4, 5, 6} {
					if err := addSync(ib, testMessage(i)); err != nil {
						added <- err
						return
					}
				}
				added <- nil
			}()
			select {
			case err := <-added:
				testutil.Must(t, err)
			case <-time.After(10 * time.Second):
				t.Fatal("acknowledgements waited for the copy of ids into bbolt")
			}
			if n, _ := ib.State(); n != 8 {
				t.Fatalf("unread %d while the copy runs, want 8", n)
			}
			close(release)
			testutil.WaitFor(t, 10*time.Second, "every id to reach bbolt", func() bool {
				var n int
				testutil.Must(t, ib.withLog(func() {
					n = len(ib.newIDs)
					if ib.copying != nil {
						n++
					}
				}))
				return n == 0
			})
			testutil.Must(t, ib.db.View(func(tx *bbolt.Tx) error {
				for i := 1; i <= 8; i++ {
					if tx.Bucket(bucketSeen).Get([]byte(testMessage(i).ID)) == nil {
						t.Errorf("id of message %d is not in bbolt", i)
					}
				}
				return nil
			}))
			got, err := ib.Take()
			if err != nil || len(got) != 8 {
				t.Fatalf("take: %d messages, %v", len(got), err)
			}
			for i, m := range got {
				if m.ID != testMessage(i+1).ID {
					t.Fatalf("message %d is %s: out of order", i, m.ID)
				}
			}
			testutil.Must(t, ib.Close())

			ib = openTestInbox(t, root) // the log is empty now: bbolt alone recognises them
			defer ib.Close()
			for i := 1; i <= 8; i++ {
				testutil.Must(t, addSync(ib, testMessage(i)))
			}
			if n, _ := ib.State(); n != 0 {
				t.Fatalf("after a restart, %d retries were taken for new messages", n)
			}
		})
	}
}

// A large body that cannot be written (the disk is full: here its file is
// /dev/full) is refused with the reason and no path of this machine, leaves
// no part of itself behind, and is stored whole by the sender's retry once
// there is room.
func TestInboxLargeBodyOnAFullDisk(t *testing.T) {
	root := t.TempDir()
	ib := openTestInbox(t, root)
	defer ib.Close()
	m := testMessage(1)
	m.Body = strings.Repeat("0123456789abcdef", 2<<10) // 32 KiB, over the 10 KiB of openTestInbox
	path := filepath.Join(ib.filesDir, largeFileName(m))
	testutil.Must(t, os.MkdirAll(ib.filesDir, 0o700))
	testutil.Must(t, os.Symlink("/dev/full", path))

	err := addSync(ib, m)
	if !errors.Is(err, syscall.ENOSPC) || !strings.Contains(err.Error(), "32768 bytes") {
		t.Fatalf("a large body on a full disk: %v, want ENOSPC saying the size", err)
	}
	if strings.Contains(err.Error(), root) {
		t.Errorf("the error for the sender names a path of this machine: %v", err)
	}
	if _, err := os.Lstat(path); !os.IsNotExist(err) {
		t.Fatalf("the failed file is still there (%v)", err)
	}
	if msgs, err := ib.Peek(); err != nil || len(msgs) != 0 {
		t.Fatalf("unread after the refusal: %d messages (%v), want none", len(msgs), err)
	}

	testutil.Must(t, addSync(ib, m))
	msgs, err := ib.Peek()
	if err != nil || len(msgs) != 1 || msgs[0].File != path {
		t.Fatalf("after the retry: %+v (%v), want one message saved to %s", msgs, err, path)
	}
	data, err := os.ReadFile(path)
	if err != nil || string(data) != m.Body {
		t.Fatalf("saved file: %d bytes (%v), want the whole body of %d", len(data), err, len(m.Body))
	}
}

// Unread messages are shown in each sender's send order (their ids), even
// when they arrived otherwise; other senders' messages and system notices
// keep the places they arrived in.
func TestInboxShowsEachSendersMessagesInSendOrder(t *testing.T) {
	ib := openTestInbox(t, t.TempDir())
	defer ib.Close()
	from := func(i int, sender string, kind wire.Kind) *wire.Message {
		m := testMessage(i)
		m.From, m.Kind = sender, kind
		return m
	}
	arrived := []*wire.Message{
		from(3, "alice", wire.KindMessage), // sent third, came first (directly)
		from(9, "carol", wire.KindMessage),
		from(1, "alice", wire.KindMessage), // handed over by a holder afterwards
		from(7, "never", wire.KindSystem),
		from(2, "alice", wire.KindReply),
		from(8, "carol", wire.KindMessage),
	}
	for _, m := range arrived {
		testutil.Must(t, addSync(ib, m))
	}
	want := []string{"01TEST00000000000000000001", "01TEST00000000000000000008", "01TEST00000000000000000002",
		"01TEST00000000000000000007", "01TEST00000000000000000003", "01TEST00000000000000000009"}
	ids := func(ms []wire.Message) []string {
		var out []string
		for _, m := range ms {
			out = append(out, m.ID)
		}
		return out
	}
	peeked, err := ib.Peek()
	if err != nil || !slices.Equal(ids(peeked), want) {
		t.Fatalf("peek: %v (%v), want %v", ids(peeked), err, want)
	}
	taken, err := ib.Take()
	if err != nil || !slices.Equal(ids(taken), want) {
		t.Fatalf("take: %v (%v), want %v", ids(taken), err, want)
	}
}
