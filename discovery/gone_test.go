package discovery

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestGone(t *testing.T) {
	tests := map[string]struct {
		make func(t *testing.T, l *Local) string // returns the id to ask about
		want bool
	}{
		"live entry": {
			make: func(t *testing.T, l *Local) string { return advertise(t, l, testEntry("live", 1)).id },
		},
		"advertiser died": {
			make: func(t *testing.T, l *Local) string {
				a := advertise(t, l, testEntry("dead", 1))
				a.abandon()
				return a.id
			},
			want: true,
		},
		"advertiser died, entry already buried by a reader": {
			make: func(t *testing.T, l *Local) string {
				a := advertise(t, l, testEntry("dead", 1))
				a.abandon()
				entryIDs(t, l) // the scan buries it
				if exists(a.Path()) {
					t.Fatalf("the scan left the dead entry in place")
				}
				return a.id
			},
			want: true,
		},
		"advertiser closed its entry (a clean stop)": {
			make: func(t *testing.T, l *Local) string {
				a := advertise(t, l, testEntry("stopped", 1))
				if err := a.Close(); err != nil {
					t.Fatal(err)
				}
				return a.id
			},
		},
		"never advertised here": {
			make: func(t *testing.T, l *Local) string { return "elsewhere" },
		},
		"invalid id": {
			make: func(t *testing.T, l *Local) string { return "../x" },
		},
		"dead peer's id advertised again by a live one": {
			make: func(t *testing.T, l *Local) string {
				advertise(t, l, testEntry("again", 1)).abandon()
				entryIDs(t, l)
				return advertise(t, l, testEntry("again", 2)).id
			},
		},
		"hand-written entry nobody holds": {
			make: func(t *testing.T, l *Local) string {
				writeFile(t, filepath.Join(l.Dir(), "orphan.json"), `{"id":"orphan","addr":"127.0.0.1:9","v":1}`)
				return "orphan"
			},
			want: true,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			l := newTestLocal(t)
			id := tc.make(t, l)
			if got := l.Gone(id); got != tc.want {
				t.Fatalf("Gone(%q) = %v, want %v", id, got, tc.want)
			}
			// Asking again gives the same answer (a dead entry was buried on the way).
			if got := l.Gone(id); got != tc.want {
				t.Fatalf("Gone(%q) asked again = %v, want %v", id, got, tc.want)
			}
		})
	}
}

// A peer that starts after another died, and after a reader buried its entry, still learns of
// the death from the tombstone; a live peer's entry is never buried.
func TestGoneSeenByAnotherReader(t *testing.T) {
	l := newTestLocal(t)
	live := advertise(t, l, testEntry("live", 1))
	dead := advertise(t, l, testEntry("dead", 2))
	dead.abandon()
	if !l.Gone("dead") {
		t.Fatal("Gone(dead) = false for an entry whose owner's lock is free")
	}
	later, err := NewLocal(l.Dir(), testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if !later.Gone("dead") {
		t.Fatal("a later reader: Gone(dead) = false after the entry was buried")
	}
	if later.Gone("live") || !exists(live.Path()) {
		t.Fatal("a later reader takes the live peer for gone, or its entry was moved")
	}
}

// Tombstones are kept for goneKeep after the burial, then swept by a scan.
func TestGoneTombstoneSwept(t *testing.T) {
	l := newTestLocal(t)
	advertise(t, l, testEntry("dead", 1)).abandon()
	if !l.Gone("dead") {
		t.Fatal("Gone(dead) = false")
	}
	grave := filepath.Join(l.Dir(), ".dead"+goneSuffix)
	entryIDs(t, l)
	if !exists(grave) {
		t.Fatal("a scan swept a fresh tombstone")
	}
	young := time.Now().Add(-goneKeep + time.Minute)
	if err := os.Chtimes(grave, young, young); err != nil {
		t.Fatal(err)
	}
	entryIDs(t, l)
	if !exists(grave) || !l.Gone("dead") {
		t.Fatal("a scan swept a tombstone younger than goneKeep")
	}
	old := time.Now().Add(-goneKeep - time.Minute)
	if err := os.Chtimes(grave, old, old); err != nil {
		t.Fatal(err)
	}
	entryIDs(t, l)
	if exists(grave) {
		t.Fatal("a scan kept a tombstone older than goneKeep")
	}
	if l.Gone("dead") {
		t.Fatal("Gone(dead) = true once its tombstone is swept")
	}
}
