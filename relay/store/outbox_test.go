package store

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/paf-mesh/paf-mesh/relay/wire"
)

func outboxMsg(id, body string) *wire.Message {
	return &wire.Message{ID: id, From: "alice", To: "bob", Kind: wire.KindMessage, Body: body, SentAt: time.UnixMilli(1700000000000)}
}

func bodiesOf(qs []QueuedMsg) []string {
	var out []string
	for _, q := range qs {
		out = append(out, q.Msg.Body)
	}
	return out
}

// Entries read back in the order they were queued, across a reopen, and a deleted one is
// gone; an outbox closed empty leaves no file, one closed with entries stays for a successor.
func TestOutboxOrderAndReopen(t *testing.T) {
	root := t.TempDir()
	o, err := OpenOutbox(root, "peer1")
	if err != nil {
		t.Fatal(err)
	}
	at := time.UnixMilli(1700000001000)
	// Ids out of order on purpose: the queue's order is what counts, not the ids'.
	ids := []string{"01HZY0000000000000000000AC", "01HZY0000000000000000000AB", "01HZY0000000000000000000AD"}
	var seqs []uint64
	for i, id := range ids {
		seq, err := o.Put(outboxMsg(id, "m"+string(rune('0'+i))), at)
		if err != nil {
			t.Fatal(err)
		}
		seqs = append(seqs, seq)
	}
	if err := o.Delete(seqs[1]); err != nil {
		t.Fatal(err)
	}
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "outbox", "peer1.db")); err != nil {
		t.Fatalf("an outbox closed with entries must stay: %v", err)
	}
	o, err = OpenOutbox(root, "peer1")
	if err != nil {
		t.Fatal(err)
	}
	qs, err := o.List()
	if err != nil {
		t.Fatal(err)
	}
	if got := bodiesOf(qs); !slices.Equal(got, []string{"m0", "m2"}) || !qs[0].QueuedAt.Equal(at) || qs[0].Msg.ID != ids[0] {
		t.Fatalf("after reopen: %v (%+v); want m0 then m2, as queued", got, qs)
	}
	// A new entry goes after the old ones, never in a deleted one's place.
	if _, err := o.Put(outboxMsg("01HZY0000000000000000000AA", "m3"), at); err != nil {
		t.Fatal(err)
	}
	qs, _ = o.List()
	if got := bodiesOf(qs); !slices.Equal(got, []string{"m0", "m2", "m3"}) {
		t.Fatalf("after a new entry: %v", got)
	}
	var all []uint64
	for _, q := range qs {
		all = append(all, q.Seq)
	}
	if err := o.Delete(all...); err != nil || o.Len() != 0 {
		t.Fatalf("delete all: %v, %d left", err, o.Len())
	}
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "outbox", "peer1.db")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("an outbox closed empty must leave no file: %v", err)
	}
}

// An outbox whose peer runs is no orphan; once its peer is gone (the lock released) it is,
// and it can be opened, emptied and removed by another.
func TestOrphanOutboxes(t *testing.T) {
	root := t.TempDir()
	live, err := OpenOutbox(root, "live")
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	if _, err := live.Put(outboxMsg("01HZY0000000000000000000AB", "kept"), time.Now()); err != nil {
		t.Fatal(err)
	}
	gone, err := OpenOutbox(root, "gone")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := gone.Put(outboxMsg("01HZY0000000000000000000AC", "left"), time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := gone.Close(); err != nil {
		t.Fatal(err)
	}
	self, err := OpenOutbox(root, "self")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := self.Put(outboxMsg("01HZY0000000000000000000AD", "mine"), time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := self.Close(); err != nil { // closed, but it is the caller's own
		t.Fatal(err)
	}
	orphans := OrphanOutboxes(root, "self")
	if want := []string{filepath.Join(root, "outbox", "gone.db")}; !slices.Equal(orphans, want) {
		t.Fatalf("orphans %v, want %v (not the live one, not self's)", orphans, want)
	}
	if _, err := OpenOrphanOutbox(live.Path()); !errors.Is(err, bolterrors.ErrTimeout) {
		t.Fatalf("opening a live peer's outbox: %v, want a timeout on its lock", err)
	}
	o, err := OpenOrphanOutbox(orphans[0])
	if err != nil {
		t.Fatal(err)
	}
	qs, err := o.List()
	if err != nil || !slices.Equal(bodiesOf(qs), []string{"left"}) {
		t.Fatalf("orphan's entries: %v, %v", bodiesOf(qs), err)
	}
	if err := o.Remove(); err != nil {
		t.Fatal(err)
	}
	if got := OrphanOutboxes(root, "self"); len(got) != 0 {
		t.Fatalf("orphans after removal: %v", got)
	}
	if OrphanOutboxes(t.TempDir(), "x") != nil {
		t.Fatal("a state dir without outboxes has orphans")
	}
}

// A peer id that is not a plain file name is refused, not turned into a path.
func TestOutboxRefusesPathIDs(t *testing.T) {
	for _, id := range []string{"", "../x", "a/b", "a.b"} {
		if _, err := OpenOutbox(t.TempDir(), id); err == nil {
			t.Errorf("OpenOutbox(%q) accepted", id)
		}
	}
}

// A damaged entry is reported and left in place; the others are still returned.
func TestOutboxDamagedEntry(t *testing.T) {
	root := t.TempDir()
	o, err := OpenOutbox(root, "p")
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	if _, err := o.Put(outboxMsg("01HZY0000000000000000000AB", "good"), time.Now()); err != nil {
		t.Fatal(err)
	}
	err = o.db.Update(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketQueued).Put([]byte{0, 0, 0, 0, 0, 0, 0, 9}, []byte("not a message at all"))
	})
	if err != nil {
		t.Fatal(err)
	}
	qs, err := o.List()
	if !errors.Is(err, wire.ErrBadMessage) || !slices.Equal(bodiesOf(qs), []string{"good"}) {
		t.Fatalf("list with a damaged entry: %v, %v; want the good one and ErrBadMessage", bodiesOf(qs), err)
	}
}
