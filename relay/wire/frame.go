package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/flynn/noise"
)

// Wire format of one frame, all integers big-endian:
//
//	u32  length of the sealed body that follows
//	...  sealed body: ChaCha20-Poly1305 under this direction's key, with this direction's
//	     frame count as the nonce (a Noise CipherState), of:
//	       u8   version (FrameVersion)
//	       u8   type (opaque to the codec, but 0 is invalid)
//	       i64  sent time, unix milliseconds (information: how far the sender's clock is off)
//	       ...  payload
//	16B  the AEAD tag (the last 16 bytes of the sealed body)
//
// The length prefix is not sealed: it is implied by the sealed bytes (a changed length moves
// where the tag is read from, so opening fails). Each direction of a connection has its own key
// and nonce counter (Noise's Split), so a frame cannot be replayed, reordered, reflected back
// to its sender or moved to another connection: opening it fails, and the connection is
// dropped.
//
// Frames are larger than Noise's 65535-byte transport messages (a body may be 8 MiB). The
// cipher is Noise's own CipherState used for one message per frame; ChaCha20-Poly1305 is
// sound for messages up to 256 GiB, so the bound is the protocol's, not the cipher's.

// FrameVersion is the only frame version this codec speaks.
const FrameVersion = 2

const (
	lenPrefixLen  = 4
	tagLen        = 16
	headerLen     = 1 + 1 + 8 // version, type, time
	frameOverhead = headerLen + tagLen

	// Offsets inside an opened body.
	offVersion = 0
	offType    = 1
	offTime    = 2
	offPayload = headerLen
)

// FrameType tells the layer above what a frame's payload is. The codec only refuses type 0, so
// that an all-zero header can never be mistaken for a frame.
type FrameType uint8

// Frame is one decoded or to-be-encoded frame.
type Frame struct {
	Type FrameType
	// Time is when the frame was sent, by the sender's clock, with millisecond precision on the
	// wire. Nothing is refused for it: freshness comes from the session keys and counters.
	Time time.Time
	// Payload is opaque to the codec. On decode it aliases the read buffer.
	Payload []byte
}

// Sentinel errors for frames that are refused. They are returned wrapped with detail; test
// with errors.Is. Each of them means the connection should be dropped.
var (
	// ErrFrameTooLarge: a payload over MaxPayload, on encode or announced by a length prefix.
	ErrFrameTooLarge = errors.New("relay: frame too large")
	// ErrFrameTruncated: the stream ended inside a frame, or a frame is shorter than its fixed
	// header and tag. When the stream ended, io.ErrUnexpectedEOF is wrapped as well.
	ErrFrameTruncated = errors.New("relay: frame truncated")
	// ErrBadVersion: a frame version other than FrameVersion.
	ErrBadVersion = errors.New("relay: unknown frame version")
	// ErrBadType: frame type 0.
	ErrBadType = errors.New("relay: invalid frame type")
	// ErrBadMAC: the frame does not open under this direction's key and next nonce: it was
	// altered, replayed, reordered, injected, or made under another session.
	ErrBadMAC = errors.New("relay: frame authentication failed")
)

// Codec holds the frame limits of a Transport and seals and opens frames with the cipher
// state of one direction of one connection. It is safe for concurrent use; a CipherState is
// not, and each must be used by one goroutine at a time, in frame order.
type Codec struct {
	maxPayload int
	now        func() time.Time
}

// NewCodec returns a Codec for cfg, applying defaults. It fails for an out-of-range limit.
func NewCodec(cfg CodecConfig) (*Codec, error) {
	switch {
	case cfg.MaxPayload < 0 || uint64(cfg.MaxPayload) > maxMaxPayload:
		return nil, fmt.Errorf("relay: codec MaxPayload %d out of range [0, %d]", cfg.MaxPayload, uint64(maxMaxPayload))
	case cfg.MaxPayload == 0:
		cfg.MaxPayload = DefaultMaxPayload
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Codec{maxPayload: cfg.MaxPayload, now: cfg.Now}, nil
}

// MaxPayload is the largest payload this codec encodes or accepts.
func (c *Codec) MaxPayload() int { return c.maxPayload }

// AppendFrame appends f, sealed with cs, length prefix included, to dst and returns the
// extended slice, so the caller can send it with one Write. It errors only for type 0
// (ErrBadType), a payload over MaxPayload (ErrFrameTooLarge) or a cipher state at the end of
// its nonces; dst is then returned unchanged and cs is not advanced. f.Payload must not
// overlap dst's spare capacity. With enough capacity in dst it does not allocate.
func (c *Codec) AppendFrame(dst []byte, cs *noise.CipherState, f *Frame) ([]byte, error) {
	return c.appendFrame(dst, cs, f.Type, f.Time, f.Payload, nil, nil)
}

// appendFrame is AppendFrame for a payload given in parts (a request or response header, then
// the body, possibly in two pieces), which it copies straight into dst and seals there: a
// large body is copied once, not first assembled elsewhere.
func (c *Codec) appendFrame(dst []byte, cs *noise.CipherState, typ FrameType, at time.Time, part1, part2, part3 []byte) ([]byte, error) {
	if typ == 0 {
		return dst, fmt.Errorf("%w: type 0", ErrBadType)
	}
	payloadLen := len(part1) + len(part2) + len(part3)
	if payloadLen > c.maxPayload {
		return dst, fmt.Errorf("%w: payload is %d bytes, max %d", ErrFrameTooLarge, payloadLen, c.maxPayload)
	}
	start := len(dst)
	n := lenPrefixLen + frameOverhead + payloadLen
	if need := start + n; need > cap(dst) {
		grown := make([]byte, start, max(need, 2*cap(dst)))
		copy(grown, dst)
		dst = grown
	}
	dst = dst[:start+n]
	binary.BigEndian.PutUint32(dst[start:], uint32(frameOverhead+payloadLen))
	body := dst[start+lenPrefixLen : start+n-tagLen]
	body[offVersion] = FrameVersion
	body[offType] = byte(typ)
	binary.BigEndian.PutUint64(body[offTime:], uint64(at.UnixMilli()))
	p := offPayload + copy(body[offPayload:], part1)
	p += copy(body[p:], part2)
	copy(body[p:], part3)
	// Sealed in place: the output is body followed by the tag, which fits in dst.
	if _, err := cs.Encrypt(body[:0], nil, body); err != nil {
		return dst[:start], fmt.Errorf("relay: seal frame: %w", err)
	}
	return dst, nil
}

// ReadFrame reads exactly one frame from r and opens it with cs. The announced length is
// checked before anything is allocated or read for the body, so a hostile length costs
// nothing. buf is used for the body when its capacity suffices and is returned (possibly
// reallocated) for the next call; the returned Payload aliases it, so it is only valid until
// buf is reused. A stream that ends cleanly before a frame returns io.EOF itself; one that ends
// inside a frame returns ErrFrameTruncated wrapping io.ErrUnexpectedEOF. Other read errors are
// wrapped as they are.
func (c *Codec) ReadFrame(r io.Reader, cs *noise.CipherState, buf []byte) (Frame, []byte, error) {
	body, buf, err := readSized(r, buf, frameOverhead, frameOverhead+c.maxPayload)
	if err != nil {
		return Frame{}, buf, err
	}
	f, err := c.openFrame(cs, body)
	return f, buf, err
}

// readSized reads one length-prefixed record of minLen to maxLen bytes into buf (grown if
// needed) and returns it. It is the framing of handshake messages too: a length outside the
// bounds is refused before anything more is read or allocated.
func readSized(r io.Reader, buf []byte, minLen, maxLen int) ([]byte, []byte, error) {
	if cap(buf) < lenPrefixLen {
		buf = make([]byte, 0, minReadBuf)
	}
	buf = buf[:lenPrefixLen]
	if _, err := io.ReadFull(r, buf); err != nil {
		switch {
		case err == io.EOF:
			return nil, buf, io.EOF // between frames: the peer closed cleanly
		case errors.Is(err, io.ErrUnexpectedEOF):
			return nil, buf, fmt.Errorf("%w: stream ended inside the length prefix: %w", ErrFrameTruncated, err)
		default:
			return nil, buf, fmt.Errorf("relay: read frame length: %w", err)
		}
	}
	n := binary.BigEndian.Uint32(buf)
	switch {
	case uint64(n) < uint64(minLen):
		return nil, buf, fmt.Errorf("%w: %d bytes, a frame here has at least %d", ErrFrameTruncated, n, minLen)
	case uint64(n) > uint64(maxLen):
		return nil, buf, fmt.Errorf("%w: %d bytes announced, max %d here", ErrFrameTooLarge, n, maxLen)
	}
	if int(n) > cap(buf) {
		// Grow geometrically so a stream of slowly growing frames does not reallocate each time.
		buf = make([]byte, max(int(n), min(2*cap(buf), maxLen)))
	}
	buf = buf[:n]
	if _, err := io.ReadFull(r, buf); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, buf, fmt.Errorf("%w: stream ended before the %d announced bytes: %w",
				ErrFrameTruncated, n, io.ErrUnexpectedEOF)
		}
		return nil, buf, fmt.Errorf("relay: read frame body: %w", err)
	}
	return buf, buf, nil
}

// OpenFrame opens one frame given as the bytes after its length prefix (b is the whole sealed
// body), in place. It checks, in order: length, the tag (ErrBadMAC), version, type. The
// returned Payload aliases b. A frame that does not authenticate leaves cs where it was (one
// that does, but is refused for its version or type, has used its nonce: the connection is
// dropped either way).
func (c *Codec) OpenFrame(cs *noise.CipherState, b []byte) (Frame, error) {
	if len(b) < frameOverhead {
		return Frame{}, fmt.Errorf("%w: %d bytes, a frame has at least %d", ErrFrameTruncated, len(b), frameOverhead)
	}
	if len(b)-frameOverhead > c.maxPayload {
		return Frame{}, fmt.Errorf("%w: payload of %d bytes, max %d", ErrFrameTooLarge, len(b)-frameOverhead, c.maxPayload)
	}
	return c.openFrame(cs, b)
}

func (c *Codec) openFrame(cs *noise.CipherState, b []byte) (Frame, error) {
	plain, err := cs.Decrypt(b[:0], nil, b)
	if err != nil {
		return Frame{}, fmt.Errorf("%w: it does not open under this session's key and sequence (altered, replayed, reordered or injected)", ErrBadMAC)
	}
	if v := plain[offVersion]; v != FrameVersion {
		return Frame{}, fmt.Errorf("%w: %d (this peer speaks %d; upgrade the older peer)", ErrBadVersion, v, FrameVersion)
	}
	if plain[offType] == 0 {
		return Frame{}, fmt.Errorf("%w: type 0", ErrBadType)
	}
	n := len(plain)
	return Frame{
		Type: FrameType(plain[offType]),
		Time: time.UnixMilli(int64(binary.BigEndian.Uint64(plain[offTime:]))),
		// Capped so an append by the caller cannot run into the tag's bytes in b.
		Payload: plain[offPayload:n:n],
	}, nil
}
