package store

import (
	"encoding/binary"
	"fmt"
	"math"
	"unicode/utf8"

	"github.com/paf-mesh/paf-mesh/relay/wire"
)

// appendStored encodes m as an inbox stores it: the receiver's own File (u16
// length, then the path) and then the message's wire encoding. Binary for the
// same reasons as wire.AppendMessage, and because the inbox encodes every arriving
// message on the connection's goroutine. A File path longer than 64 KiB is an
// error (no file system makes one).
func appendStored(dst []byte, m *wire.Message) ([]byte, error) {
	if len(m.File) > math.MaxUint16 {
		return dst, fmt.Errorf("relay: large-message file path of %d bytes is too long", len(m.File))
	}
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(m.File)))
	dst = append(dst, m.File...)
	return wire.AppendMessageAs(dst, wire.ReqDeliver, m, false), nil
}

// decodeStored decodes a record made by appendStored, validating it as a
// message from the network: the log is checksummed, but a file on disk is
// input like any other.
func decodeStored(b []byte) (wire.Message, error) {
	if len(b) < 2 || len(b)-2 < int(binary.BigEndian.Uint16(b)) {
		return wire.Message{}, fmt.Errorf("%w: stored record truncated", wire.ErrBadMessage)
	}
	n := int(binary.BigEndian.Uint16(b))
	file := string(b[2 : 2+n])
	if !utf8.ValidString(file) {
		return wire.Message{}, fmt.Errorf("%w: stored file path is not UTF-8", wire.ErrBadMessage)
	}
	m, replica, err := wire.DecodeMessageAs(b[2+n:], wire.ReqDeliver, maxLogRecord)
	if err != nil {
		return wire.Message{}, err
	}
	if replica {
		return wire.Message{}, fmt.Errorf("%w: a stored message marked as a holder's replica", wire.ErrBadMessage)
	}
	m.File = file
	return *m, nil
}
