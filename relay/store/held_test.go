package store

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/paf-mesh/paf-mesh/relay/wire"
)

// testClock is a settable clock for expiry.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func openTestHeld(t *testing.T, dir string, now func() time.Time) *Held {
	t.Helper()
	h, err := OpenHeld(dir, now)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// heldFor is message i addressed to name.
func heldFor(i int, name string) *wire.Message {
	m := testMessage(i)
	m.To = name
	return m
}

func putOK(t *testing.T, h *Held, m *wire.Message, quota int) bool {
	t.Helper()
	added, err := h.Put(m, time.Hour, "192.0.2.1", HeldLimits{NameMessages: quota})
	if err != nil {
		t.Fatalf("put %s for %s: %v", m.ID, m.To, err)
	}
	return added
}

func heldIDs(t *testing.T, h *Held, name string) []string {
	t.Helper()
	recs, err := h.List(name)
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]string, len(recs))
	for i, r := range recs {
		if r.Msg.To != name {
			t.Fatalf("record %s for %q listed under %q", r.Msg.ID, r.Msg.To, name)
		}
		ids[i] = r.Msg.ID
	}
	return ids
}

// Held messages are listed in id (send) order, counted per name, kept once however often
// they are offered, dropped by id, and all of it survives a reopen.
func TestHeldPutListDropAndReopen(t *testing.T) {
	dir := t.TempDir()
	h := openTestHeld(t, dir, time.Now)
	for _, i := range []int{3, 1, 2} {
		if !putOK(t, h, heldFor(i, "bob"), 0) {
			t.Fatalf("message %d not added", i)
		}
	}
	if putOK(t, h, heldFor(2, "bob"), 0) {
		t.Fatal("a message already held was added again")
	}
	putOK(t, h, heldFor(9, "carol"), 0)

	want := []string{testMessage(1).ID, testMessage(2).ID, testMessage(3).ID}
	if got := heldIDs(t, h, "bob"); !slices.Equal(got, want) {
		t.Fatalf("bob's held ids %v, want %v (send order)", got, want)
	}
	if msgs, names := h.Totals(); msgs != 4 || names != 2 || h.Count("bob") != 3 || h.Count("dave") != 0 {
		t.Fatalf("totals %d/%d, bob %d, dave %d; want 4/2, 3, 0", msgs, names, h.Count("bob"), h.Count("dave"))
	}
	if got := h.Names(); !slices.Equal(slices.Sorted(slices.Values(got)), []string{"bob", "carol"}) {
		t.Fatalf("names %v", got)
	}

	// Dropping an id that is not held (or a name with nothing held) changes nothing.
	if err := h.Drop("bob", []string{testMessage(1).ID, testMessage(7).ID}); err != nil {
		t.Fatal(err)
	}
	if err := h.Drop("nobody", []string{testMessage(1).ID}); err != nil {
		t.Fatal(err)
	}
	if got := heldIDs(t, h, "bob"); !slices.Equal(got, want[1:]) || h.Count("bob") != 2 {
		t.Fatalf("after a drop: %v (count %d), want %v", got, h.Count("bob"), want[1:])
	}
	if err := h.Drop("carol", []string{testMessage(9).ID}); err != nil {
		t.Fatal(err)
	}
	if got := h.Names(); !slices.Equal(got, []string{"bob"}) {
		t.Fatalf("names after carol's last message was dropped: %v", got)
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}

	h = openTestHeld(t, dir, time.Now)
	defer h.Close()
	if got := heldIDs(t, h, "bob"); !slices.Equal(got, want[1:]) {
		t.Fatalf("after reopening: %v, want %v", got, want[1:])
	}
	if msgs, names := h.Totals(); msgs != 2 || names != 1 {
		t.Fatalf("after reopening: totals %d/%d, want 2/1", msgs, names)
	}
	if recs, err := h.List("carol"); err != nil || len(recs) != 0 {
		t.Fatalf("carol after reopening: %v, %v", recs, err)
	}
}

// A name's quota refuses one message more with ErrQuota, counts per name, and does not
// refuse a message already held (a retry).
func TestHeldQuota(t *testing.T) {
	h := openTestHeld(t, t.TempDir(), time.Now)
	defer h.Close()
	putOK(t, h, heldFor(1, "bob"), 2)
	putOK(t, h, heldFor(2, "bob"), 2)
	added, err := h.Put(heldFor(3, "bob"), time.Hour, "192.0.2.1", HeldLimits{NameMessages: 2})
	if !errors.Is(err, ErrQuota) || added {
		t.Fatalf("third message over a quota of 2: added %v, %v; want ErrQuota", added, err)
	}
	if putOK(t, h, heldFor(2, "bob"), 2) {
		t.Fatal("a retry at the quota was added")
	}
	putOK(t, h, heldFor(3, "carol"), 2) // another name's quota is its own
	if h.Count("bob") != 2 {
		t.Fatalf("bob holds %d, want 2", h.Count("bob"))
	}
}

// A record expires at its store time plus its TTL, by the store's clock, whatever its name.
func TestHeldExpired(t *testing.T) {
	clock := &testClock{now: time.Unix(1_700_000_000, 0)}
	h := openTestHeld(t, t.TempDir(), clock.Now)
	defer h.Close()
	if _, err := h.Put(heldFor(1, "bob"), time.Minute, "", HeldLimits{}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Put(heldFor(2, "carol"), time.Hour, "", HeldLimits{}); err != nil {
		t.Fatal(err)
	}
	if recs, err := h.Expired(); err != nil || len(recs) != 0 {
		t.Fatalf("expired at once: %v, %v", recs, err)
	}
	clock.Advance(time.Minute)
	recs, err := h.Expired()
	if err != nil || len(recs) != 1 || recs[0].Msg.ID != testMessage(1).ID || !recs[0].Expires.Equal(clock.Now()) {
		t.Fatalf("after a minute: %+v, %v; want message 1, expiring now", recs, err)
	}
	if want := clock.Now().Add(-time.Minute); !recs[0].StoredAt.Equal(want) {
		t.Fatalf("stored at %v, want %v", recs[0].StoredAt, want)
	}
	clock.Advance(time.Hour)
	if recs, err := h.Expired(); err != nil || len(recs) != 2 {
		t.Fatalf("after an hour more: %d records, %v; want 2", len(recs), err)
	}
}

// Adopt merges another peer's held.db: what is new is added and counted, what is already
// held is kept once, and the expiry stays the one the other peer gave.
func TestHeldAdopt(t *testing.T) {
	clock := &testClock{now: time.Unix(1_700_000_000, 0)}
	otherDir := t.TempDir()
	other := openTestHeld(t, otherDir, clock.Now)
	for _, m := range []*wire.Message{heldFor(1, "bob"), heldFor(2, "bob"), heldFor(3, "carol")} {
		if _, err := other.Put(m, time.Minute, "", HeldLimits{}); err != nil {
			t.Fatal(err)
		}
	}
	if err := other.Close(); err != nil {
		t.Fatal(err)
	}

	clock.Advance(time.Second)
	h := openTestHeld(t, t.TempDir(), clock.Now)
	defer h.Close()
	putOK(t, h, heldFor(2, "bob"), 0)
	n, err := h.Adopt(filepath.Join(otherDir, heldFile))
	if err != nil || n != 2 {
		t.Fatalf("adopt: %d, %v; want 2 new messages", n, err)
	}
	if msgs, names := h.Totals(); msgs != 3 || names != 2 || h.Count("bob") != 2 {
		t.Fatalf("after adopting: totals %d/%d, bob %d; want 3/2, 2", msgs, names, h.Count("bob"))
	}
	clock.Advance(time.Minute - time.Second) // the adopted ones expire now; ours a second later
	recs, err := h.Expired()
	if err != nil {
		t.Fatal(err)
	}
	got := make([]string, len(recs))
	for i, r := range recs {
		got[i] = r.Msg.ID
	}
	slices.Sort(got)
	if want := []string{testMessage(1).ID, testMessage(3).ID}; !slices.Equal(got, want) {
		t.Fatalf("expired after adopting: %v, want %v", got, want)
	}
	if _, err := h.Adopt(filepath.Join(t.TempDir(), "missing", heldFile)); err == nil {
		t.Fatal("adopting a file that does not exist succeeded")
	}
}

func TestPreview(t *testing.T) {
	tests := map[string]struct {
		in   string
		n    int
		want string
	}{
		"short":                  {"hello", 10, "hello"},
		"exact":                  {"hello", 5, "hello"},
		"cut":                    {"hello world", 7, "hello w"},
		"trailing blanks":        {"hello \n world", 7, "hello"},
		"inside a rune":          {"ab€cd", 3, "ab"}, // € is 3 bytes: never half of it
		"after a whole rune":     {"ab€cd", 5, "ab€"},
		"nothing fits but blank": {"  x", 1, ""},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := Preview(tc.in, tc.n); got != tc.want {
				t.Fatalf("Preview(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
			}
		})
	}
}

// A zero Config means the documented defaults: a body of DefaultLargeBody bytes stays inline,
// one byte more is saved to a file under Root/files/<name> and previewed in
// DefaultPreviewLen bytes.
func TestInboxConfigDefaults(t *testing.T) {
	root := t.TempDir()
	ib, err := OpenInbox(Config{Root: root}, "bob")
	if err != nil {
		t.Fatal(err)
	}
	defer ib.Close()
	if ib.Name() != "bob" {
		t.Fatalf("Name() = %q", ib.Name())
	}
	inline, large := testMessage(1), testMessage(2)
	inline.Body = strings.Repeat("a", DefaultLargeBody)
	large.Body = strings.Repeat("b", DefaultLargeBody+1)
	for _, m := range []*wire.Message{inline, large} {
		if err := addSync(ib, m); err != nil {
			t.Fatal(err)
		}
	}
	got, err := ib.Peek()
	if err != nil || len(got) != 2 {
		t.Fatalf("peek: %d messages, %v", len(got), err)
	}
	if got[0].Body != inline.Body || got[0].File != "" {
		t.Fatalf("a body of DefaultLargeBody bytes was not kept inline (file %q)", got[0].File)
	}
	if dir := filepath.Join(root, "files", "bob"); filepath.Dir(got[1].File) != dir {
		t.Fatalf("large body saved as %q, want a file in %s", got[1].File, dir)
	}
	if !strings.HasPrefix(got[1].Body, strings.Repeat("b", DefaultPreviewLen)+"\n") {
		t.Fatalf("preview is not the first %d bytes: %.40q…", DefaultPreviewLen, got[1].Body)
	}
	saved, err := os.ReadFile(got[1].File)
	if err != nil || string(saved) != large.Body {
		t.Fatalf("saved body: %d bytes, %v; want %d", len(saved), err, len(large.Body))
	}
}
