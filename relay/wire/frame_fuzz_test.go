package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"
	"testing/iotest"
	"time"
)

// fuzzMaxPayload is small so that the fuzzer reaches the oversize paths cheaply.
const fuzzMaxPayload = 1024

// codecErrors are the only errors decoding may return for bytes from a peer.
var codecErrors = []error{ErrFrameTooLarge, ErrFrameTruncated, ErrBadVersion, ErrBadType, ErrBadMAC, ErrStale}

func isCodecError(err error) bool {
	for _, s := range codecErrors {
		if errors.Is(err, s) {
			return true
		}
	}
	return false
}

// fuzzSeedBodies returns frame bodies (no length prefix): valid ones and each kind of broken
// one, all made for newTestCodec(CodecConfig{MaxPayload: fuzzMaxPayload}).
func fuzzSeedBodies(tb testing.TB) [][]byte {
	good, bad := fuzzSeeds(tb)
	return append(good, bad...)
}

func fuzzSeeds(tb testing.TB) (good, bad [][]byte) {
	c := newTestCodec(tb, CodecConfig{MaxPayload: fuzzMaxPayload})
	big := newTestCodec(tb, CodecConfig{MaxPayload: fuzzMaxPayload + 1})
	wrongKey := newTestCodec(tb, CodecConfig{Key: otherKey})
	body := func(cc *Codec, typ FrameType, payload []byte, mod func(*Frame)) []byte {
		f := testFrame(typ, payload)
		if mod != nil {
			mod(f)
		}
		return encodeBody(tb, cc, f)
	}
	resealed := func(mod func([]byte)) []byte {
		b := body(c, 5, []byte("resealed"), nil)
		mod(b)
		return reseal(b, testKey)
	}
	flipped := func(off int) []byte {
		b := body(c, 5, []byte("flipped"), nil)
		b[off] ^= 0x01
		return b
	}
	valid := body(c, 1, []byte("hello"), nil)
	good = [][]byte{
		valid,
		body(c, 1, nil, nil),
		body(c, 255, bytes.Repeat([]byte{0xff}, 100), nil),
		body(c, 2, make([]byte, fuzzMaxPayload), nil),
		body(c, 3, []byte(`{"id":"01J","from":"a","to":"b","body":"hi"}`), func(f *Frame) { f.Time = testNow.Add(-time.Minute) }),
	}
	bad = [][]byte{
		body(wrongKey, 1, []byte("hello"), nil),
		flipped(offPayload + 2),
		flipped(offTime),
		flipped(offNonce + 5),
		flipped(len(valid) - 1),
		resealed(func(b []byte) { b[offVersion] = 2 }),
		resealed(func(b []byte) { b[offType] = 0 }),
		resealed(func(b []byte) {
			binary.BigEndian.PutUint64(b[offTime:], uint64(testNow.Add(-3*time.Minute).UnixMilli()))
		}),
		resealed(func(b []byte) {
			binary.BigEndian.PutUint64(b[offTime:], uint64(testNow.Add(3*time.Minute).UnixMilli()))
		}),
		body(big, 1, make([]byte, fuzzMaxPayload+1), nil),
		valid[:len(valid)-1],
		valid[:frameOverhead-1],
		nil,
	}
	return good, bad
}

// TestFuzzSeeds keeps the seeds honest: the valid ones decode and each broken one does not, so
// the fuzzer starts from both sides of every check.
func TestFuzzSeeds(t *testing.T) {
	c := newTestCodec(t, CodecConfig{MaxPayload: fuzzMaxPayload})
	good, bad := fuzzSeeds(t)
	for i, b := range good {
		if _, err := c.DecodeFrame(b); err != nil {
			t.Errorf("valid seed %d refused: %v", i, err)
		}
	}
	for i, b := range bad {
		if _, err := c.DecodeFrame(b); !isCodecError(err) {
			t.Errorf("broken seed %d: err = %v, want a codec sentinel", i, err)
		}
	}
}

// FuzzDecodeFrame: arbitrary bytes never panic, only fail with a codec sentinel, and any frame
// that decodes re-encodes to exactly the same bytes.
func FuzzDecodeFrame(f *testing.F) {
	for _, b := range fuzzSeedBodies(f) {
		f.Add(b)
	}
	c := newTestCodec(f, CodecConfig{MaxPayload: fuzzMaxPayload})
	f.Fuzz(func(t *testing.T, b []byte) {
		in := bytes.Clone(b)
		fr, err := c.DecodeFrame(b)
		if !bytes.Equal(in, b) {
			t.Fatal("DecodeFrame modified its input")
		}
		if err != nil {
			if !isCodecError(err) {
				t.Fatalf("error matches no codec sentinel: %v", err)
			}
			return
		}
		again, err := c.AppendFrame(nil, &fr)
		if err != nil {
			t.Fatalf("decoded frame does not re-encode: %v", err)
		}
		if want := withPrefix(in); !bytes.Equal(again, want) {
			t.Fatalf("re-encoding differs:\n got %x\nwant %x", again, want)
		}
	})
}

// FuzzReadFrame: a byte stream of length-prefixed frames never panics; each frame read
// re-encodes to exactly the bytes consumed; reading stops with io.EOF only at a frame boundary
// and otherwise with a codec sentinel.
func FuzzReadFrame(f *testing.F) {
	bodies := fuzzSeedBodies(f)
	for _, b := range bodies {
		f.Add(withPrefix(b))
	}
	valid := withPrefix(bodies[0])
	f.Add(append(bytes.Clone(valid), withPrefix(bodies[2])...))          // two good frames
	f.Add(append(bytes.Clone(valid), withPrefix(bodies[6])...))          // good, then bad MAC
	f.Add(append(bytes.Clone(valid), valid[:len(valid)/2]...))           // good, then truncated
	f.Add(append(bytes.Clone(valid), 0x80, 0, 0, 0))                     // good, then 1<<31 length
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})                                // max u32 length
	f.Add([]byte{0, 0, 0, 0})                                            // zero length
	f.Add([]byte{0, 0})                                                  // partial length prefix
	f.Add(append(binary.BigEndian.AppendUint32(nil, 100), valid[4:]...)) // length disagrees with body
	c := newTestCodec(f, CodecConfig{MaxPayload: fuzzMaxPayload})
	f.Fuzz(func(t *testing.T, stream []byte) {
		r := bytes.NewReader(stream)
		var buf []byte
		for range len(stream) + 1 { // every good frame consumes at least one byte
			start := len(stream) - r.Len()
			var (
				fr  Frame
				err error
			)
			fr, buf, err = c.ReadFrame(r, buf)
			if err == io.EOF {
				if start != len(stream) {
					t.Fatalf("io.EOF at offset %d of %d: not a frame boundary", start, len(stream))
				}
				return
			}
			if err != nil {
				if !isCodecError(err) {
					t.Fatalf("error matches no codec sentinel: %v", err)
				}
				return
			}
			end := len(stream) - r.Len()
			again, err := c.AppendFrame(nil, &fr)
			if err != nil {
				t.Fatalf("frame read at %d does not re-encode: %v", start, err)
			}
			if !bytes.Equal(again, stream[start:end]) {
				t.Fatalf("re-encoding of frame at %d differs:\n got %x\nwant %x", start, again, stream[start:end])
			}
		}
		t.Fatal("ReadFrame kept returning frames without consuming the stream")
	})
}

// FuzzReadFrameInPieces: ReadFrame hashes a frame as its bytes arrive, so the verdict must not
// depend on how the stream is cut: read whole and one byte at a time, a stream gives the same
// frames and the same error.
func FuzzReadFrameInPieces(f *testing.F) {
	bodies := fuzzSeedBodies(f)
	for _, b := range bodies {
		f.Add(withPrefix(b))
	}
	valid := withPrefix(bodies[0])
	f.Add(append(bytes.Clone(valid), withPrefix(bodies[6])...)) // good, then bad MAC
	f.Add(append(bytes.Clone(valid), valid[:len(valid)/2]...))  // good, then truncated
	c := newTestCodec(f, CodecConfig{MaxPayload: fuzzMaxPayload})
	readAll := func(r io.Reader) (frames []Frame, err error) {
		var buf []byte
		for {
			var fr Frame
			if fr, buf, err = c.ReadFrame(r, buf); err != nil {
				return frames, err
			}
			fr.Payload = bytes.Clone(fr.Payload)
			frames = append(frames, fr)
		}
	}
	f.Fuzz(func(t *testing.T, stream []byte) {
		whole, errWhole := readAll(bytes.NewReader(stream))
		pieces, errPieces := readAll(iotest.OneByteReader(bytes.NewReader(stream)))
		if errWhole.Error() != errPieces.Error() {
			t.Fatalf("read whole: %v; one byte at a time: %v", errWhole, errPieces)
		}
		if len(whole) != len(pieces) {
			t.Fatalf("read whole: %d frames; one byte at a time: %d", len(whole), len(pieces))
		}
		for i := range whole {
			if !whole[i].Time.Equal(pieces[i].Time) || whole[i].Type != pieces[i].Type ||
				whole[i].Nonce != pieces[i].Nonce || !bytes.Equal(whole[i].Payload, pieces[i].Payload) {
				t.Fatalf("frame %d differs between reading whole and one byte at a time", i)
			}
		}
	})
}

// FuzzReadFrameBounded: the bound on a connection's first frame (readFrame with the largest
// hello, or ack, as the payload bound). A frame announced within the bound reads exactly as
// ReadFrame reads it; one announcing more is refused with ErrFrameTooLarge after consuming
// only its length prefix; and the buffer never grows past the bound.
func FuzzReadFrameBounded(f *testing.F) {
	for _, b := range fuzzSeedBodies(f) {
		f.Add(withPrefix(b), uint16(maxHelloLen))
		f.Add(withPrefix(b), uint16(5)) // "hello" at its bound exactly
		f.Add(withPrefix(b), uint16(4)) // and one byte past
	}
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 1, 1}, uint16(maxHelloLen)) // the 6-byte attack
	c := newTestCodec(f, CodecConfig{MaxPayload: fuzzMaxPayload})
	f.Fuzz(func(t *testing.T, stream []byte, limit uint16) {
		bound := int(limit) % (fuzzMaxPayload + 1)
		rb := bytes.NewReader(stream)
		fb, buf, errB := c.readFrame(rb, make([]byte, 0, lenPrefixLen), bound)
		if cap(buf) > max(lenPrefixLen, frameOverhead+bound) {
			t.Fatalf("buffer of %d bytes for a bound of %d", cap(buf), bound)
		}
		if len(stream) >= lenPrefixLen {
			if n := binary.BigEndian.Uint32(stream); n >= frameOverhead && int64(n)-frameOverhead > int64(bound) {
				if !errors.Is(errB, ErrFrameTooLarge) || rb.Len() != len(stream)-lenPrefixLen {
					t.Fatalf("payload of %d over the bound %d: %v after reading %d bytes, want ErrFrameTooLarge after the prefix",
						int64(n)-frameOverhead, bound, errB, len(stream)-rb.Len())
				}
				return
			}
		}
		ra := bytes.NewReader(stream)
		fa, _, errA := c.ReadFrame(ra, nil)
		if (errA == nil) != (errB == nil) || (errA != nil && errA.Error() != errB.Error()) {
			t.Fatalf("bounded: %v; unbounded: %v", errB, errA)
		}
		if ra.Len() != rb.Len() {
			t.Fatalf("bounded read consumed %d bytes, unbounded %d", len(stream)-rb.Len(), len(stream)-ra.Len())
		}
		if errA == nil && (fa.Type != fb.Type || !fa.Time.Equal(fb.Time) || fa.Nonce != fb.Nonce || !bytes.Equal(fa.Payload, fb.Payload)) {
			t.Fatal("bounded and unbounded reads decode different frames")
		}
	})
}
