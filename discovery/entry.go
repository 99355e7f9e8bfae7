package discovery

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

const (
	// entryVersion is the format version this build writes and the newest it reads.
	entryVersion = 1
	// maxEntrySize bounds what a reader loads from the run dir. Real entries are a few hundred
	// bytes; the bound keeps a stray large file from costing memory every poll.
	maxEntrySize = 64 << 10
	// maxIDLen keeps <id>.json and its temp name well under the usual 255-byte name limit.
	maxIDLen = 200
	// entrySuffix names entry files; other files in the run dir are ignored.
	entrySuffix = ".json"
)

// Entry is one peer's advertisement in the local rendezvous directory, stored as JSON in
// <ID>.json.
type Entry struct {
	ID      string    `json:"id"`             // peer id (memberlist node name)
	Addr    string    `json:"addr"`           // memberlist host:port
	Control string    `json:"control"`        // path of the peer's control socket (may be "")
	Name    string    `json:"name,omitempty"` // name the peer holds, informational
	PID     int       `json:"pid"`
	Host    string    `json:"host"`
	Started time.Time `json:"started"`
	Version int       `json:"v"` // entry format version, currently 1
}

// errFutureVersion marks entries written by a newer build; they are skipped, not "corrupt".
var errFutureVersion = errors.New("entry format version")

// decodeEntry parses and validates one entry file. Unknown fields are allowed (a newer build may
// add some without bumping the version); anything after the JSON object is not.
func decodeEntry(data []byte) (Entry, error) {
	if len(data) > maxEntrySize {
		return Entry{}, fmt.Errorf("entry is %d bytes, more than the %d allowed", len(data), maxEntrySize)
	}
	var e Entry
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&e); err != nil {
		return Entry{}, fmt.Errorf("decode entry: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return Entry{}, errors.New("decode entry: data after the JSON object")
	}
	switch {
	case e.Version > entryVersion:
		return Entry{}, fmt.Errorf("%w %d is newer than this build reads (%d)", errFutureVersion, e.Version, entryVersion)
	case e.Version < 1:
		return Entry{}, fmt.Errorf("bad entry format version %d", e.Version)
	}
	if err := checkEntry(e); err != nil {
		return Entry{}, err
	}
	return e, nil
}

// encodeEntry is the inverse of decodeEntry.
func encodeEntry(e Entry) ([]byte, error) {
	data, err := json.Marshal(e)
	if err != nil {
		return nil, fmt.Errorf("encode entry: %w", err)
	}
	return append(data, '\n'), nil
}

// checkEntry validates the fields a reader relies on.
func checkEntry(e Entry) error {
	if err := checkID(e.ID); err != nil {
		return err
	}
	if err := checkHostPort(e.Addr); err != nil {
		return fmt.Errorf("bad addr %q: %v", e.Addr, err)
	}
	return nil
}

// checkID accepts ids that are safe as a file name in the run dir: non-empty, bounded, no path
// separator or control characters, and not starting with '.' (dot files are temp files).
func checkID(id string) error {
	switch {
	case id == "":
		return errors.New("empty id")
	case len(id) > maxIDLen:
		return fmt.Errorf("id longer than %d bytes", maxIDLen)
	case !utf8.ValidString(id):
		return errors.New("id is not valid UTF-8")
	case strings.HasPrefix(id, "."):
		return fmt.Errorf("id %q starts with '.'", id)
	case strings.ContainsFunc(id, func(r rune) bool { return r == '/' || r == '\\' || unicode.IsControl(r) }):
		return fmt.Errorf("id %q has a path separator or control character", id)
	}
	return nil
}
