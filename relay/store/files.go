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
func (ib *Inbox) saveLarge(rec *wire.Message) error {
	if err := os.MkdirAll(ib.filesDir, 0o700); err != nil {
		return fmt.Errorf("relay: save large message: %w", err)
	}
	path := filepath.Join(ib.filesDir, largeFileName(rec))
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("relay: save large message: %w", err)
	}
	_, werr := f.WriteString(rec.Body)
	serr := f.Sync()
	cerr := f.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		// Nothing half-written stays behind (a full disk would keep filling
		// up with parts of the retries). The error goes back to the sender:
		// it says what failed, not where on this machine.
		_ = os.Remove(path)
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
