package wire

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/oklog/ulid/v2"

	"github.com/paf-mesh/paf-mesh/internal/keys"
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

	// SenderKey and Sig: the author's identity key (Ed25519) and its signature of the
	// message (SignMessage). Holders and forwarders cannot change what they cover: id, from,
	// the name the author addressed, kind, time, conversation, intent, broadcast and body.
	// Empty only in a record stored by a version before signatures (MessageVersion 1).
	// Raw bytes kept in strings, so that a Message stays comparable.
	SenderKey Raw
	Sig       Raw

	// SealedTo and Sealed: a stored message sealed to its recipient's identity (SealMessage):
	// the fingerprint of that identity, and the body encrypted to it, which holders keep and
	// cannot read. Body is then empty. The signature covers the sealed form.
	SealedTo string `json:",omitempty"`
	Sealed   Raw    `json:",omitempty"`

	// Set by the receiving peer, never sent.
	File string // where a large body was saved; Body is then a preview
	// Stamp is the requesting peer's clock when this request left it (ReqDeliver, ReqStore),
	// set by the decoder when the request carries one (AppendMessageStamped): the receiver
	// compares it with its own clock to tell a peer whose clock is off (CodeClockSkew). It
	// differs from SentAt, which a queued message keeps through its retries. Never stored.
	Stamp time.Time `json:"-"`
}

// Limits on the metadata fields, far above real use; they only bound what a
// hostile peer can make us store.
const (
	maxMsgIDLen = 64
	// MaxIntentLen is the longest Intent accepted, in bytes.
	MaxIntentLen = 4 << 10
)

// Request types of the message layer inside a transport request body: its second byte, after
// MessageVersion.
const (
	ReqDeliver byte = 1 // a Message for a name the receiving peer holds
	ReqStore   byte = 2 // a Message to hold for a name that is offline
	ReqDrop    byte = 3 // forget held messages: a name list (handed over)
	ReqCount   byte = 4 // how many messages do you hold for this name: a name list
)

// Message flags on the wire.
const (
	flagBroadcast = 1 << 0
	flagReplica   = 1 << 1 // from a holder, not the author: a copy to another holder (reqStore) or a handover (reqDeliver)
	flagStamped   = 1 << 2 // 8 bytes of the requester's clock (unix ms) follow sent-at: Message.Stamp
	flagSealed    = 1 << 3 // the body is sealed (Message.Sealed); its recipient's fingerprint follows the signature
)

// MessageVersion is the first byte of every message-layer request body. Version 2 added the
// sender's key and signature after the six strings; version 1 records (unsigned) are still
// read from disk, but a peer refuses an unsigned message from the network.
const MessageVersion = 2

// Errors of the message decoders; test with errors.Is. They are returned wrapped with detail.
var (
	// ErrBadMessage: the bytes are not a valid message (truncated, bad UTF-8, a bad name or
	// id, unknown flags or kind...). A receiver answers it with CodeMalformed.
	ErrBadMessage = errors.New("relay: malformed message")
	// ErrOverLimit: a well-formed message whose body is larger than this peer accepts (its
	// MaxBody, which a user may set lower than the sender's). A receiver answers it with
	// CodeOverLimit, by which the sender knows no retry can deliver the message.
	ErrOverLimit = errors.New("over the limit")
)

// AppendMessage encodes m as a ReqDeliver request body: version, request type, flags, sent-at (unix ms),
// kind, then length-prefixed strings. Binary rather than JSON because a
// message is decoded on every delivery, and because encoding/json would
// silently replace invalid UTF-8 instead of letting us refuse it.
func AppendMessage(dst []byte, m *Message) []byte {
	return AppendMessageAs(dst, ReqDeliver, m, false)
}

// AppendMessageAs encodes m as request type typ (ReqDeliver or ReqStore); replica marks a
// copy from a holder rather than from the author.
func AppendMessageAs(dst []byte, typ byte, m *Message, replica bool) []byte {
	return append(appendMessageHead(dst, typ, m, replica, time.Time{}), m.payload()...)
}

// payload is what goes on the wire as m's body: Body, or Sealed for a sealed message.
func (m *Message) payload() string {
	if m.SealedTo != "" {
		return string(m.Sealed)
	}
	return m.Body
}

// AppendMessageStamped is AppendMessageAs carrying stamp, the requesting peer's clock now,
// which the receiver decodes into Message.Stamp (a zero stamp is not sent).
func AppendMessageStamped(dst []byte, typ byte, m *Message, replica bool, stamp time.Time) []byte {
	return append(appendMessageHead(dst, typ, m, replica, stamp), m.payload()...)
}

// MessageParts is the encoding of m in two parts, its body last and not copied: a transport
// request sends a large body from the message's own memory (Transport.request).
func MessageParts(typ byte, m *Message, replica bool) (head, body []byte) {
	return MessagePartsStamped(typ, m, replica, time.Time{})
}

// MessagePartsStamped is MessageParts carrying stamp (see AppendMessageStamped).
func MessagePartsStamped(typ byte, m *Message, replica bool, stamp time.Time) (head, body []byte) {
	head = appendMessageHead(make([]byte, 0, 136), typ, m, replica, stamp)
	p := m.payload()
	return head, unsafe.Slice(unsafe.StringData(p), len(p)) // read, never written
}

// appendMessageHead is AppendMessageAs up to the body, which comes last.
func appendMessageHead(dst []byte, typ byte, m *Message, replica bool, stamp time.Time) []byte {
	var flags byte
	if !stamp.IsZero() {
		flags |= flagStamped
	}
	if m.Broadcast {
		flags |= flagBroadcast
	}
	if replica {
		flags |= flagReplica
	}
	if m.SealedTo != "" {
		flags |= flagSealed
	}
	dst = append(dst, MessageVersion, typ, flags, byte(m.Kind))
	dst = binary.BigEndian.AppendUint64(dst, uint64(m.SentAt.UnixMilli()))
	if !stamp.IsZero() {
		dst = binary.BigEndian.AppendUint64(dst, uint64(stamp.UnixMilli()))
	}
	for _, s := range []string{m.ID, m.From, m.To, m.ForwardedFrom, m.ConversationID, m.Intent} {
		dst = binary.BigEndian.AppendUint16(dst, uint16(len(s)))
		dst = append(dst, s...)
	}
	dst = append(append(dst, byte(len(m.SenderKey))), m.SenderKey...)
	dst = append(append(dst, byte(len(m.Sig))), m.Sig...)
	if m.SealedTo != "" {
		dst = append(append(dst, byte(len(m.SealedTo))), m.SealedTo...)
	}
	return binary.BigEndian.AppendUint32(dst, uint32(len(m.payload())))
}

// DecodeMessage decodes and validates a ReqDeliver message from another peer. Every
// string must be valid UTF-8 and every name a valid name; the body must fit
// maxBody (else the error wraps ErrOverLimit; any other failure wraps ErrBadMessage).
func DecodeMessage(b []byte, maxBody int) (*Message, error) {
	m, _, err := DecodeMessageAs(b, ReqDeliver, maxBody)
	return m, err
}

// DecodeMessageAs decodes a message sent as request type typ, and reports
// whether it is a holder's replica.
func DecodeMessageAs(b []byte, typ byte, maxBody int) (*Message, bool, error) {
	m, body, replica, err := DecodeMessageRef(b, typ, maxBody)
	if err != nil {
		return nil, false, err
	}
	if m.SealedTo == "" {
		m.Body = string(body)
	}
	return m, replica, nil
}

// DecodeMessageRef is DecodeMessageAs leaving the body in b: m.Body is empty
// and body, validated, aliases b. A receiver that only stores the body copies
// it once, into the stored form. A sealed message's body is copied into m.Sealed, and body
// is nil.
func DecodeMessageRef(b []byte, typ byte, maxBody int) (m *Message, body []byte, replica bool, err error) {
	if len(b) < 12 {
		return nil, nil, false, fmt.Errorf("%w: %d bytes is too short", ErrBadMessage, len(b))
	}
	version := b[0]
	if version != MessageVersion && version != 1 {
		return nil, nil, false, fmt.Errorf("%w: version %d, this peer speaks %d", ErrBadMessage, b[0], MessageVersion)
	}
	if b[1] != typ {
		return nil, nil, false, fmt.Errorf("%w: request type %d", ErrBadMessage, b[1])
	}
	m = &Message{Broadcast: b[2]&flagBroadcast != 0, Kind: Kind(b[3])}
	replica = b[2]&flagReplica != 0
	if b[2]&^(flagBroadcast|flagReplica|flagStamped|flagSealed) != 0 {
		return nil, nil, false, fmt.Errorf("%w: unknown flags %#x", ErrBadMessage, b[2])
	}
	if m.Kind < KindMessage || m.Kind > KindSystem {
		return nil, nil, false, fmt.Errorf("%w: kind %d", ErrBadMessage, b[3])
	}
	m.SentAt = time.UnixMilli(int64(binary.BigEndian.Uint64(b[4:12])))
	start := 12 // where the strings begin
	if b[2]&flagStamped != 0 {
		if version < 2 {
			return nil, nil, false, fmt.Errorf("%w: a version 1 message with a stamp", ErrBadMessage)
		}
		if len(b) < 20 {
			return nil, nil, false, fmt.Errorf("%w: truncated stamp", ErrBadMessage)
		}
		m.Stamp = time.UnixMilli(int64(binary.BigEndian.Uint64(b[12:20])))
		start = 20
	}
	// The six fields are located first and then copied with one allocation
	// (they are parts of one string); the body has its own, so that keeping a
	// field (an id, for de-duplication) does not keep the body.
	var at [6][2]int
	off := start
	for i := range at {
		if len(b)-off < 2 {
			return nil, nil, false, fmt.Errorf("%w: truncated", ErrBadMessage)
		}
		n := int(binary.BigEndian.Uint16(b[off:]))
		off += 2
		if len(b)-off < n {
			return nil, nil, false, fmt.Errorf("%w: truncated", ErrBadMessage)
		}
		at[i] = [2]int{off, off + n}
		off += n
	}
	fieldsEnd := off
	if version >= 2 {
		for _, f := range []struct {
			dst  *Raw
			size int
		}{{&m.SenderKey, ed25519.PublicKeySize}, {&m.Sig, ed25519.SignatureSize}} {
			if len(b)-off < 1 {
				return nil, nil, false, fmt.Errorf("%w: truncated", ErrBadMessage)
			}
			n := int(b[off])
			off++
			if (n != 0 && n != f.size) || len(b)-off < n {
				return nil, nil, false, fmt.Errorf("%w: a key or signature of %d bytes", ErrBadMessage, n)
			}
			*f.dst = Raw(b[off : off+n])
			off += n
		}
		if (m.SenderKey == "") != (m.Sig == "") {
			return nil, nil, false, fmt.Errorf("%w: a key without a signature, or a signature without a key", ErrBadMessage)
		}
	}
	sealed := b[2]&flagSealed != 0
	if sealed {
		if version < 2 || m.Sig == "" {
			return nil, nil, false, fmt.Errorf("%w: a sealed message must be signed", ErrBadMessage)
		}
		if len(b)-off < 1 || int(b[off]) != keys.FingerprintLen || len(b)-off-1 < keys.FingerprintLen {
			return nil, nil, false, fmt.Errorf("%w: a sealed message without its recipient's fingerprint", ErrBadMessage)
		}
		m.SealedTo = string(b[off+1 : off+1+keys.FingerprintLen])
		off += 1 + keys.FingerprintLen
		if !keys.ValidFingerprint(m.SealedTo) {
			return nil, nil, false, fmt.Errorf("%w: a sealed message with a bad fingerprint", ErrBadMessage)
		}
		maxBody += keys.SealOverhead
	}
	if len(b)-off < 4 {
		return nil, nil, false, fmt.Errorf("%w: truncated", ErrBadMessage)
	}
	n := int64(binary.BigEndian.Uint32(b[off:]))
	if n > int64(maxBody) {
		return nil, nil, false, fmt.Errorf("%w: a body of %d bytes, where the recipient's peer takes at most %d", ErrOverLimit, n, maxBody)
	}
	if int64(len(b)-off-4) != n {
		return nil, nil, false, fmt.Errorf("%w: body length %d does not match the %d bytes that follow", ErrBadMessage, n, len(b)-off-4)
	}
	fields := string(b[start:fieldsEnd])
	for i, f := range []*string{&m.ID, &m.From, &m.To, &m.ForwardedFrom, &m.ConversationID, &m.Intent} {
		*f = fields[at[i][0]-start : at[i][1]-start]
	}
	body = b[off+4:]
	if sealed {
		if len(body) < keys.SealOverhead {
			return nil, nil, false, fmt.Errorf("%w: a sealed body of %d bytes", ErrBadMessage, len(body))
		}
		m.Sealed = Raw(body)
	}
	if err := m.Validate(); err != nil {
		return nil, nil, false, err
	}
	if sealed {
		return m, nil, replica, nil
	}
	if !utf8.Valid(body) {
		return nil, nil, false, fmt.Errorf("%w: body is not valid UTF-8", ErrBadMessage)
	}
	return m, body, replica, nil
}

// Validate checks what a receiver must not trust: names, id, conversation id, UTF-8, the
// intent's length. The error wraps ErrBadMessage.
func (m *Message) Validate() error {
	if err := ValidID(m.ID); err != nil {
		return fmt.Errorf("%w: %v", ErrBadMessage, err)
	}
	if n, err := mesh.NormalizeName(m.From); err != nil || n != m.From {
		return fmt.Errorf("%w: bad sender name", ErrBadMessage)
	}
	if n, err := mesh.NormalizeName(m.To); err != nil || n != m.To {
		return fmt.Errorf("%w: bad recipient name", ErrBadMessage)
	}
	if m.ForwardedFrom != "" {
		if n, err := mesh.NormalizeName(m.ForwardedFrom); err != nil || n != m.ForwardedFrom {
			return fmt.Errorf("%w: bad forwarded-from name", ErrBadMessage)
		}
	}
	if err := ValidConversationID(m.ConversationID); err != nil {
		return fmt.Errorf("%w: %v", ErrBadMessage, err)
	}
	if len(m.Intent) > MaxIntentLen || !utf8.ValidString(m.Intent) {
		return fmt.Errorf("%w: intent is not UTF-8 text of at most %d bytes", ErrBadMessage, MaxIntentLen)
	}
	if !utf8.ValidString(m.Body) {
		return fmt.Errorf("%w: body is not valid UTF-8", ErrBadMessage)
	}
	if (m.SealedTo == "") != (m.Sealed == "") || m.SealedTo != "" && m.Body != "" {
		return fmt.Errorf("%w: a sealed message must have a recipient, a sealed body and no body", ErrBadMessage)
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

// signDomain separates message signatures from every other thing an identity signs.
const signDomain = "message"

// Addressed is the name the author sent m to: the first name of a forward chain
// (ForwardedFrom) when a forward redirected it, else To. It is what the signature covers,
// since To changes on the way when a name was renamed.
func (m *Message) Addressed() string {
	if m.ForwardedFrom != "" {
		return m.ForwardedFrom
	}
	return m.To
}

// signedBytes is what a message signature covers: the fields an author sets, each
// length-prefixed, and the SHA-256 of the body (a body may be megabytes; hashing it once
// keeps the signed input small).
func signedBytes(m *Message, body []byte) []byte {
	b := make([]byte, 0, 256)
	for _, s := range []string{m.ID, m.From, m.Addressed(), m.ConversationID, m.Intent} {
		b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
		b = append(b, s...)
	}
	var flags byte
	if m.Broadcast {
		flags = flagBroadcast
	}
	if m.SealedTo != "" {
		flags |= flagSealed
	}
	b = append(b, byte(m.Kind), flags)
	b = binary.BigEndian.AppendUint64(b, uint64(m.SentAt.UnixMilli()))
	if m.SealedTo != "" {
		// What the holders keep: the sealed body, to this recipient.
		b = append(append(b, byte(len(m.SealedTo))), m.SealedTo...)
		body = []byte(m.Sealed)
	}
	sum := sha256.Sum256(body)
	return append(b, sum[:]...)
}

// SignMessage signs m as its author, id: m.SenderKey and m.Sig are set. Sign a message once
// its fields are final (the addressed name, kind, broadcast); To and ForwardedFrom may change
// later as long as Addressed stays the same.
func SignMessage(m *Message, id *keys.Identity) {
	m.SenderKey = Raw(id.Public())
	m.Sig = Raw(id.Sign(signDomain, signedBytes(m, unsafe.Slice(unsafe.StringData(m.Body), len(m.Body)))))
}

// ErrUnsigned and ErrBadSignature: a message from the network without a signature, or whose
// signature does not verify (it was altered, or made up). Both wrap ErrBadMessage.
var (
	ErrUnsigned     = fmt.Errorf("%w: unsigned (a peer of a version before signatures?)", ErrBadMessage)
	ErrBadSignature = fmt.Errorf("%w: its signature does not verify (altered or forged)", ErrBadMessage)
)

// VerifySignature checks m's signature over m with body (m.Body when body is nil) and returns
// the signer's fingerprint.
func VerifySignature(m *Message, body []byte) (string, error) {
	if m.Sig == "" {
		return "", ErrUnsigned
	}
	if body == nil {
		body = unsafe.Slice(unsafe.StringData(m.Body), len(m.Body))
	}
	if !keys.Verify(ed25519.PublicKey(m.SenderKey), signDomain, signedBytes(m, body), []byte(m.Sig)) {
		return "", ErrBadSignature
	}
	return keys.Fingerprint(ed25519.PublicKey(m.SenderKey)), nil
}

// Signer is the fingerprint of the key that signed m (not checked: see VerifySignature), or
// "" for an unsigned message.
func (m *Message) Signer() string {
	if len(m.SenderKey) != ed25519.PublicKeySize {
		return ""
	}
	return keys.Fingerprint(ed25519.PublicKey(m.SenderKey))
}

// Raw is bytes kept in a string: see keys.Raw.
type Raw = keys.Raw
