package store

import (
	"os"
	"path/filepath"
	"testing"

	"go.etcd.io/bbolt"

	"github.com/paf-mesh/paf-mesh/internal/testutil"
)

// A new inbox's database is created without waiting for the disk (OpenInbox), and only that:
// once open, every commit syncs again.
func TestNewInboxSyncsAfterOpen(t *testing.T) {
	ib := openTestInbox(t, t.TempDir())
	defer ib.Close()
	if ib.db.NoSync || ib.db.NoGrowSync {
		t.Fatalf("after opening a new inbox: NoSync %v, NoGrowSync %v; want both false", ib.db.NoSync, ib.db.NoGrowSync)
	}
	testutil.Must(t, addSync(ib, testMessage(1)))
	if ib.db.NoSync || ib.db.NoGrowSync {
		t.Fatal("a commit after the open does not sync")
	}
}

// What a crash right after creating a new inbox may leave, the empty database bbolt.Open
// synced without the bucket created after it, opens as an inbox that works.
func TestNewInboxCreationLostInCrash(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "inbox")
	testutil.Must(t, os.MkdirAll(dir, 0o700))
	db, err := bbolt.Open(filepath.Join(dir, "bob.db"), 0o600, nil)
	testutil.Must(t, err)
	testutil.Must(t, db.Close())

	ib := openTestInbox(t, root)
	testutil.Must(t, addSync(ib, testMessage(1)))
	testutil.Must(t, ib.Close())
	ib = openTestInbox(t, root)
	defer ib.Close()
	got, err := ib.Take()
	if err != nil || len(got) != 1 || got[0].ID != testMessage(1).ID {
		t.Fatalf("after reopening: %v, %v; want %s", ids(got), err, testMessage(1).ID)
	}
}
