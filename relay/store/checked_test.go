package store

import (
	"errors"
	"io/fs"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/paf-mesh/paf-mesh/internal/keys"
	"github.com/paf-mesh/paf-mesh/internal/testutil"
	"github.com/paf-mesh/paf-mesh/relay/wire"
)

// signedMessage is testMessage(i) signed by id, with body as its body when not empty.
func signedMessage(id *keys.Identity, i int, body string) *wire.Message {
	m := testMessage(i)
	if body != "" {
		m.Body = body
	}
	wire.SignMessage(m, id)
	return m
}

// forged is m with its body changed after signing: its signature no longer holds.
func forged(m *wire.Message) *wire.Message {
	f := *m
	f.Body = "not what was signed"
	return &f
}

// addVerified adds m as a received message whose signature the inbox verifies beside the
// write (body passed apart from m, as the relay passes a received one), and returns the
// result its sender would get.
func addVerified(ib *Inbox, m *wire.Message) error {
	rec := *m
	body := []byte(rec.Body)
	rec.Body = ""
	errc := make(chan error, 1)
	ib.Add(&rec, body, true, func(err error) { errc <- err })
	return <-errc
}

// A message whose signature is verified beside its write is delivered, shown and kept across
// a restart (load verifies it again); one whose signature does not hold is refused with
// ErrBadSignature, never shown, not remembered as received (its author's real message, with
// the same id, is taken later), and not shown after a restart either.
func TestInboxVerifiesBesideTheWrite(t *testing.T) {
	id := keys.NewIdentity()
	root := t.TempDir()
	ib := openTestInbox(t, root)
	good := signedMessage(id, 1, "")
	testutil.Must(t, addVerified(ib, good))

	real := signedMessage(id, 2, "")
	if err := addVerified(ib, forged(real)); !errors.Is(err, wire.ErrBadSignature) {
		t.Fatalf("a forged message: %v, want ErrBadSignature", err)
	}
	unsigned := testMessage(3)
	if err := addVerified(ib, unsigned); !errors.Is(err, wire.ErrUnsigned) {
		t.Fatalf("an unsigned message: %v, want ErrUnsigned", err)
	}
	if n, _ := ib.State(); n != 1 {
		t.Fatalf("unread %d after one good and two refused messages, want 1", n)
	}
	got, err := ib.Peek()
	if err != nil || len(got) != 1 || got[0].ID != good.ID {
		t.Fatalf("peek: %v %v, want only %s", ids(got), err, good.ID)
	}
	// The author's own message with the forged one's id is not taken for a duplicate.
	testutil.Must(t, addVerified(ib, real))
	testutil.Must(t, ib.Close())

	ib = openTestInbox(t, root)
	defer ib.Close()
	got, err = ib.Peek()
	if err != nil || strings.Join(ids(got), ",") != good.ID+","+real.ID {
		t.Fatalf("after a restart: %v %v, want %s,%s", ids(got), err, good.ID, real.ID)
	}
	if got[1].Body != real.Body {
		t.Fatalf("after a restart the body is %q, want the signed one", got[1].Body)
	}
}

// A process that died after writing a message whose signature was still being checked, or
// whose check failed, leaves a recChecked record: at open it counts only if it verifies.
func TestInboxLoadVerifiesCheckedRecords(t *testing.T) {
	id := keys.NewIdentity()
	root := t.TempDir()
	good, bad := signedMessage(id, 1, ""), forged(signedMessage(id, 2, ""))
	writeLog(t, root, "bob", []any{checkedAdd{good}, checkedAdd{bad}, testMessage(3)}, nil)
	ib := openTestInbox(t, root)
	defer ib.Close()
	got, err := ib.Peek()
	if err != nil || strings.Join(ids(got), ",") != good.ID+","+testMessage(3).ID {
		t.Fatalf("peek: %v %v, want %s and %s (the forged one dropped)", ids(got), err, good.ID, testMessage(3).ID)
	}
	// Not remembered as received: the real message of that id is taken.
	real := signedMessage(id, 2, "")
	testutil.Must(t, addVerified(ib, real))
	if n, _ := ib.State(); n != 3 {
		t.Fatalf("unread %d, want 3", n)
	}
}

// A large body goes to a file of its own, which the log's record does not hold: its
// signature is verified before anything is written, and a forged one leaves no file.
func TestInboxVerifiesALargeBodyFirst(t *testing.T) {
	id, ib, big := largeBodyInbox(t)
	if err := addVerified(ib, forged(signedMessage(id, 1, big))); !errors.Is(err, wire.ErrBadSignature) {
		t.Fatalf("a forged large message: %v, want ErrBadSignature", err)
	}
	if files := listFiles(t, ib.filesDir); len(files) != 0 {
		t.Fatalf("a forged large message left files %v", files)
	}
	m := signedMessage(id, 2, big)
	testutil.Must(t, addVerified(ib, m))
	got, err := ib.Take()
	if err != nil || len(got) != 1 || got[0].ID != m.ID {
		t.Fatalf("take: %v %v", ids(got), err)
	}
}

// The file of a large body is written while its signature is verified, but only when the file
// is new: a forged copy of a saved message (its sender and id, another body) neither replaces
// nor removes the saved body, not even while genuine retries of it arrive at the same time.
func TestInboxForgedLargeCopyKeepsTheSavedBody(t *testing.T) {
	id, ib, big := largeBodyInbox(t)
	m := signedMessage(id, 1, big)
	fake := *m
	fake.Body = strings.Repeat("f", ib.largeBody+1)
	// Forgeries and genuine copies together; the first to arrive may be either.
	var wg sync.WaitGroup
	errs := make([]error, 16)
	for i := range errs {
		wg.Go(func() {
			if i%2 == 0 {
				errs[i] = addVerified(ib, &fake)
			} else {
				errs[i] = addVerified(ib, m)
			}
		})
	}
	wg.Wait()
	for i, err := range errs {
		if i%2 == 0 && !errors.Is(err, wire.ErrBadSignature) {
			t.Errorf("forgery %d: %v, want ErrBadSignature", i, err)
		}
		if i%2 == 1 && err != nil {
			t.Errorf("genuine copy %d: %v", i, err)
		}
	}
	// And a forgery after it was saved.
	if err := addVerified(ib, &fake); !errors.Is(err, wire.ErrBadSignature) {
		t.Fatalf("a forgery of a saved message: %v, want ErrBadSignature", err)
	}
	got, err := ib.Take()
	if err != nil || len(got) != 1 || got[0].ID != m.ID || got[0].File == "" {
		t.Fatalf("take: %v %v, want %s once, saved to a file", ids(got), err, m.ID)
	}
	b, err := os.ReadFile(got[0].File)
	testutil.Must(t, err)
	if string(b) != big {
		t.Fatalf("the saved body is %.20q… (%d bytes), want the signed one", b, len(b))
	}
	if files := listFiles(t, ib.filesDir); len(files) != 1 {
		t.Fatalf("files %v, want the one saved body", files)
	}
}

// largeBodyInbox opens an inbox (closed at the end of the test), an identity to sign with,
// and a body one byte over the inbox's LargeBody.
func largeBodyInbox(t *testing.T) (*keys.Identity, *Inbox, string) {
	t.Helper()
	ib := openTestInbox(t, t.TempDir())
	t.Cleanup(func() { ib.Close() })
	return keys.NewIdentity(), ib, strings.Repeat("b", ib.largeBody+1)
}

// listFiles lists the names in dir (none if it does not exist).
func listFiles(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	testutil.Must(t, err)
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}
