package discovery

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/paf-mesh/paf-mesh/internal/owner"
)

// Security I, attack 2: another local user plants a rendezvous entry for a name (or a
// whole run dir), so that the victim's CLI and hook connect to the attacker's control
// socket. Root stands in for the other user here: it can create files owned by any uid.

const otherUID = 65534 // nobody

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root, to create files owned by another user")
	}
}

func TestAttackForeignRunDirRefused(t *testing.T) {
	requireRoot(t)
	dir := filepath.Join(t.TempDir(), "run")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, otherUID, otherUID); err != nil {
		t.Fatal(err)
	}
	_, err := NewLocal(dir, testLogger(t))
	if !errors.Is(err, owner.ErrNotOwned) || !strings.Contains(err.Error(), "--run-dir") {
		t.Fatalf("NewLocal on another user's dir: %v, want a refusal that says to choose another with --run-dir", err)
	}
}

func TestWorldWritableRunDirMadePrivate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	if _, err := NewLocal(dir, testLogger(t)); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(dir); fi.Mode().Perm() != 0o700 {
		t.Fatalf("run dir mode %v after NewLocal, want 0700", fi.Mode().Perm())
	}
}

func TestAttackPlantedEntryIgnored(t *testing.T) {
	requireRoot(t)
	l := newTestLocal(t)
	advertise(t, l, testEntry("mine", 1001))
	// The attacker's entry: well formed, live (its lock held), but not ours.
	path := filepath.Join(l.Dir(), "evil"+entrySuffix)
	e := withDefaults(Entry{ID: "evil", Addr: "127.0.0.1:1002", Control: filepath.Join(l.Dir(), "evil.sock"), Name: "alice"}, time.Time{})
	data, err := encodeEntry(e)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, path, string(data))
	if err := os.Chown(path, otherUID, otherUID); err != nil {
		t.Fatal(err)
	}
	holdLock(t, path)
	if got := entryIDs(t, l); len(got) != 1 || got[0] != "mine" {
		t.Fatalf("entries = %q, want only ours", got)
	}
	if !exists(path) {
		t.Fatal("another user's entry was deleted; it should be left alone")
	}
}

func TestAttackControlSocketPathNotTrusted(t *testing.T) {
	l := newTestLocal(t)
	// An entry of ours whose socket path points elsewhere (written by an older or a
	// tampered build): refused, whatever is there.
	elsewhere := filepath.Join(t.TempDir(), "x.sock")
	ln, err := net.Listen("unix", elsewhere)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if _, err := l.ControlSocket(Entry{ID: "p1", Control: elsewhere}); !errors.Is(err, owner.ErrNotOwned) {
		t.Fatalf("socket outside the run dir: %v, want a refusal", err)
	}
	// Where it belongs, and ours: accepted.
	want := filepath.Join(l.Dir(), "p2.sock")
	ln2, err := net.Listen("unix", want)
	if err != nil {
		t.Fatal(err)
	}
	defer ln2.Close()
	if got, err := l.ControlSocket(Entry{ID: "p2", Control: want}); err != nil || got != want {
		t.Fatalf("our socket: %q, %v", got, err)
	}
	if got, err := l.ControlSocket(Entry{ID: "p3"}); err != nil || got != "" {
		t.Fatalf("no socket: %q, %v", got, err)
	}
	requireRoot(t)
	if err := os.Lchown(want, otherUID, otherUID); err != nil {
		t.Fatal(err)
	}
	if _, err := l.ControlSocket(Entry{ID: "p2", Control: want}); !errors.Is(err, owner.ErrNotOwned) {
		t.Fatalf("another user's socket: %v, want a refusal", err)
	}
}
