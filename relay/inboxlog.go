package relay

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// An inboxLog is the file that holds an inbox's unread messages: an
// append-only log of records, each a message that arrived ("add") or a list
// of message ids that were read ("read"). What is unread is every added
// message not read since. When nothing is unread the log is emptied; when
// most of it is read it is rewritten with only the unread messages.
//
// Acknowledging a message needs it on disk. Appending a batch here costs one
// sequential write and one fdatasync, where a bbolt commit costs two
// fdatasyncs and several scattered page writes (about 3.4 KB written per
// 1 KiB message), so a burst of messages is acknowledged several times
// faster.
//
// A record on disk is
//
//	length  uint32, big endian: of the payload (1 or more bytes)
//	crc     uint32, big endian: CRC-32C (Castagnoli) of the payload
//	payload: a type byte ('A' add, 'R' read), then the message as JSON
//	         (add) or the ids that were read, JSON array (read)
//
// Reading stops at the first record that is short or fails its checksum: a
// write torn by a crash was never acknowledged (the fdatasync did not
// return), so neither it nor anything after it is needed.
type inboxLog struct {
	f    *os.File
	path string
	size int64 // bytes of whole records; the next record goes here
}

const (
	logHeaderLen = 8
	// maxLogRecord bounds one record's payload when reading, so that a
	// corrupt length cannot make the reader allocate gigabytes. Records are
	// small (large bodies go to their own files); this leaves room for a
	// raised LargeBody and for long read lists.
	maxLogRecord = 64 << 20

	recAdd  = 'A'
	recRead = 'R'
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// logRecord is one whole record read back: its payload and where the
// record starts in the file.
type logRecord struct {
	off     int64
	payload []byte
}

// openInboxLog opens (creating if needed) the log at path and returns its
// whole records, in order. A torn tail is cut off.
func openInboxLog(path string) (*inboxLog, []logRecord, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, nil, fmt.Errorf("relay: open inbox log %s: %w", path, err)
	}
	data, err := io.ReadAll(f)
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("relay: read inbox log %s: %w", path, err)
	}
	payloads, valid := decodeLogRecords(data)
	recs := make([]logRecord, len(payloads))
	off := int64(0)
	for i, p := range payloads {
		recs[i] = logRecord{off: off, payload: p}
		off += int64(logHeaderLen + len(p))
	}
	l := &inboxLog{f: f, path: path, size: int64(valid)}
	if valid != len(data) {
		if err := f.Truncate(int64(valid)); err != nil {
			f.Close()
			return nil, nil, fmt.Errorf("relay: trim inbox log %s: %w", path, err)
		}
	}
	return l, recs, nil
}

// decodeLogRecords returns the payloads of the whole, intact records at the
// start of data and how many bytes they take.
func decodeLogRecords(data []byte) (payloads [][]byte, valid int) {
	for off := 0; ; {
		if len(data)-off < logHeaderLen {
			return payloads, off
		}
		n := binary.BigEndian.Uint32(data[off:])
		sum := binary.BigEndian.Uint32(data[off+4:])
		// No record is empty, and an empty one would be all zeros,
		// checksum included: a run of zeros (a file extended but never
		// written) ends the log.
		if n == 0 || n > maxLogRecord || uint64(len(data)-off-logHeaderLen) < uint64(n) {
			return payloads, off
		}
		payload := data[off+logHeaderLen : off+logHeaderLen+int(n)]
		if crc32.Checksum(payload, castagnoli) != sum {
			return payloads, off
		}
		payloads = append(payloads, payload)
		off += logHeaderLen + int(n)
	}
}

// appendLogRecord appends one record of type typ holding body to buf.
func appendLogRecord(buf []byte, typ byte, body []byte) []byte {
	crc := crc32.Update(crc32.Update(0, castagnoli, []byte{typ}), castagnoli, body)
	buf = binary.BigEndian.AppendUint32(buf, uint32(1+len(body)))
	buf = binary.BigEndian.AppendUint32(buf, crc)
	buf = append(buf, typ)
	return append(buf, body...)
}

// write appends buf (whole records) and waits until it is on disk. It
// returns where buf starts. On an error the log is cut back to where it was,
// so that a half-written batch, which nobody was told is stored, does not
// come back at the next open.
func (l *inboxLog) write(buf []byte) (int64, error) {
	at := l.size
	if _, err := l.f.WriteAt(buf, at); err != nil {
		return 0, errors.Join(fmt.Errorf("relay: write inbox log %s: %w", l.path, err), l.f.Truncate(at))
	}
	if err := unix.Fdatasync(int(l.f.Fd())); err != nil {
		return 0, errors.Join(fmt.Errorf("relay: sync inbox log %s: %w", l.path, err), l.f.Truncate(at))
	}
	l.size += int64(len(buf))
	return at, nil
}

// read returns n bytes at off.
func (l *inboxLog) read(off int64, n int) ([]byte, error) {
	b := make([]byte, n)
	if _, err := l.f.ReadAt(b, off); err != nil {
		return nil, fmt.Errorf("relay: read inbox log %s: %w", l.path, err)
	}
	return b, nil
}

// reset empties the log: nothing in it is unread any more. Its records
// need not be kept, so there is nothing to sync: if the truncation is lost
// in a crash, the reopened log says again that everything was read.
func (l *inboxLog) reset() error {
	if l.size == 0 {
		return nil
	}
	if err := l.f.Truncate(0); err != nil {
		return fmt.Errorf("relay: empty inbox log %s: %w", l.path, err)
	}
	l.size = 0
	return nil
}

// replace swaps the log for one holding exactly buf (whole records), crash
// safely: written to a temporary file, synced, renamed over the log.
func (l *inboxLog) replace(buf []byte) error {
	tmp := l.path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("relay: rewrite inbox log %s: %w", l.path, err)
	}
	_, werr := f.Write(buf)
	serr := f.Sync()
	if err := errors.Join(werr, serr); err != nil {
		f.Close()
		os.Remove(tmp)
		return fmt.Errorf("relay: rewrite inbox log %s: %w", l.path, err)
	}
	if err := os.Rename(tmp, l.path); err != nil {
		f.Close()
		os.Remove(tmp)
		return fmt.Errorf("relay: rewrite inbox log %s: %w", l.path, err)
	}
	if d, err := os.Open(filepath.Dir(l.path)); err == nil {
		_ = d.Sync() // the rename itself durable; the old log is as good until then
		d.Close()
	}
	l.f.Close()
	l.f = f
	l.size = int64(len(buf))
	return nil
}

func (l *inboxLog) close() error { return l.f.Close() }
