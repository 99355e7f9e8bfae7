package relay

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/oklog/ulid/v2"

	"github.com/paf-mesh/paf-mesh/mesh"
)

// Kind says what a message is for, so an agent can tell a conversation's
// opening from a reply, a change of focus or its end.
type Kind uint8

const (
	KindMessage Kind = iota + 1
	KindReply
	KindRefocus
	KindEnd
	KindSystem
)

var kindNames = [...]string{KindMessage: "message", KindReply: "reply", KindRefocus: "refocus", KindEnd: "end", KindSystem: "system"}

func (k Kind) String() string {
	if int(k) < len(kindNames) && kindNames[k] != "" {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// ParseKind is the inverse of Kind.String.
func ParseKind(s string) (Kind, error) {
	for k, n := range kindNames {
		if n != "" && n == s {
			return Kind(k), nil
		}
	}
	return 0, fmt.Errorf("relay: unknown message kind %q (want message, reply, refocus, end or system)", s)
}

// Message is one message between agents.
type Message struct {
	ID             string    // ULID: unique, and sorts by send time
	From           string    // sender's name
	To             string    // recipient's name, after following forwards
	ForwardedFrom  string    // the name it was sent to, when a forward redirected it
	Kind           Kind      //
	Body           string    // UTF-8 text
	SentAt         time.Time // sender's clock, millisecond precision
	ConversationID string    // optional
	Intent         string    // the conversation's focus, when there is one
	Broadcast      bool      // sent to everyone online

	// Set by the receiving peer, never sent.
	File string // where a large body was saved; Body is then a preview
}

// Limits on the metadata fields, far above real use; they only bound what a
// hostile peer can make us store.
const (
	maxMsgIDLen  = 64
	maxIntentLen = 4 << 10
)

// Request types inside the transport's request body.
const (
	reqDeliver byte = 1 // a Message for a name this peer holds
	reqStore   byte = 2 // a Message to hold for a name that is offline
	reqDrop    byte = 3 // forget held messages: a nameList (handed over)
	reqCount   byte = 4 // how many messages do you hold for this name
)

// Message flags on the wire.
const (
	flagBroadcast = 1 << 0
	flagReplica   = 1 << 1 // from a holder, not the author: a copy to another holder (reqStore) or a handover (reqDeliver)
)

const messageVersion = 1

var errBadMessage = errors.New("relay: malformed message")

// errOverLimit: a well-formed message whose body is larger than this peer
// accepts (its MaxBody, which a user may set lower than the sender's). Its
// text crosses the wire as the refusal, which the sender recognises by it.
var errOverLimit = errors.New("over the limit")

// refusedOverLimit reports whether err is the recipient's refusal of a body
// larger than it accepts: no retry can deliver that message.
func refusedOverLimit(err error) bool {
	var re *RemoteError
	return errors.As(err, &re) && strings.HasPrefix(re.Msg, errOverLimit.Error())
}

// appendMessage encodes m: version, request type, flags, sent-at (unix ms),
// kind, then length-prefixed strings. Binary rather than JSON because a
// message is decoded on every delivery, and because encoding/json would
// silently replace invalid UTF-8 instead of letting us refuse it.
func appendMessage(dst []byte, m *Message) []byte {
	return appendMessageAs(dst, reqDeliver, m, false)
}

func appendMessageAs(dst []byte, typ byte, m *Message, replica bool) []byte {
	return append(appendMessageHead(dst, typ, m, replica), m.Body...)
}

// messageParts is the encoding of m in two parts, its body last and not copied: a transport
// request sends a large body from the message's own memory (Transport.request).
func messageParts(typ byte, m *Message, replica bool) (head, body []byte) {
	head = appendMessageHead(make([]byte, 0, 128), typ, m, replica)
	return head, unsafe.Slice(unsafe.StringData(m.Body), len(m.Body)) // read, never written
}

// appendMessageHead is appendMessageAs up to the body, which comes last.
func appendMessageHead(dst []byte, typ byte, m *Message, replica bool) []byte {
	var flags byte
	if m.Broadcast {
		flags |= flagBroadcast
	}
	if replica {
		flags |= flagReplica
	}
	dst = append(dst, messageVersion, typ, flags, byte(m.Kind))
	dst = binary.BigEndian.AppendUint64(dst, uint64(m.SentAt.UnixMilli()))
	for _, s := range []string{m.ID, m.From, m.To, m.ForwardedFrom, m.ConversationID, m.Intent} {
		dst = binary.BigEndian.AppendUint16(dst, uint16(len(s)))
		dst = append(dst, s...)
	}
	return binary.BigEndian.AppendUint32(dst, uint32(len(m.Body)))
}

// appendStored encodes m as an inbox stores it: the receiver's own File (u16
// length, then the path) and then the message's wire encoding. Binary for the
// same reasons as appendMessage, and because the inbox encodes every arriving
// message on the connection's goroutine. A File path longer than 64 KiB is an
// error (no file system makes one).
func appendStored(dst []byte, m *Message) ([]byte, error) {
	if len(m.File) > math.MaxUint16 {
		return dst, fmt.Errorf("relay: large-message file path of %d bytes is too long", len(m.File))
	}
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(m.File)))
	dst = append(dst, m.File...)
	return appendMessageAs(dst, reqDeliver, m, false), nil
}

// decodeStored decodes a record made by appendStored, validating it as a
// message from the network: the log is checksummed, but a file on disk is
// input like any other.
func decodeStored(b []byte) (Message, error) {
	if len(b) < 2 || len(b)-2 < int(binary.BigEndian.Uint16(b)) {
		return Message{}, fmt.Errorf("%w: stored record truncated", errBadMessage)
	}
	n := int(binary.BigEndian.Uint16(b))
	file := string(b[2 : 2+n])
	if !utf8.ValidString(file) {
		return Message{}, fmt.Errorf("%w: stored file path is not UTF-8", errBadMessage)
	}
	m, replica, err := decodeMessageAs(b[2+n:], reqDeliver, maxLogRecord)
	if err != nil {
		return Message{}, err
	}
	if replica {
		return Message{}, fmt.Errorf("%w: a stored message marked as a holder's replica", errBadMessage)
	}
	m.File = file
	return *m, nil
}

// decodeMessage decodes and validates a message from another peer. Every
// string must be valid UTF-8 and every name a valid name; the body must fit
// maxBody.
func decodeMessage(b []byte, maxBody int) (*Message, error) {
	m, _, err := decodeMessageAs(b, reqDeliver, maxBody)
	return m, err
}

// decodeMessageAs decodes a message sent as request type typ, and reports
// whether it is a holder's replica.
func decodeMessageAs(b []byte, typ byte, maxBody int) (*Message, bool, error) {
	m, body, replica, err := decodeMessageRef(b, typ, maxBody)
	if err != nil {
		return nil, false, err
	}
	m.Body = string(body)
	return m, replica, nil
}

// decodeMessageRef is decodeMessageAs leaving the body in b: m.Body is empty
// and body, validated, aliases b. A receiver that only stores the body copies
// it once, into the stored form.
func decodeMessageRef(b []byte, typ byte, maxBody int) (m *Message, body []byte, replica bool, err error) {
	if len(b) < 12 {
		return nil, nil, false, fmt.Errorf("%w: %d bytes is too short", errBadMessage, len(b))
	}
	if b[0] != messageVersion {
		return nil, nil, false, fmt.Errorf("%w: version %d, this peer speaks %d", errBadMessage, b[0], messageVersion)
	}
	if b[1] != typ {
		return nil, nil, false, fmt.Errorf("%w: request type %d", errBadMessage, b[1])
	}
	m = &Message{Broadcast: b[2]&flagBroadcast != 0, Kind: Kind(b[3])}
	replica = b[2]&flagReplica != 0
	if b[2]&^(flagBroadcast|flagReplica) != 0 {
		return nil, nil, false, fmt.Errorf("%w: unknown flags %#x", errBadMessage, b[2])
	}
	if m.Kind < KindMessage || m.Kind > KindSystem {
		return nil, nil, false, fmt.Errorf("%w: kind %d", errBadMessage, b[3])
	}
	m.SentAt = time.UnixMilli(int64(binary.BigEndian.Uint64(b[4:12])))
	// The six fields are located first and then copied with one allocation
	// (they are parts of one string); the body has its own, so that keeping a
	// field (an id, for de-duplication) does not keep the body.
	var at [6][2]int
	off := 12
	for i := range at {
		if len(b)-off < 2 {
			return nil, nil, false, fmt.Errorf("%w: truncated", errBadMessage)
		}
		n := int(binary.BigEndian.Uint16(b[off:]))
		off += 2
		if len(b)-off < n {
			return nil, nil, false, fmt.Errorf("%w: truncated", errBadMessage)
		}
		at[i] = [2]int{off, off + n}
		off += n
	}
	if len(b)-off < 4 {
		return nil, nil, false, fmt.Errorf("%w: truncated", errBadMessage)
	}
	n := int64(binary.BigEndian.Uint32(b[off:]))
	if n > int64(maxBody) {
		return nil, nil, false, fmt.Errorf("%w: a body of %d bytes, where the recipient's peer takes at most %d", errOverLimit, n, maxBody)
	}
	if int64(len(b)-off-4) != n {
		return nil, nil, false, fmt.Errorf("%w: body length %d does not match the %d bytes that follow", errBadMessage, n, len(b)-off-4)
	}
	fields := string(b[12:off])
	for i, f := range []*string{&m.ID, &m.From, &m.To, &m.ForwardedFrom, &m.ConversationID, &m.Intent} {
		*f = fields[at[i][0]-12 : at[i][1]-12]
	}
	body = b[off+4:]
	if err := m.validate(); err != nil {
		return nil, nil, false, err
	}
	if !utf8.Valid(body) {
		return nil, nil, false, fmt.Errorf("%w: body is not valid UTF-8", errBadMessage)
	}
	return m, body, replica, nil
}

// validate checks what a receiver must not trust: names, id, UTF-8.
func (m *Message) validate() error {
	if err := ValidID(m.ID); err != nil {
		return fmt.Errorf("%w: %v", errBadMessage, err)
	}
	if n, err := mesh.NormalizeName(m.From); err != nil || n != m.From {
		return fmt.Errorf("%w: bad sender name", errBadMessage)
	}
	if n, err := mesh.NormalizeName(m.To); err != nil || n != m.To {
		return fmt.Errorf("%w: bad recipient name", errBadMessage)
	}
	if m.ForwardedFrom != "" {
		if n, err := mesh.NormalizeName(m.ForwardedFrom); err != nil || n != m.ForwardedFrom {
			return fmt.Errorf("%w: bad forwarded-from name", errBadMessage)
		}
	}
	if err := ValidConversationID(m.ConversationID); err != nil {
		return fmt.Errorf("%w: %v", errBadMessage, err)
	}
	if len(m.Intent) > maxIntentLen || !utf8.ValidString(m.Intent) {
		return fmt.Errorf("%w: intent is not UTF-8 text of at most %d bytes", errBadMessage, maxIntentLen)
	}
	if !utf8.ValidString(m.Body) {
		return fmt.Errorf("%w: body is not valid UTF-8", errBadMessage)
	}
	return nil
}

// ValidID reports whether id is a message id this peer accepts: a ULID in
// its canonical form (26 characters of Crockford base32, upper case), parsed
// strictly. Nothing else is ever accepted from the network, a log or a
// control client, so no id can carry a path separator, a dot or a control
// character into anything built from it.
func ValidID(id string) error {
	if len(id) != ulid.EncodedSize {
		return fmt.Errorf("bad id: want a ULID of %d characters, got %d", ulid.EncodedSize, len(id))
	}
	u, err := ulid.ParseStrict(id)
	if err != nil || u.String() != id {
		return errors.New("bad id: not a canonical ULID")
	}
	return nil
}

// ValidConversationID reports whether id may name a conversation: empty (no
// conversation), or 1-64 letters, digits, '-' and '_' (what
// mcpserver's ids are made of: "c-" and base32).
func ValidConversationID(id string) error {
	if len(id) > maxMsgIDLen {
		return fmt.Errorf("bad conversation id: %d bytes, at most %d", len(id), maxMsgIDLen)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return errors.New("bad conversation id: only letters, digits, '-' and '_' are allowed")
		}
	}
	return nil
}
