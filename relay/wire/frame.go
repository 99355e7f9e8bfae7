package wire

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"sync"
	"time"
)

// Wire format of one frame, all integers big-endian:
//
//	u32  length of everything after this field (version..mac)
//	u8   version (FrameVersion)
//	u8   type (opaque to the codec, but 0 is invalid)
//	i64  sent time, unix milliseconds
//	16B  nonce
//	...  payload
//	32B  HMAC-SHA256(key, every byte after the length and before the mac)
//
// The length prefix is not covered by the MAC on purpose: it is implied by the covered bytes
// (a changed length shifts where the MAC is read from, so the MAC fails).

// FrameVersion is the only frame version this codec speaks.
const FrameVersion = 1

const (
	lenPrefixLen  = 4
	nonceLen      = 16
	macLen        = sha256.Size
	headerLen     = 1 + 1 + 8 + nonceLen // version, type, time, nonce
	frameOverhead = headerLen + macLen   // body bytes that are not payload

	// Offsets inside the body (the bytes after the length prefix).
	offVersion = 0
	offType    = 1
	offTime    = 2
	offNonce   = 10
	offPayload = headerLen
)

// FrameType tells the layer above what a frame's payload is. The codec only refuses type 0, so
// that an all-zero header can never be mistaken for a frame.
type FrameType uint8

// Frame is one decoded or to-be-encoded frame.
type Frame struct {
	Type FrameType
	// Time is when the frame was sent. It has millisecond precision on the wire and must be
	// within the codec's Window of the receiver's clock.
	Time time.Time
	// Nonce makes every frame unique so that a ReplayGuard can refuse a repeated one. Use
	// NewNonce.
	Nonce [16]byte
	// Payload is opaque to the codec. On decode it aliases the input buffer.
	Payload []byte
}

// Sentinel errors for frames that are refused. They are returned wrapped with detail; test
// with errors.Is. Each of them means the connection should be dropped.
var (
	// ErrFrameTooLarge: a payload over MaxPayload, on encode or announced by a length prefix.
	ErrFrameTooLarge = errors.New("relay: frame too large")
	// ErrFrameTruncated: the stream ended inside a frame, or a frame is shorter than its fixed
	// header and MAC. When the stream ended, io.ErrUnexpectedEOF is wrapped as well.
	ErrFrameTruncated = errors.New("relay: frame truncated")
	// ErrBadVersion: a frame version other than FrameVersion.
	ErrBadVersion = errors.New("relay: unknown frame version")
	// ErrBadType: frame type 0.
	ErrBadType = errors.New("relay: invalid frame type")
	// ErrBadMAC: the frame was not made with this mesh's key, or was altered. This is what a
	// peer with the wrong secret produces.
	ErrBadMAC = errors.New("relay: frame authentication failed")
	// ErrStale: the frame time is outside the accepted window of the local clock.
	ErrStale = errors.New("relay: frame time outside the accepted window")
	// ErrReplay: a nonce seen before (see ReplayGuard).
	ErrReplay = errors.New("relay: replayed frame")
)

// Codec encodes and verifies frames for one key. It is safe for concurrent use.
type Codec struct {
	maxPayload int
	window     time.Duration
	now        func() time.Time
	// macs pools keyed HMAC states: hmac.New hashes the key and allocates, which would dominate
	// the cost of a small frame.
	macs sync.Pool // of *macState
}

// macState is a pooled HMAC with room for its sum, so computing a MAC allocates nothing.
type macState struct {
	h   hash.Hash
	sum [macLen]byte
}

// NewCodec returns a Codec for cfg, applying defaults. It fails for a key shorter than
// MinKeyLen or a negative or out-of-range limit.
func NewCodec(cfg CodecConfig) (*Codec, error) {
	if len(cfg.Key) < MinKeyLen {
		return nil, fmt.Errorf("relay: codec key is %d bytes, need at least %d", len(cfg.Key), MinKeyLen)
	}
	switch {
	case cfg.MaxPayload < 0 || uint64(cfg.MaxPayload) > maxMaxPayload:
		return nil, fmt.Errorf("relay: codec MaxPayload %d out of range [0, %d]", cfg.MaxPayload, uint64(maxMaxPayload))
	case cfg.MaxPayload == 0:
		cfg.MaxPayload = DefaultMaxPayload
	}
	switch {
	case cfg.Window < 0:
		return nil, fmt.Errorf("relay: codec Window %v is negative", cfg.Window)
	case cfg.Window == 0:
		cfg.Window = DefaultWindow
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	key := bytes.Clone(cfg.Key)
	c := &Codec{maxPayload: cfg.MaxPayload, window: cfg.Window, now: cfg.Now}
	c.macs.New = func() any { return &macState{h: hmac.New(sha256.New, key)} }
	return c, nil
}

// MaxPayload is the largest payload this codec encodes or accepts.
func (c *Codec) MaxPayload() int { return c.maxPayload }

// Window is the clock skew this codec accepts either way.
func (c *Codec) Window() time.Duration { return c.window }

// NewNonce returns a random frame nonce.
func NewNonce() [16]byte {
	var n [16]byte
	// crypto/rand.Read never returns an error (it aborts the program if the OS fails it).
	_, _ = rand.Read(n[:])
	return n
}

// AppendFrame appends the encoded frame, length prefix included, to dst and returns the
// extended slice, so the caller can send it with one Write. It errors only for type 0
// (ErrBadType) or a payload over MaxPayload (ErrFrameTooLarge); dst is then returned
// unchanged. f.Payload must not overlap dst's spare capacity. With enough capacity in dst it
// does not allocate.
func (c *Codec) AppendFrame(dst []byte, f *Frame) ([]byte, error) {
	return c.appendFrame(dst, f, f.Payload, nil, nil)
}

// appendFrame is AppendFrame for a payload given in parts (a request or response header, then
// the body, possibly in two pieces), which it copies straight into dst: a large body is copied
// once, not first assembled elsewhere. f.Payload is ignored.
func (c *Codec) appendFrame(dst []byte, f *Frame, part1, part2, part3 []byte) ([]byte, error) {
	return c.appendParts(dst, f, part1, part2, part3, true)
}

// appendParts appends a frame whose payload is part1||part2||part3. Complete, it copies part3
// and appends the MAC. Otherwise it stops after part2: the caller writes part3 (not copied)
// and then the frame's MAC (macOf of the bytes after the length prefix, and part3), so that
// a large body is neither copied nor made to wait for its MAC before it goes (see
// conn.drainLocked). It errors for type 0 or a payload over MaxPayload, returning dst
// unchanged.
func (c *Codec) appendParts(dst []byte, f *Frame, part1, part2, part3 []byte, complete bool) ([]byte, error) {
	if f.Type == 0 {
		return dst, fmt.Errorf("%w: type 0", ErrBadType)
	}
	payloadLen := len(part1) + len(part2) + len(part3)
	if payloadLen > c.maxPayload {
		return dst, fmt.Errorf("%w: payload is %d bytes, max %d", ErrFrameTooLarge, payloadLen, c.maxPayload)
	}
	start := len(dst)
	n := lenPrefixLen + frameOverhead + payloadLen
	if !complete {
		n -= len(part3) + macLen
	}
	if need := start + n; need > cap(dst) {
		grown := make([]byte, start, max(need, 2*cap(dst)))
		copy(grown, dst)
		dst = grown
	}
	dst = dst[:start+n]
	binary.BigEndian.PutUint32(dst[start:], uint32(frameOverhead+payloadLen))
	body := dst[start+lenPrefixLen:]
	body[offVersion] = FrameVersion
	body[offType] = byte(f.Type)
	binary.BigEndian.PutUint64(body[offTime:], uint64(f.Time.UnixMilli()))
	copy(body[offNonce:], f.Nonce[:])
	at := offPayload + copy(body[offPayload:], part1)
	at += copy(body[at:], part2)
	if complete {
		macAt := at + copy(body[at:], part3)
		mac := c.macOf(body[:macAt], nil)
		copy(body[macAt:], mac[:])
	}
	return dst, nil
}

// macOf returns the MAC of a frame whose bytes after the length prefix are head||tail.
func (c *Codec) macOf(head, tail []byte) [macLen]byte {
	st := c.macs.Get().(*macState)
	st.h.Reset()
	st.h.Write(head) // hash.Hash.Write never returns an error
	st.h.Write(tail)
	st.h.Sum(st.sum[:0]) // into the pooled state: a local array would escape to the heap
	sum := st.sum
	c.macs.Put(st)
	return sum
}

// ReadFrame reads exactly one frame from r and verifies it like DecodeFrame. The announced
// length is checked before anything is allocated or read for the body, so a hostile length
// costs nothing. buf is used for the body when its capacity suffices and is returned (possibly
// reallocated) for the next call; the returned Payload aliases it, so it is only valid until
// buf is reused. A stream that ends cleanly before a frame returns io.EOF itself; one that ends
// inside a frame returns ErrFrameTruncated wrapping io.ErrUnexpectedEOF. Other read errors are
// wrapped as they are.
func (c *Codec) ReadFrame(r io.Reader, buf []byte) (Frame, []byte, error) {
	return c.readFrame(r, buf, c.maxPayload)
}

// readFrame is ReadFrame refusing (ErrFrameTooLarge) a payload over maxPayload, which is at
// most the codec's MaxPayload. The transport reads the first frame of a connection with the
// largest hello (or hello-ack) as the bound: before it authenticates, a connection can make
// this peer allocate no more than that, whatever its length prefix says.
func (c *Codec) readFrame(r io.Reader, buf []byte, maxPayload int) (Frame, []byte, error) {
	if cap(buf) < lenPrefixLen {
		buf = make([]byte, 0, minReadBuf)
	}
	buf = buf[:lenPrefixLen]
	if _, err := io.ReadFull(r, buf); err != nil {
		switch {
		case err == io.EOF:
			return Frame{}, buf, io.EOF // between frames: the peer closed cleanly
		case errors.Is(err, io.ErrUnexpectedEOF):
			return Frame{}, buf, fmt.Errorf("%w: stream ended inside the length prefix: %w", ErrFrameTruncated, err)
		default:
			return Frame{}, buf, fmt.Errorf("relay: read frame length: %w", err)
		}
	}
	n := binary.BigEndian.Uint32(buf)
	if err := checkLen(uint64(n), maxPayload); err != nil {
		return Frame{}, buf, err
	}
	if int(n) > cap(buf) {
		// Grow geometrically so a stream of slowly growing frames does not reallocate each time.
		buf = make([]byte, max(int(n), min(2*cap(buf), frameOverhead+maxPayload)))
	}
	buf = buf[:n]
	// The MAC is computed over the bytes as they arrive rather than once all are in: a sender
	// puts a large frame on the wire before its MAC (conn.drainLocked), so both ends hash at
	// the same time instead of one after the other. Nothing is trusted before the MAC is
	// checked in decodeFrame.
	st := c.macs.Get().(*macState)
	defer c.macs.Put(st)
	st.h.Reset()
	macAt := int(n) - macLen
	for got, hashed, empty := 0, 0, 0; got < int(n); {
		k, err := r.Read(buf[got:])
		got += k
		if k == 0 && err == nil {
			if empty++; empty == 100 { // as io.ReadFull's bufio would: a reader that never gives data
				err = io.ErrNoProgress
			}
		}
		if h := min(got, macAt); h > hashed {
			st.h.Write(buf[hashed:h]) // hash.Hash.Write never returns an error
			hashed = h
		}
		if err == nil || got == int(n) {
			continue
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return Frame{}, buf, fmt.Errorf("%w: stream ended before the %d announced bytes: %w",
				ErrFrameTruncated, n, io.ErrUnexpectedEOF)
		}
		return Frame{}, buf, fmt.Errorf("relay: read frame body: %w", err)
	}
	f, err := c.decodeFrame(buf, st.h.Sum(st.sum[:0]))
	return f, buf, err
}

// checkLen validates a body length (everything after the length prefix) against a payload
// bound.
func checkLen(n uint64, maxPayload int) error {
	if n < frameOverhead {
		return fmt.Errorf("%w: %d bytes, a frame has at least %d", ErrFrameTruncated, n, frameOverhead)
	}
	if n-frameOverhead > uint64(maxPayload) {
		return fmt.Errorf("%w: payload of %d bytes, max %d", ErrFrameTooLarge, n-frameOverhead, maxPayload)
	}
	return nil
}

// DecodeFrame verifies one frame given as the bytes after its length prefix (b is the whole
// body). It checks, in order: length, version, type, MAC (in constant time), then the time
// window. The returned Payload aliases b.
func (c *Codec) DecodeFrame(b []byte) (Frame, error) {
	return c.decodeFrame(b, nil)
}

// decodeFrame is DecodeFrame given the MAC the codec computes over b's covered bytes, when
// the caller has it already (ReadFrame hashes as it reads); with nil it computes it.
func (c *Codec) decodeFrame(b []byte, sum []byte) (Frame, error) {
	if err := checkLen(uint64(len(b)), c.maxPayload); err != nil {
		return Frame{}, err
	}
	if v := b[offVersion]; v != FrameVersion {
		return Frame{}, fmt.Errorf("%w: %d (this peer speaks %d; upgrade the older peer)", ErrBadVersion, v, FrameVersion)
	}
	if b[offType] == 0 {
		return Frame{}, fmt.Errorf("%w: type 0", ErrBadType)
	}
	macAt := len(b) - macLen
	if sum == nil {
		mac := c.macOf(b[:macAt], nil)
		sum = mac[:]
	}
	if !hmac.Equal(sum, b[macAt:]) {
		return Frame{}, fmt.Errorf("%w: wrong key (different mesh secret?) or altered frame", ErrBadMAC)
	}
	t := time.UnixMilli(int64(binary.BigEndian.Uint64(b[offTime:])))
	// Sub saturates instead of overflowing, so absurd times land outside the window.
	if skew := t.Sub(c.now()); skew > c.window || skew < -c.window {
		return Frame{}, fmt.Errorf("%w: frame time is %v from the local clock, window is ±%v; check the clocks",
			ErrStale, skew.Round(time.Millisecond), c.window)
	}
	f := Frame{
		Type: FrameType(b[offType]),
		Time: t,
		// Cap the payload so an append by the caller cannot overwrite the MAC in b.
		Payload: b[offPayload:macAt:macAt],
	}
	copy(f.Nonce[:], b[offNonce:offPayload])
	return f, nil
}
