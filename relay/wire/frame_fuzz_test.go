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
var codecErrors = []error{ErrFrameTooLarge, ErrFrameTruncated, ErrBadVersion, ErrBadType, ErrBadMAC}

func isCodecError(err error) bool {
	for _, s := range codecErrors {
		if errors.Is(err, s) {
			return true
		}
	}
	return false
}

// fuzzSeedBodies returns frame bodies (no length prefix), each the first frame of a session
// under testKey: valid ones and each kind of broken one, for
// newTestCodec(CodecConfig{MaxPayload: fuzzMaxPayload}).
func fuzzSeedBodies(tb testing.TB) [][]byte {
	good, bad := fuzzSeeds(tb)
	return append(good, bad...)
}

func fuzzSeeds(tb testing.TB) (good, bad [][]byte) {
	c := newTestCodec(tb, CodecConfig{MaxPayload: fuzzMaxPayload})
	big := newTestCodec(tb, CodecConfig{MaxPayload: fuzzMaxPayload + 1})
	body := func(cc *Codec, key []byte, typ FrameType, payload []byte) []byte {
		return encodeBody(tb, cc, testCS(key), testFrame(typ, payload))
	}
	flipped := func(off int) []byte {
		b := body(c, testKey, 5, []byte("flipped"))
		b[off] ^= 0x01
		return b
	}
	valid := body(c, testKey, 1, []byte("hello"))
	good = [][]byte{
		valid,
		body(c, testKey, 1, nil),
		body(c, testKey, 255, bytes.Repeat([]byte{0xff}, 100)),
		body(c, testKey, 2, make([]byte, fuzzMaxPayload)),
		body(c, testKey, 3, []byte(`{"id":"01J","from":"a","to":"b","body":"hi"}`)),
	}
	bad = [][]byte{
		body(c, otherKey, 1, []byte("hello")),
		flipped(offPayload + 2),
		flipped(offTime),
		flipped(len(valid) - 1),
		sealRaw(rawPlain(1, 5, []byte("old version"))),
		sealRaw(rawPlain(FrameVersion, 0, []byte("type 0"))),
		body(big, testKey, 1, make([]byte, fuzzMaxPayload+1)),
		valid[:len(valid)-1],
		valid[:frameOverhead-1],
		nil,
	}
	return good, bad
}

// TestFuzzSeeds keeps the seeds honest: the valid ones open and each broken one does not, so
// the fuzzer starts from both sides of every check.
func TestFuzzSeeds(t *testing.T) {
	c := newTestCodec(t, CodecConfig{MaxPayload: fuzzMaxPayload})
	good, bad := fuzzSeeds(t)
	for i, b := range good {
		if _, err := c.OpenFrame(testCS(testKey), bytes.Clone(b)); err != nil {
			t.Errorf("valid seed %d refused: %v", i, err)
		}
	}
	for i, b := range bad {
		if _, err := c.OpenFrame(testCS(testKey), bytes.Clone(b)); !isCodecError(err) {
			t.Errorf("broken seed %d: err = %v, want a codec sentinel", i, err)
		}
	}
}

// FuzzOpenFrame: arbitrary bytes, as the first frame of a session, never panic, only fail
// with a codec sentinel, and any frame that opens re-seals to exactly the same bytes.
func FuzzOpenFrame(f *testing.F) {
	for _, b := range fuzzSeedBodies(f) {
		f.Add(b)
	}
	c := newTestCodec(f, CodecConfig{MaxPayload: fuzzMaxPayload})
	f.Fuzz(func(t *testing.T, b []byte) {
		in := bytes.Clone(b)
		recv := testCS(testKey)
		fr, err := c.OpenFrame(recv, b)
		if err != nil {
			if !isCodecError(err) {
				t.Fatalf("error matches no codec sentinel: %v", err)
			}
			if errors.Is(err, ErrBadMAC) && recv.Nonce() != 0 {
				t.Fatal("a frame that did not authenticate moved the session's counter")
			}
			return
		}
		again, err := c.AppendFrame(nil, testCS(testKey), &Frame{Type: fr.Type, Time: fr.Time, Payload: bytes.Clone(fr.Payload)})
		if err != nil {
			t.Fatalf("opened frame does not re-seal: %v", err)
		}
		if want := withPrefix(in); !bytes.Equal(again, want) {
			t.Fatalf("re-sealing differs:\n got %x\nwant %x", again, want)
		}
	})
}

// FuzzReadFrame: a byte stream of length-prefixed frames never panics; each frame read
// re-seals, as the next frame of the session, to exactly the bytes consumed; reading stops
// with io.EOF only at a frame boundary and otherwise with a codec sentinel. Read whole and one
// byte at a time, a stream gives the same frames and the same error.
func FuzzReadFrame(f *testing.F) {
	c := newTestCodec(f, CodecConfig{MaxPayload: fuzzMaxPayload})
	bodies := fuzzSeedBodies(f)
	for _, b := range bodies {
		f.Add(withPrefix(b))
	}
	// Sessions of several frames: good ones, then one broken in each way.
	send := testCS(testKey)
	var two []byte
	for _, p := range []string{"one", "two"} {
		two, _ = c.AppendFrame(two, send, testFrame(1, []byte(p)))
	}
	f.Add(two)
	f.Add(append(bytes.Clone(two), two...))                        // the session replayed after itself
	f.Add(append(withPrefix(bodies[0]), withPrefix(bodies[0])...)) // a frame twice
	f.Add(append(bytes.Clone(two), 0x80, 0, 0, 0))                 // good, then 1<<31 length
	f.Add(append(bytes.Clone(two), two[:len(two)/3]...))           // good, then truncated
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})                          // max u32 length
	f.Add([]byte{0, 0, 0, 0})                                      // zero length
	f.Add([]byte{0, 0})                                            // partial length prefix
	readAll := func(r io.Reader) (frames []Frame, consumed []int, err error) {
		var buf []byte
		recv := testCS(testKey)
		cr := &countReader{r: r}
		for {
			var fr Frame
			if fr, buf, err = c.ReadFrame(cr, recv, buf); err != nil {
				return frames, consumed, err
			}
			fr.Payload = bytes.Clone(fr.Payload)
			frames = append(frames, fr)
			consumed = append(consumed, cr.n)
		}
	}
	f.Fuzz(func(t *testing.T, stream []byte) {
		frames, ends, err := readAll(bytes.NewReader(stream))
		if err == io.EOF {
			if n := len(ends); (n == 0 && len(stream) != 0) || (n > 0 && ends[n-1] != len(stream)) {
				t.Fatalf("io.EOF not at a frame boundary (stream of %d bytes)", len(stream))
			}
		} else if !isCodecError(err) {
			t.Fatalf("error matches no codec sentinel: %v", err)
		}
		send := testCS(testKey)
		start := 0
		for i, fr := range frames {
			again, err := c.AppendFrame(nil, send, &Frame{Type: fr.Type, Time: fr.Time, Payload: fr.Payload})
			if err != nil {
				t.Fatalf("frame %d does not re-seal: %v", i, err)
			}
			if !bytes.Equal(again, stream[start:ends[i]]) {
				t.Fatalf("re-sealing of frame %d differs", i)
			}
			start = ends[i]
		}
		pieces, _, errPieces := readAll(iotest.OneByteReader(bytes.NewReader(stream)))
		if err.Error() != errPieces.Error() || len(pieces) != len(frames) {
			t.Fatalf("read whole: %d frames, %v; one byte at a time: %d frames, %v", len(frames), err, len(pieces), errPieces)
		}
	})
}

type countReader struct {
	r io.Reader
	n int
}

func (c *countReader) Read(p []byte) (int, error) {
	k, err := c.r.Read(p)
	c.n += k
	return k, err
}

// FuzzReadSized: the bound on a connection's handshake messages. A record announced within
// the bounds reads whole; one announcing more is refused with ErrFrameTooLarge after
// consuming only its length prefix; and the buffer never grows past the bound.
func FuzzReadSized(f *testing.F) {
	for _, b := range fuzzSeedBodies(f) {
		f.Add(withPrefix(b), uint16(maxMsg1Len))
		f.Add(withPrefix(b), uint16(len(b)))   // at its bound exactly
		f.Add(withPrefix(b), uint16(len(b)-1)) // and one byte past
	}
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 1, 1}, uint16(maxMsg1Len)) // the 6-byte attack
	f.Fuzz(func(t *testing.T, stream []byte, limit uint16) {
		bound := int(limit)
		r := bytes.NewReader(stream)
		rec, buf, err := readSized(r, make([]byte, 0, lenPrefixLen), 1, bound)
		if cap(buf) > max(lenPrefixLen, minReadBuf, bound) {
			t.Fatalf("buffer of %d bytes for a bound of %d", cap(buf), bound)
		}
		if len(stream) < lenPrefixLen {
			if err == nil {
				t.Fatal("a record from less than its length prefix")
			}
			return
		}
		n := int64(binary.BigEndian.Uint32(stream))
		switch {
		case n > int64(bound):
			if !errors.Is(err, ErrFrameTooLarge) || r.Len() != len(stream)-lenPrefixLen {
				t.Fatalf("record of %d over the bound %d: %v after reading %d bytes, want ErrFrameTooLarge after the prefix",
					n, bound, err, len(stream)-r.Len())
			}
		case n < 1:
			if !errors.Is(err, ErrFrameTruncated) {
				t.Fatalf("empty record: %v", err)
			}
		case n > int64(len(stream)-lenPrefixLen):
			if !errors.Is(err, ErrFrameTruncated) {
				t.Fatalf("record cut short: %v", err)
			}
		default:
			if err != nil || !bytes.Equal(rec, stream[lenPrefixLen:lenPrefixLen+n]) {
				t.Fatalf("record of %d bytes within the bound: %v", n, err)
			}
		}
	})
}

// The time a frame carries is information only: frames stamped far from the receiver's clock
// open (freshness comes from the session, not the clock).
func TestFrameTimeIsNotChecked(t *testing.T) {
	c := newTestCodec(t, CodecConfig{})
	for _, d := range []time.Duration{-365 * 24 * time.Hour, 365 * 24 * time.Hour} {
		f := testFrame(1, []byte("x"))
		f.Time = testNow.Add(d)
		got, err := c.OpenFrame(testCS(testKey), encodeBody(t, c, testCS(testKey), f))
		if err != nil || !got.Time.Equal(f.Time) {
			t.Fatalf("frame stamped %v away: %v, time %v", d, err, got.Time)
		}
	}
}
