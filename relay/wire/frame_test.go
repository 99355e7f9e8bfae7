package wire

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/paf-mesh/paf-mesh/internal/testutil"
)

// TestMain checks every test in package wire for leaked goroutines (the codec starts none;
// the connection code built on it does); started as the helper process of a flood test, it is
// the peer under attack instead (runFloodVictim).
func TestMain(m *testing.M) { testutil.Main(m, floodVictimEnv, runFloodVictim) }

var (
	testKey  = bytes.Repeat([]byte{0x42}, 32)
	otherKey = bytes.Repeat([]byte{0x43}, 32)
	// testNow is the fixed clock of test codecs: frames are stamped relative to it.
	testNow = time.UnixMilli(1_750_000_000_123)
)

// newTestCodec returns a codec with testKey and a clock fixed at testNow, unless cfg says
// otherwise.
func newTestCodec(tb testing.TB, cfg CodecConfig) *Codec {
	tb.Helper()
	if cfg.Key == nil {
		cfg.Key = testKey
	}
	if cfg.Now == nil {
		cfg.Now = func() time.Time { return testNow }
	}
	c, err := NewCodec(cfg)
	if err != nil {
		tb.Fatalf("NewCodec: %v", err)
	}
	return c
}

// testFrame is a valid frame at testNow with a deterministic nonce.
func testFrame(typ FrameType, payload []byte) *Frame {
	f := &Frame{Type: typ, Time: testNow, Payload: payload}
	for i := range f.Nonce {
		f.Nonce[i] = byte(i + 1)
	}
	return f
}

// encodeBody encodes f and returns the body, i.e. without the length prefix.
func encodeBody(tb testing.TB, c *Codec, f *Frame) []byte {
	tb.Helper()
	b, err := c.AppendFrame(nil, f)
	if err != nil {
		tb.Fatalf("AppendFrame: %v", err)
	}
	if got, want := binary.BigEndian.Uint32(b), uint32(len(b)-lenPrefixLen); got != want {
		tb.Fatalf("length prefix %d, want %d", got, want)
	}
	return b[lenPrefixLen:]
}

// reseal recomputes the MAC of body with key, so that tests can prove a check other than the
// MAC refuses a frame.
func reseal(body, key []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write(body[:len(body)-macLen])
	copy(body[len(body)-macLen:], m.Sum(nil))
	return body
}

// withPrefix returns body preceded by its u32 length.
func withPrefix(body []byte) []byte {
	return append(binary.BigEndian.AppendUint32(nil, uint32(len(body))), body...)
}

func framesEqual(t *testing.T, got Frame, want *Frame) {
	t.Helper()
	if got.Type != want.Type || !got.Time.Equal(want.Time.Truncate(time.Millisecond)) ||
		got.Nonce != want.Nonce || !bytes.Equal(got.Payload, want.Payload) {
		t.Fatalf("frame mismatch:\n got type=%d time=%v nonce=%x payload=%d bytes\nwant type=%d time=%v nonce=%x payload=%d bytes",
			got.Type, got.Time, got.Nonce, len(got.Payload), want.Type, want.Time, want.Nonce, len(want.Payload))
	}
}

func TestFrameRoundTrip(t *testing.T) {
	c := newTestCodec(t, CodecConfig{})
	rng := rand.New(rand.NewPCG(1, 2))
	var (
		frames []*Frame
		stream []byte
	)
	for i := range 500 {
		size := rng.IntN(4 << 10)
		if i%50 == 0 {
			size = 0
		}
		payload := make([]byte, size)
		for j := range payload {
			payload[j] = byte(rng.Uint32())
		}
		f := &Frame{
			Type: FrameType(1 + rng.IntN(255)),
			// Sub-millisecond parts are dropped on the wire; framesEqual allows for that.
			Time:    testNow.Add(time.Duration(rng.Int64N(int64(4*time.Minute))) - 2*time.Minute),
			Nonce:   NewNonce(),
			Payload: payload,
		}
		frames = append(frames, f)
		var err error
		if stream, err = c.AppendFrame(stream, f); err != nil {
			t.Fatalf("AppendFrame %d: %v", i, err)
		}
	}

	readers := map[string]func([]byte) io.Reader{
		"whole":    func(b []byte) io.Reader { return bytes.NewReader(b) },
		"one byte": func(b []byte) io.Reader { return iotest.OneByteReader(bytes.NewReader(b)) },
		"half":     func(b []byte) io.Reader { return iotest.HalfReader(bytes.NewReader(b)) },
	}
	for name, mk := range readers {
		t.Run(name, func(t *testing.T) {
			r := mk(stream)
			var buf []byte
			for i, want := range frames {
				var (
					got Frame
					err error
				)
				got, buf, err = c.ReadFrame(r, buf)
				if err != nil {
					t.Fatalf("ReadFrame %d: %v", i, err)
				}
				framesEqual(t, got, want)
			}
			if _, _, err := c.ReadFrame(r, buf); err != io.EOF {
				t.Fatalf("after the last frame: err = %v, want io.EOF", err)
			}
		})
	}

	t.Run("DecodeFrame", func(t *testing.T) {
		rest := stream
		for i, want := range frames {
			n := int(binary.BigEndian.Uint32(rest))
			got, err := c.DecodeFrame(rest[lenPrefixLen : lenPrefixLen+n])
			if err != nil {
				t.Fatalf("DecodeFrame %d: %v", i, err)
			}
			framesEqual(t, got, want)
			rest = rest[lenPrefixLen+n:]
		}
	})
}

func TestDecodeFrameVerdicts(t *testing.T) {
	valid := func(tb testing.TB) []byte {
		return encodeBody(tb, newTestCodec(tb, CodecConfig{}), testFrame(7, []byte("hello, peer")))
	}
	at := func(d time.Duration) func(testing.TB) []byte {
		return func(tb testing.TB) []byte {
			f := testFrame(7, []byte("hello"))
			f.Time = testNow.Add(d)
			return encodeBody(tb, newTestCodec(tb, CodecConfig{}), f)
		}
	}
	flip := func(off func(body []byte) int, bit byte) func(testing.TB) []byte {
		return func(tb testing.TB) []byte {
			b := valid(tb)
			b[off(b)] ^= bit
			return b
		}
	}
	fixed := func(i int) func([]byte) int { return func([]byte) int { return i } }
	tests := map[string]struct {
		body    func(testing.TB) []byte
		wantErr error // nil: accepted
	}{
		"valid": {body: valid},
		"wrong key": {body: func(tb testing.TB) []byte {
			return encodeBody(tb, newTestCodec(tb, CodecConfig{Key: otherKey}), testFrame(7, []byte("x")))
		}, wantErr: ErrBadMAC},
		"flipped payload":    {body: flip(fixed(offPayload+3), 0x10), wantErr: ErrBadMAC},
		"flipped time bit":   {body: flip(fixed(offTime+7), 0x01), wantErr: ErrBadMAC},
		"flipped nonce bit":  {body: flip(fixed(offNonce), 0x80), wantErr: ErrBadMAC},
		"flipped type bit":   {body: flip(fixed(offType), 0x02), wantErr: ErrBadMAC},
		"flipped version":    {body: flip(fixed(offVersion), 0x02), wantErr: ErrBadVersion},
		"flipped mac bit":    {body: flip(func(b []byte) int { return len(b) - 1 }, 0x01), wantErr: ErrBadMAC},
		"version 2 resealed": {body: func(tb testing.TB) []byte { b := valid(tb); b[offVersion] = 2; return reseal(b, testKey) }, wantErr: ErrBadVersion},
		"version 0 resealed": {body: func(tb testing.TB) []byte { b := valid(tb); b[offVersion] = 0; return reseal(b, testKey) }, wantErr: ErrBadVersion},
		"type 0 resealed":    {body: func(tb testing.TB) []byte { b := valid(tb); b[offType] = 0; return reseal(b, testKey) }, wantErr: ErrBadType},
		"stale now-3m":       {body: at(-3 * time.Minute), wantErr: ErrStale},
		"future now+3m":      {body: at(3 * time.Minute), wantErr: ErrStale},
		"now-1m59s":          {body: at(-(time.Minute + 59*time.Second))},
		"now+1m59s":          {body: at(time.Minute + 59*time.Second)},
		"now-2m exactly":     {body: at(-2 * time.Minute)},
		"now+2m exactly":     {body: at(2 * time.Minute)},
		"now-2m-1ms":         {body: at(-2*time.Minute - time.Millisecond), wantErr: ErrStale},
		"now+2m+1ms":         {body: at(2*time.Minute + time.Millisecond), wantErr: ErrStale},
		"far past": {body: func(tb testing.TB) []byte {
			b := valid(tb)
			binary.BigEndian.PutUint64(b[offTime:], 1<<63)
			return reseal(b, testKey)
		}, wantErr: ErrStale},
		"far future": {body: func(tb testing.TB) []byte {
			b := valid(tb)
			binary.BigEndian.PutUint64(b[offTime:], 1<<63-1)
			return reseal(b, testKey)
		}, wantErr: ErrStale},
		"empty":            {body: func(testing.TB) []byte { return nil }, wantErr: ErrFrameTruncated},
		"one short of min": {body: func(tb testing.TB) []byte { return valid(tb)[:frameOverhead-1] }, wantErr: ErrFrameTruncated},
		"last byte cut":    {body: func(tb testing.TB) []byte { b := valid(tb); return b[:len(b)-1] }, wantErr: ErrBadMAC},
		"byte appended":    {body: func(tb testing.TB) []byte { return append(valid(tb), 0) }, wantErr: ErrBadMAC},
	}
	c := newTestCodec(t, CodecConfig{})
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			body := tc.body(t)
			f, err := c.DecodeFrame(body)
			if tc.wantErr == nil {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if f.Type != 7 || len(f.Payload) == 0 {
					t.Fatalf("decoded %+v", f)
				}
				return
			}
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if f.Payload != nil || f.Type != 0 {
				t.Errorf("refused frame still returned content: %+v", f)
			}
			// The same verdict through the stream reader.
			_, _, rerr := c.ReadFrame(bytes.NewReader(withPrefix(body)), nil)
			if !errors.Is(rerr, tc.wantErr) {
				t.Errorf("ReadFrame err = %v, want %v", rerr, tc.wantErr)
			}
		})
	}
}

func TestReadFrameStreamErrors(t *testing.T) {
	c := newTestCodec(t, CodecConfig{})
	full := withPrefix(encodeBody(t, c, testFrame(1, bytes.Repeat([]byte("a"), 100))))
	readErr := errors.New("connection reset")
	tests := map[string]struct {
		r        io.Reader
		wantErrs []error
	}{
		"clean EOF":                  {r: bytes.NewReader(nil), wantErrs: []error{io.EOF}},
		"EOF inside length prefix":   {r: bytes.NewReader(full[:2]), wantErrs: []error{ErrFrameTruncated, io.ErrUnexpectedEOF}},
		"EOF right after length":     {r: bytes.NewReader(full[:4]), wantErrs: []error{ErrFrameTruncated, io.ErrUnexpectedEOF}},
		"fewer bytes than announced": {r: bytes.NewReader(full[:len(full)/2]), wantErrs: []error{ErrFrameTruncated, io.ErrUnexpectedEOF}},
		"one byte short":             {r: bytes.NewReader(full[:len(full)-1]), wantErrs: []error{ErrFrameTruncated, io.ErrUnexpectedEOF}},
		"length below minimum":       {r: bytes.NewReader(withPrefix(make([]byte, frameOverhead-1))), wantErrs: []error{ErrFrameTruncated}},
		"length zero":                {r: bytes.NewReader([]byte{0, 0, 0, 0}), wantErrs: []error{ErrFrameTruncated}},
		"read error in prefix":       {r: iotest.ErrReader(readErr), wantErrs: []error{readErr}},
		"read error in body":         {r: io.MultiReader(bytes.NewReader(full[:10]), iotest.ErrReader(readErr)), wantErrs: []error{readErr}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, _, err := c.ReadFrame(tc.r, nil)
			for _, want := range tc.wantErrs {
				if !errors.Is(err, want) {
					t.Errorf("err = %v, want it to match %v", err, want)
				}
			}
			if tc.wantErrs[0] == readErr && errors.Is(err, ErrFrameTruncated) {
				t.Errorf("a transport error is reported as truncation: %v", err)
			}
		})
	}
}

// strictReader serves data and fails the test if asked for more: it proves ReadFrame did not
// try to read a body it should have refused from the length alone.
type strictReader struct {
	t    *testing.T
	data []byte
}

func (r *strictReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		r.t.Errorf("ReadFrame read past the length prefix (asked for %d more bytes)", len(p))
		return 0, io.ErrUnexpectedEOF
	}
	n := copy(p, r.data)
	r.data = r.data[n:]
	return n, nil
}

func TestReadFrameRefusesOversizeLengthAtOnce(t *testing.T) {
	c := newTestCodec(t, CodecConfig{})
	tests := map[string]uint32{
		"1<<31":            1 << 31,
		"max u32":          1<<32 - 1,
		"one over the max": uint32(frameOverhead + DefaultMaxPayload + 1),
	}
	for name, n := range tests {
		t.Run(name, func(t *testing.T) {
			r := &strictReader{t: t, data: binary.BigEndian.AppendUint32(nil, n)}
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			_, buf, err := c.ReadFrame(r, nil)
			runtime.ReadMemStats(&after)
			if !errors.Is(err, ErrFrameTooLarge) {
				t.Fatalf("err = %v, want ErrFrameTooLarge", err)
			}
			if cap(buf) > minReadBuf {
				t.Errorf("buffer grown to %d bytes for a refused frame", cap(buf))
			}
			// The announced size is 8+ MiB; anything near it means the body was allocated.
			if d := after.TotalAlloc - before.TotalAlloc; d > 1<<20 {
				t.Errorf("allocated %d bytes for a refused frame", d)
			}
		})
	}
}

func TestMaxPayloadBoundary(t *testing.T) {
	tests := map[string]struct{ max int }{
		"default": {max: 0},
		"small":   {max: 1024},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			c := newTestCodec(t, CodecConfig{MaxPayload: tc.max})
			limit := c.MaxPayload()
			if tc.max == 0 && limit != DefaultMaxPayload {
				t.Fatalf("MaxPayload() = %d, want default %d", limit, DefaultMaxPayload)
			}
			// A codec with room to spare, same key, makes the over-limit frame for decoding.
			big := newTestCodec(t, CodecConfig{MaxPayload: limit + 1})

			atMax := testFrame(3, make([]byte, limit))
			body := encodeBody(t, c, atMax)
			got, err := c.DecodeFrame(body)
			if err != nil {
				t.Fatalf("decode at MaxPayload: %v", err)
			}
			if len(got.Payload) != limit {
				t.Fatalf("decoded %d payload bytes, want %d", len(got.Payload), limit)
			}
			if _, _, err := c.ReadFrame(bytes.NewReader(withPrefix(body)), nil); err != nil {
				t.Fatalf("read at MaxPayload: %v", err)
			}

			over := testFrame(3, make([]byte, limit+1))
			if dst, err := c.AppendFrame([]byte("keep"), over); !errors.Is(err, ErrFrameTooLarge) || string(dst) != "keep" {
				t.Errorf("encode at MaxPayload+1: err = %v, dst = %d bytes; want ErrFrameTooLarge and dst unchanged", err, len(dst))
			}
			overBody := encodeBody(t, big, over)
			if _, err := c.DecodeFrame(overBody); !errors.Is(err, ErrFrameTooLarge) {
				t.Errorf("decode at MaxPayload+1: err = %v, want ErrFrameTooLarge", err)
			}
			if _, _, err := c.ReadFrame(bytes.NewReader(withPrefix(overBody)), nil); !errors.Is(err, ErrFrameTooLarge) {
				t.Errorf("read at MaxPayload+1: err = %v, want ErrFrameTooLarge", err)
			}
		})
	}
}

func TestAppendFrame(t *testing.T) {
	c := newTestCodec(t, CodecConfig{})
	tests := map[string]struct {
		frame   *Frame
		wantErr error
	}{
		"type 0":        {frame: testFrame(0, []byte("x")), wantErr: ErrBadType},
		"empty payload": {frame: testFrame(1, nil)},
		"type 255":      {frame: testFrame(255, []byte("x"))},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			prefix := []byte("already queued")
			dst, err := c.AppendFrame(bytes.Clone(prefix), tc.frame)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) || !bytes.Equal(dst, prefix) {
					t.Fatalf("err = %v, dst = %q; want %v and dst unchanged", err, dst, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.HasPrefix(dst, prefix) {
				t.Fatal("AppendFrame clobbered what was already in dst")
			}
			got, err := c.DecodeFrame(dst[len(prefix)+lenPrefixLen:])
			if err != nil {
				t.Fatal(err)
			}
			framesEqual(t, got, tc.frame)
			if len(dst)-len(prefix) != lenPrefixLen+frameOverhead+len(tc.frame.Payload) {
				t.Errorf("encoded %d bytes, want %d", len(dst)-len(prefix), lenPrefixLen+frameOverhead+len(tc.frame.Payload))
			}
		})
	}
}

func TestDecodedPayloadCannotClobberMAC(t *testing.T) {
	c := newTestCodec(t, CodecConfig{})
	body := encodeBody(t, c, testFrame(1, []byte("abc")))
	f, err := c.DecodeFrame(body)
	if err != nil {
		t.Fatal(err)
	}
	_ = append(f.Payload, "overwrite"...)
	if _, err := c.DecodeFrame(body); err != nil {
		t.Fatalf("appending to a decoded payload changed the frame: %v", err)
	}
}

func TestNewCodec(t *testing.T) {
	tests := map[string]struct {
		cfg        CodecConfig
		wantErr    string
		wantMax    int
		wantWindow time.Duration
	}{
		"defaults":        {cfg: CodecConfig{Key: testKey}, wantMax: DefaultMaxPayload, wantWindow: DefaultWindow},
		"explicit":        {cfg: CodecConfig{Key: testKey, MaxPayload: 10, Window: time.Second}, wantMax: 10, wantWindow: time.Second},
		"no key":          {cfg: CodecConfig{}, wantErr: "need at least 32"},
		"31-byte key":     {cfg: CodecConfig{Key: make([]byte, 31)}, wantErr: "need at least 32"},
		"negative max":    {cfg: CodecConfig{Key: testKey, MaxPayload: -1}, wantErr: "MaxPayload"},
		"max over u32":    {cfg: CodecConfig{Key: testKey, MaxPayload: 1 << 32}, wantErr: "MaxPayload"},
		"negative window": {cfg: CodecConfig{Key: testKey, Window: -time.Second}, wantErr: "Window"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			c, err := NewCodec(tc.cfg)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one mentioning %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.MaxPayload() != tc.wantMax || c.Window() != tc.wantWindow {
				t.Errorf("MaxPayload %d Window %v, want %d %v", c.MaxPayload(), c.Window(), tc.wantMax, tc.wantWindow)
			}
		})
	}
}

func TestCodecCopiesKey(t *testing.T) {
	key := bytes.Clone(testKey)
	c := newTestCodec(t, CodecConfig{Key: key})
	key[0] ^= 0xff // the caller reusing its slice must not change the codec's key
	if _, err := newTestCodec(t, CodecConfig{}).DecodeFrame(encodeBody(t, c, testFrame(1, []byte("z")))); err != nil {
		t.Fatalf("codec key changed with the caller's slice: %v", err)
	}
}

func TestNewNonce(t *testing.T) {
	a, b := NewNonce(), NewNonce()
	if a == b || a == [16]byte{} {
		t.Fatalf("nonces not random: %x %x", a, b)
	}
}

func TestCodecDoesNotAllocate(t *testing.T) {
	if testutil.RaceEnabled() {
		// sync.Pool drops items at random under the race detector, so HMAC states get rebuilt.
		t.Skip("allocation counts are not meaningful with -race")
	}
	c := newTestCodec(t, CodecConfig{})
	f := testFrame(1, make([]byte, 1024))
	dst := make([]byte, 0, 2048)
	if n := testing.AllocsPerRun(100, func() {
		dst, _ = c.AppendFrame(dst[:0], f)
	}); n != 0 {
		t.Errorf("AppendFrame allocates %v times per frame with a large enough dst", n)
	}
	r := bytes.NewReader(dst)
	buf := make([]byte, 2048)
	if n := testing.AllocsPerRun(100, func() {
		r.Reset(dst)
		_, buf, _ = c.ReadFrame(r, buf)
	}); n != 0 {
		t.Errorf("ReadFrame allocates %v times per frame with a reused buffer", n)
	}
}

func BenchmarkAppendFrame1K(b *testing.B) {
	c := newTestCodec(b, CodecConfig{})
	f := testFrame(1, make([]byte, 1024))
	dst := make([]byte, 0, 2048)
	b.ReportAllocs()
	b.SetBytes(int64(len(f.Payload)))
	for b.Loop() {
		var err error
		if dst, err = c.AppendFrame(dst[:0], f); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkReadFrame1K(b *testing.B) {
	c := newTestCodec(b, CodecConfig{})
	frame, err := c.AppendFrame(nil, testFrame(1, make([]byte, 1024)))
	if err != nil {
		b.Fatal(err)
	}
	r := bytes.NewReader(frame)
	buf := make([]byte, 2048)
	b.ReportAllocs()
	b.SetBytes(1024)
	for b.Loop() {
		r.Reset(frame)
		if _, buf, err = c.ReadFrame(r, buf); err != nil {
			b.Fatal(err)
		}
	}
}
