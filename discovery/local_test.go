package discovery

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/paf-mesh/paf-mesh/internal/testutil"
)

func newTestLocal(t *testing.T) *Local {
	t.Helper()
	l, err := NewLocal(filepath.Join(t.TempDir(), "run"), testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func testEntry(id string, port int) Entry {
	return Entry{ID: id, Addr: fmt.Sprintf("127.0.0.1:%d", port), Control: "/tmp/" + id + ".sock", Name: "n-" + id}
}

func advertise(t *testing.T, l *Local, e Entry) *Advert {
	t.Helper()
	a, err := l.Advertise(e)
	if err != nil {
		t.Fatalf("Advertise(%s): %v", e.ID, err)
	}
	t.Cleanup(func() { _ = a.Close() })
	return a
}

func entryIDs(t *testing.T, l *Local) []string {
	t.Helper()
	es, err := l.Entries()
	if err != nil {
		t.Fatalf("Entries: %v", err)
	}
	ids := make([]string, 0, len(es))
	for _, e := range es {
		ids = append(ids, e.ID)
	}
	return ids
}

// holdLock opens path separately and holds an exclusive flock on it, as a live advertiser
// would, until the test ends.
func holdLock(t *testing.T, path string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Close() })
	if free, err := flock(f, unix.LOCK_EX|unix.LOCK_NB); err != nil || !free {
		t.Fatalf("lock %s: free=%v err=%v", path, free, err)
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

func TestLocalSeesLiveEntries(t *testing.T) {
	l := newTestLocal(t)
	advertise(t, l, testEntry("peer-b", 2))
	advertise(t, l, testEntry("peer-a", 1))

	es, err := l.Entries()
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 2 {
		t.Fatalf("Entries = %+v, want 2", es)
	}
	host, _ := os.Hostname()
	for i, id := range []string{"peer-a", "peer-b"} {
		e, want := es[i], testEntry(id, i+1)
		if e.ID != want.ID || e.Addr != want.Addr || e.Control != want.Control || e.Name != want.Name ||
			e.PID != os.Getpid() || e.Host != host || e.Version != 1 || e.Started.IsZero() {
			t.Errorf("entry %d = %+v, want %+v with pid, host, version and start filled", i, e, want)
		}
	}

	l.Self = "peer-a"
	got, err := l.Candidates(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := []Candidate{{ID: "peer-b", Addr: "127.0.0.1:2", Source: SourceLocal, Name: "n-peer-b"}}
	if !slices.Equal(got, want) {
		t.Fatalf("Candidates = %+v, want %+v", got, want)
	}
}

func TestLocalRemovesStaleEntries(t *testing.T) {
	tests := map[string]struct {
		make     func(t *testing.T, l *Local) string // returns the path of the stale entry
		wantWarn bool
	}{
		"advertiser died": {
			make: func(t *testing.T, l *Local) string {
				a := advertise(t, l, testEntry("dead", 1))
				a.abandon()
				return a.Path()
			},
		},
		"hand-written unlocked entry": {
			make: func(t *testing.T, l *Local) string {
				p := filepath.Join(l.Dir(), "gone.json")
				writeFile(t, p, `{"id":"gone","addr":"127.0.0.1:9","v":1}`)
				return p
			},
		},
		"unlocked corrupt entry": {
			make: func(t *testing.T, l *Local) string {
				p := filepath.Join(l.Dir(), "junk.json")
				writeFile(t, p, `{"id":`)
				return p
			},
			wantWarn: true,
		},
		"unlocked entry of a future version": {
			make: func(t *testing.T, l *Local) string {
				p := filepath.Join(l.Dir(), "future.json")
				writeFile(t, p, `{"id":"future","addr":"127.0.0.1:9","v":2}`)
				return p
			},
			wantWarn: true,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			logger, buf := bufLogger()
			l, err := NewLocal(t.TempDir(), logger)
			if err != nil {
				t.Fatal(err)
			}
			advertise(t, l, testEntry("alive", 2))
			stale := tc.make(t, l)

			if got := entryIDs(t, l); !slices.Equal(got, []string{"alive"}) {
				t.Fatalf("Entries = %q, want only the live one", got)
			}
			if exists(stale) {
				t.Fatalf("stale entry %s was not removed", stale)
			}
			if warned := strings.Contains(buf.String(), "level=WARN"); warned != tc.wantWarn {
				t.Fatalf("warned = %v, want %v; log:\n%s", warned, tc.wantWarn, buf)
			}
		})
	}
}

func TestLocalSkipsCorruptLiveEntriesAndWarnsOnce(t *testing.T) {
	tests := map[string]struct {
		file    string
		content string
		wantLog string
	}{
		"garbage":              {file: "g.json", content: "not json at all", wantLog: "skipping unreadable entry"},
		"truncated":            {file: "t.json", content: `{"id":"t","addr":"127.0.0.1:1"`, wantLog: "unexpected EOF"},
		"trailing data":        {file: "d.json", content: `{"id":"d","addr":"127.0.0.1:1","v":1} {}`, wantLog: "data after"},
		"future version":       {file: "f.json", content: `{"id":"f","addr":"127.0.0.1:1","v":7}`, wantLog: "written by a newer paf-peer"},
		"missing version":      {file: "m.json", content: `{"id":"m","addr":"127.0.0.1:1"}`, wantLog: "version 0"},
		"id not the file name": {file: "x.json", content: `{"id":"y","addr":"127.0.0.1:1","v":1}`, wantLog: "does not match the file name"},
		"bad addr":             {file: "a.json", content: `{"id":"a","addr":"nowhere","v":1}`, wantLog: "bad addr"},
		"too big":              {file: "b.json", content: `{"id":"b","addr":"127.0.0.1:1","v":1,"x":"` + strings.Repeat("x", maxEntrySize) + `"}`, wantLog: "more than"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			logger, buf := bufLogger()
			l, err := NewLocal(t.TempDir(), logger)
			if err != nil {
				t.Fatal(err)
			}
			advertise(t, l, testEntry("good", 1))
			path := filepath.Join(l.Dir(), tc.file)
			writeFile(t, path, tc.content)
			holdLock(t, path)

			for range 3 {
				if got := entryIDs(t, l); !slices.Equal(got, []string{"good"}) {
					t.Fatalf("Entries = %q, want only the good one", got)
				}
			}
			log := buf.String()
			if n := strings.Count(log, "level=WARN"); n != 1 || !strings.Contains(log, tc.wantLog) || !strings.Contains(log, tc.file) {
				t.Fatalf("want one Warn naming %s and containing %q, got %d:\n%s", tc.file, tc.wantLog, n, log)
			}
			if !exists(path) {
				t.Fatal("a locked (live) corrupt entry was removed")
			}

			// A corrupt replacement is a new problem and is reported again.
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
			writeFile(t, path, "{{{")
			holdLock(t, path)
			entryIDs(t, l)
			entryIDs(t, l)
			if n := strings.Count(buf.String(), "level=WARN"); n != 2 {
				t.Fatalf("after replacement: %d warnings, want 2:\n%s", n, buf)
			}
		})
	}
}

func TestLocalIgnoresOtherFiles(t *testing.T) {
	l := newTestLocal(t)
	dir := l.Dir()
	advertise(t, l, testEntry("p", 1))

	notes := filepath.Join(dir, "notes.txt")
	writeFile(t, notes, "hello")
	freshTemp := filepath.Join(dir, ".q.123.tmp")
	writeFile(t, freshTemp, `{"id":"q","addr":"127.0.0.1:2","v":1}`)
	oldTemp := filepath.Join(dir, ".r.456.tmp")
	writeFile(t, oldTemp, `{"id":"r"`)
	old := time.Now().Add(-2 * tempGrace)
	if err := os.Chtimes(oldTemp, old, old); err != nil {
		t.Fatal(err)
	}
	lockedOldTemp := filepath.Join(dir, ".s.789.tmp")
	writeFile(t, lockedOldTemp, `{}`)
	if err := os.Chtimes(lockedOldTemp, old, old); err != nil {
		t.Fatal(err)
	}
	holdLock(t, lockedOldTemp)
	if err := os.Mkdir(filepath.Join(dir, "d.json"), 0o700); err != nil {
		t.Fatal(err)
	}
	// A symlink to a valid, locked entry elsewhere must not be followed.
	elsewhere := filepath.Join(t.TempDir(), "link.json")
	writeFile(t, elsewhere, `{"id":"link","addr":"127.0.0.1:3","v":1}`)
	holdLock(t, elsewhere)
	if err := os.Symlink(elsewhere, filepath.Join(dir, "link.json")); err != nil {
		t.Fatal(err)
	}
	// A FIFO would block a plain open; it must be skipped instead.
	if err := unix.Mkfifo(filepath.Join(dir, "fifo.json"), 0o600); err != nil {
		t.Fatal(err)
	}

	if got := entryIDs(t, l); !slices.Equal(got, []string{"p"}) {
		t.Fatalf("Entries = %q, want [p]", got)
	}
	for path, want := range map[string]bool{notes: true, freshTemp: true, oldTemp: false, lockedOldTemp: true} {
		if exists(path) != want {
			t.Errorf("%s exists = %v, want %v", filepath.Base(path), !want, want)
		}
	}
}

func TestAdvertUpdate(t *testing.T) {
	l := newTestLocal(t)
	a := advertise(t, l, testEntry("p", 1))
	first, err := l.Entries()
	if err != nil || len(first) != 1 {
		t.Fatalf("Entries = %+v, %v", first, err)
	}

	e := testEntry("", 2)
	e.Name = "renamed"
	if err := a.Update(e); err != nil {
		t.Fatal(err)
	}
	got, err := l.Entries()
	if err != nil || len(got) != 1 {
		t.Fatalf("Entries = %+v, %v", got, err)
	}
	if got[0].ID != "p" || got[0].Addr != "127.0.0.1:2" || got[0].Name != "renamed" || !got[0].Started.Equal(first[0].Started) {
		t.Fatalf("after Update: %+v, want id p, new addr and name, same start %v", got[0], first[0].Started)
	}
	if names := testutil.DirNames(t, l.Dir()); !slices.Equal(names, []string{"p.json"}) {
		t.Fatalf("dir holds %q, want only p.json", names)
	}
	if fi, err := os.Stat(a.Path()); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("entry mode = %v, %v; want 0600", fi.Mode().Perm(), err)
	}

	bad := map[string]Entry{
		"other id": testEntry("q", 3),
		"bad addr": {Addr: "nowhere"},
	}
	for name, e := range bad {
		t.Run(name, func(t *testing.T) {
			if err := a.Update(e); err == nil {
				t.Fatal("Update succeeded, want error")
			}
			if got := entryIDs(t, l); !slices.Equal(got, []string{"p"}) {
				t.Fatalf("after failed Update, Entries = %q, want [p]", got)
			}
		})
	}
}

func TestAdvertClose(t *testing.T) {
	l := newTestLocal(t)
	a := advertise(t, l, testEntry("p", 1))
	for i := range 2 {
		if err := a.Close(); err != nil {
			t.Fatalf("Close #%d: %v", i+1, err)
		}
	}
	if exists(a.Path()) {
		t.Fatal("Close left the entry file")
	}
	if err := a.Update(testEntry("p", 2)); !errors.Is(err, ErrClosed) {
		t.Fatalf("Update after Close: %v, want ErrClosed", err)
	}
	if got := entryIDs(t, l); len(got) != 0 {
		t.Fatalf("Entries = %q, want none", got)
	}
	advertise(t, l, testEntry("p", 1)) // the id is free again
}

func TestAdvertiseIDInUse(t *testing.T) {
	l := newTestLocal(t)
	advertise(t, l, testEntry("p", 1))
	if _, err := l.Advertise(testEntry("p", 2)); !errors.Is(err, ErrIDInUse) {
		t.Fatalf("second Advertise: %v, want ErrIDInUse", err)
	}
	es, err := l.Entries()
	if err != nil || len(es) != 1 || es[0].Addr != "127.0.0.1:1" {
		t.Fatalf("Entries = %+v, %v; want the first advert untouched", es, err)
	}
}

func TestAdvertiseTakesOverDeadPeersID(t *testing.T) {
	l := newTestLocal(t)
	advertise(t, l, testEntry("p", 1)).abandon()
	advertise(t, l, testEntry("p", 2))
	es, err := l.Entries()
	if err != nil || len(es) != 1 || es[0].Addr != "127.0.0.1:2" {
		t.Fatalf("Entries = %+v, %v; want the new advert", es, err)
	}
}

func TestAdvertCloseLeavesReplacement(t *testing.T) {
	l := newTestLocal(t)
	a := advertise(t, l, testEntry("p", 1))
	// Something else renames a new file over the path (e.g. an operator restoring a backup).
	repl := filepath.Join(l.Dir(), "replacement")
	writeFile(t, repl, `{"id":"p","addr":"127.0.0.1:5","v":1}`)
	if err := os.Rename(repl, a.Path()); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if !exists(a.Path()) {
		t.Fatal("Close removed a file it does not own")
	}
}

func TestAdvertiseRejectsBadEntries(t *testing.T) {
	tests := map[string]Entry{
		"empty id":       {Addr: "127.0.0.1:1"},
		"slash in id":    {ID: "a/b", Addr: "127.0.0.1:1"},
		"dot id":         {ID: ".hidden", Addr: "127.0.0.1:1"},
		"dotdot id":      {ID: "..", Addr: "127.0.0.1:1"},
		"control in id":  {ID: "a\nb", Addr: "127.0.0.1:1"},
		"long id":        {ID: strings.Repeat("x", maxIDLen+1), Addr: "127.0.0.1:1"},
		"no addr":        {ID: "p"},
		"addr no port":   {ID: "p", Addr: "127.0.0.1"},
		"addr port zero": {ID: "p", Addr: "127.0.0.1:0"},
	}
	l := newTestLocal(t)
	for name, e := range tests {
		t.Run(name, func(t *testing.T) {
			a, err := l.Advertise(e)
			if err == nil {
				_ = a.Close()
				t.Fatalf("Advertise(%+v) succeeded, want error", e)
			}
			if !strings.HasPrefix(err.Error(), "discovery: advertise") {
				t.Fatalf("error %q lacks context", err)
			}
		})
	}
	if names := testutil.DirNames(t, l.Dir()); len(names) != 0 {
		t.Fatalf("failed adverts left %q", names)
	}
}

func TestNewLocal(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "run")
	l, err := NewLocal(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("run dir mode = %v, %v; want 0700", fi.Mode().Perm(), err)
	}
	if names := testutil.DirNames(t, dir); len(names) != 0 {
		t.Fatalf("NewLocal left %q behind", names)
	}
	if got := entryIDs(t, l); len(got) != 0 {
		t.Fatalf("Entries = %q in a new dir", got)
	}
}

func TestNewLocalUnusableDir(t *testing.T) {
	// A path below a regular file fails even for root, who ignores permission bits.
	file := filepath.Join(t.TempDir(), "file")
	writeFile(t, file, "")
	dir := filepath.Join(file, "run")
	_, err := NewLocal(dir, nil)
	if err == nil {
		t.Fatal("NewLocal succeeded below a regular file")
	}
	msg := err.Error()
	if !strings.Contains(msg, dir) || !strings.Contains(msg, "--run-dir") || strings.Contains(msg, "\n") ||
		!errors.Is(err, unix.ENOTDIR) {
		t.Fatalf("error = %q, want one line naming %s and --run-dir, wrapping ENOTDIR", msg, dir)
	}
}

// TestEntriesNeverMissesUpdatingPeer checks the central promise: a peer that keeps rewriting its
// entry is seen as live by every concurrent scan, and no scan removes its entry.
func TestEntriesNeverMissesUpdatingPeer(t *testing.T) {
	l := newTestLocal(t)
	a := advertise(t, l, testEntry("busy", 1))

	const updates = 300
	var wg sync.WaitGroup
	done := make(chan struct{})
	wg.Go(func() {
		defer close(done)
		for i := range updates {
			if err := a.Update(testEntry("busy", 1+i%1000)); err != nil {
				t.Errorf("Update: %v", err)
				return
			}
		}
	})
	for range 3 {
		wg.Go(func() {
			for {
				select {
				case <-done:
					return
				default:
				}
				es, err := l.Entries()
				if err != nil {
					t.Errorf("Entries: %v", err)
					return
				}
				if len(es) != 1 || es[0].ID != "busy" {
					t.Errorf("Entries during updates = %+v, want the busy peer", es)
					return
				}
			}
		})
	}
	wg.Wait()
	if names := testutil.DirNames(t, l.Dir()); !slices.Equal(names, []string{"busy.json"}) {
		t.Fatalf("dir holds %q after updates, want only busy.json", names)
	}
}

// A round reads an entry's file once: seen again (same name, inode, size and time), the entry
// decoded before is returned after its owner's lock is checked, without reading the file. A
// peer's update is a new file, read at once; a withdrawn entry is forgotten.
func TestEntriesReadEachFileOnce(t *testing.T) {
	l := newTestLocal(t)
	a := advertise(t, l, testEntry("p", 1))
	if es, err := l.Entries(); err != nil || len(es) != 1 || es[0].Name != "n-p" {
		t.Fatalf("Entries = %+v, %v", es, err)
	}
	// Change the file's bytes in place, keeping its size and time: this is no update a peer
	// makes, and shows the file is not read again.
	fi, err := os.Stat(a.Path())
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(a.Path())
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(a.Path(), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte(strings.Replace(string(data), `"n-p"`, `"x-p"`, 1)), 0); err != nil {
		t.Fatal(err)
	}
	testutil.Must(t, f.Close())
	testutil.Must(t, os.Chtimes(a.Path(), fi.ModTime(), fi.ModTime()))
	if es, err := l.Entries(); err != nil || len(es) != 1 || es[0].Name != "n-p" {
		t.Fatalf("Entries of the unchanged file = %+v, %v; want the entry decoded before (n-p)", es, err)
	}

	e := testEntry("", 1)
	e.Name = "renamed"
	testutil.Must(t, a.Update(e))
	if es, err := l.Entries(); err != nil || len(es) != 1 || es[0].Name != "renamed" {
		t.Fatalf("Entries after an update = %+v, %v; want the new name", es, err)
	}

	testutil.Must(t, a.Close())
	if es, err := l.Entries(); err != nil || len(es) != 0 {
		t.Fatalf("Entries after the advert closed = %+v, %v; want none", es, err)
	}
	l.mu.Lock()
	n := len(l.decoded)
	l.mu.Unlock()
	if n != 0 {
		t.Fatalf("%d decoded entries remembered after the only one was withdrawn", n)
	}
}
