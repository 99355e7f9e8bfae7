package store

import (
	"github.com/paf-mesh/paf-mesh/relay/wire"

	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"unicode/utf8"
)

// saveLarge writes a large body to its own file (0600) and replaces it in rec
// by a preview that names the file.
//
// verify, when not nil, checks the message's signature; a body that does not
// verify is never kept, and saveLarge returns verify's error. It runs beside the
// write and its sync when the file is new (on a processor of its own, when the
// process has more than one: 64 KiB is a sha-512 of the body and a signature,
// ~0.1 ms here), and before anything is written when the file exists: a retry
// of a message already saved, or a forgery of its sender and id, must not
// replace a body that verified. A file is saved by one caller at a time
// (lockFile), so that a forgery removing the file it created cannot remove the
// one a genuine retry wrote.
func (ib *Inbox) saveLarge(rec *wire.Message, verify func() error) error {
	if err := os.MkdirAll(ib.filesDir, 0o700); err != nil {
		return fmt.Errorf("relay: save large message: %w", err)
	}
	path := filepath.Join(ib.filesDir, largeFileName(rec))
	defer ib.lockFile(path)()
	flags := os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	if verify != nil {
		flags |= os.O_EXCL
	}
	f, err := os.OpenFile(path, flags, 0o600)
	var verified chan error
	switch {
	case verify != nil && errors.Is(err, fs.ErrExist):
		if err := verify(); err != nil {
			return err
		}
		f, err = os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	case verify != nil && err == nil:
		verified = make(chan error, 1)
		go func() { verified <- verify() }()
	}
	if err != nil {
		return fmt.Errorf("relay: save large message: %w", err)
	}
	_, werr := f.WriteString(rec.Body)
	serr := f.Sync()
	cerr := f.Close()
	var verr error
	if verified != nil {
		verr = <-verified
	}
	if err := errors.Join(werr, serr, cerr); err != nil || verr != nil {
		// Nothing half-written (or unverified) stays behind: a full disk would keep
		// filling up with parts of the retries.
		_ = os.Remove(path)
		if verr != nil {
			return verr
		}
		// The error goes back to the sender: it says what failed, not where on this
		// machine.
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return fmt.Errorf("relay: could not save a message of %d bytes to a file: %w", len(rec.Body), err)
	}
	size := len(rec.Body)
	rec.Body = Preview(rec.Body, ib.previewLen) + fmt.Sprintf("\n\n[… %d bytes in all; the full text is in %s]", size, path)
	rec.File = path
	return nil
}

// lockFile waits until no other caller saves the file at path, and returns the
// function that lets the next one.
func (ib *Inbox) lockFile(path string) (unlock func()) {
	ib.savingMu.Lock()
	for ib.saving[path] != nil {
		wait := ib.saving[path]
		ib.savingMu.Unlock()
		<-wait
		ib.savingMu.Lock()
	}
	done := make(chan struct{})
	ib.saving[path] = done
	ib.savingMu.Unlock()
	return func() {
		ib.savingMu.Lock()
		delete(ib.saving, path)
		ib.savingMu.Unlock()
		close(done)
	}
}

// largeFileName is the name of the file that holds rec's body: the time it
// was sent (formatted here) and a hash of its sender and id, so that a retry
// of one message writes the same file and nothing a sender chose (its name,
// the id, the body) ever becomes part of a path.
func largeFileName(rec *wire.Message) string {
	h := sha256.Sum256([]byte("paf saved body\x00" + rec.From + "\x00" + rec.ID))
	return rec.SentAt.UTC().Format("20060102-150405") + "-" + hex.EncodeToString(h[:16]) + ".md"
}

// Preview is the first n bytes of s (fewer, to end on a whole character), without trailing
// blanks: what a saved body or a notice about a message shows of it.
func Preview(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return strings.TrimRight(s[:cut], " \n")
}
