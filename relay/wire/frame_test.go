package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/flynn/noise"

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

// newTestCodec returns a codec with a clock fixed at testNow, unless cfg says otherwise.
func newTestCodec(tb testing.TB, cfg CodecConfig) *Codec {
	tb.Helper()
	if cfg.Now == nil {
		cfg.Now = func() time.Time { return testNow }
	}
	c, err := NewCodec(cfg)
	if err != nil {
		tb.Fatalf("NewCodec: %v", err)
	}
	return c
}

// testCS returns a fresh cipher state under key, at nonce 0: two of them with one key are the
// two ends of one direction of a connection.
func testCS(key []byte) *noise.CipherState {
	return noise.UnsafeNewCipherState(cipherSuite, [32]byte(key), 0)
}

// testFrame is a valid frame at testNow.
func testFrame(typ FrameType, payload []byte) *Frame {
	return &Frame{Type: typ, Time: testNow, Payload: payload}
}

// encodeBody seals f with cs and returns the body, i.e. without the length prefix.
func encodeBody(tb testing.TB, c *Codec, cs *noise.CipherState, f *Frame) []byte {
	tb.Helper()
	b, err := c.AppendFrame(nil, cs, f)
	if err != nil {
		tb.Fatalf("AppendFrame: %v", err)
	}
	if got, want := binary.BigEndian.Uint32(b), uint32(len(b)-lenPrefixLen); got != want {
		tb.Fatalf("length prefix %d, want %d", got, want)
	}
	return b[lenPrefixLen:]
}

// sealRaw seals plain (version, type, time, payload as the caller made them) with a fresh
// cipher state under testKey, so that tests can prove a check behind the tag refuses a frame.
func sealRaw(plain []byte) []byte {
	out, _ := testCS(testKey).Encrypt(nil, nil, plain)
	return out
}

// rawPlain is a frame's opened body with the given header fields.
func rawPlain(version, typ byte, payload []byte) []byte {
	b := []byte{version, typ}
	b = binary.BigEndian.AppendUint64(b, uint64(testNow.UnixMilli()))
	return append(b, payload...)
}

// withPrefix returns body preceded by its u32 length.
func withPrefix(body []byte) []byte {
	return append(binary.BigEndian.AppendUint32(nil, uint32(len(body))), body...)
}

func framesEqual(t *testing.T, got Frame, want *Frame) {
	t.Helper()
	if got.Type != want.Type || !got.Time.Equal(want.Time.Truncate(time.Millisecond)) || !bytes.Equal(got.Payload, want.Payload) {
		t.Fatalf("frame mismatch:\n got type=%d time=%v payload=%d bytes\nwant type=%d time=%v payload=%d bytes",
			got.Type, got.Time, len(got.Payload), want.Type, want.Time, len(want.Payload))
	}
}

func TestFrameRoundTrip(t *testing.T) {
	c := newTestCodec(t, CodecConfig{})
	rng := rand.New(rand.NewPCG(1, 2))
	var (
		frames []*Frame
		stream []byte
	)
	send := testCS(testKey)
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
			// Sub-millisecond parts are dropped on the wire; framesEqual allows for that. Any
			// time is carried: nothing is refused for it.
			Time:    testNow.Add(time.Duration(rng.Int64N(int64(48*time.Hour))) - 24*time.Hour),
			Payload: payload,
		}
		frames = append(frames, f)
		var err error
		if stream, err = c.AppendFrame(stream, send, f); err != nil {
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
			r, recv := mk(stream), testCS(testKey)
			var buf []byte
			for i, want := range frames {
				var (
					got Frame
					err error
				)
				got, buf, err = c.ReadFrame(r, recv, buf)
				if err != nil {
					t.Fatalf("ReadFrame %d: %v", i, err)
				}
				framesEqual(t, got, want)
			}
			if _, _, err := c.ReadFrame(r, recv, buf); err != io.EOF {
				t.Fatalf("after the last frame: err = %v, want io.EOF", err)
			}
		})
	}

	t.Run("OpenFrame", func(t *testing.T) {
		rest, recv := bytes.Clone(stream), testCS(testKey)
		for i, want := range frames {
			n := int(binary.BigEndian.Uint32(rest))
			got, err := c.OpenFrame(recv, rest[lenPrefixLen:lenPrefixLen+n])
			if err != nil {
				t.Fatalf("OpenFrame %d: %v", i, err)
			}
			framesEqual(t, got, want)
			rest = rest[lenPrefixLen+n:]
		}
	})
}

func TestOpenFrameVerdicts(t *testing.T) {
	c := newTestCodec(t, CodecConfig{})
	valid := func(tb testing.TB) []byte {
		return encodeBody(tb, c, testCS(testKey), testFrame(7, []byte("hello, peer")))
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
			return encodeBody(tb, c, testCS(otherKey), testFrame(7, []byte("x")))
		}, wantErr: ErrBadMAC},
		"second frame of a session first": {body: func(tb testing.TB) []byte {
			cs := testCS(testKey)
			encodeBody(tb, c, cs, testFrame(7, []byte("first")))
			return encodeBody(tb, c, cs, testFrame(7, []byte("second")))
		}, wantErr: ErrBadMAC},
		"flipped payload":    {body: flip(fixed(offPayload+3), 0x10), wantErr: ErrBadMAC},
		"flipped time bit":   {body: flip(fixed(offTime+7), 0x01), wantErr: ErrBadMAC},
		"flipped type bit":   {body: flip(fixed(offType), 0x02), wantErr: ErrBadMAC},
		"flipped version":    {body: flip(fixed(offVersion), 0x02), wantErr: ErrBadMAC},
		"flipped tag bit":    {body: flip(func(b []byte) int { return len(b) - 1 }, 0x01), wantErr: ErrBadMAC},
		"version 1 resealed": {body: func(testing.TB) []byte { return sealRaw(rawPlain(1, 7, []byte("x"))) }, wantErr: ErrBadVersion},
		"version 0 resealed": {body: func(testing.TB) []byte { return sealRaw(rawPlain(0, 7, []byte("x"))) }, wantErr: ErrBadVersion},
		"type 0 resealed":    {body: func(testing.TB) []byte { return sealRaw(rawPlain(FrameVersion, 0, []byte("x"))) }, wantErr: ErrBadType},
		"empty":              {body: func(testing.TB) []byte { return nil }, wantErr: ErrFrameTruncated},
		"one short of min":   {body: func(tb testing.TB) []byte { return valid(tb)[:frameOverhead-1] }, wantErr: ErrFrameTruncated},
		"last byte cut":      {body: func(tb testing.TB) []byte { b := valid(tb); return b[:len(b)-1] }, wantErr: ErrBadMAC},
		"byte appended":      {body: func(tb testing.TB) []byte { return append(valid(tb), 0) }, wantErr: ErrBadMAC},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			body := tc.body(t)
			recv := testCS(testKey)
			f, err := c.OpenFrame(recv, bytes.Clone(body))
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
			_, _, rerr := c.ReadFrame(bytes.NewReader(withPrefix(body)), testCS(testKey), nil)
			if !errors.Is(rerr, tc.wantErr) {
				t.Errorf("ReadFrame err = %v, want %v", rerr, tc.wantErr)
			}
		})
	}
}

// A frame that opened once does not open again, nor out of order: the counter nonce is what
// makes a connection replay-proof. A frame that fails does not move the counter.
func TestFramesCannotBeReplayedOrReordered(t *testing.T) {
	c := newTestCodec(t, CodecConfig{})
	send := testCS(testKey)
	f1 := encodeBody(t, c, send, testFrame(1, []byte("one")))
	f2 := encodeBody(t, c, send, testFrame(1, []byte("two")))
	recv := testCS(testKey)
	if _, err := c.OpenFrame(recv, bytes.Clone(f2)); !errors.Is(err, ErrBadMAC) {
		t.Fatalf("frame 2 before frame 1: %v, want ErrBadMAC", err)
	}
	if f, err := c.OpenFrame(recv, bytes.Clone(f1)); err != nil || string(f.Payload) != "one" {
		t.Fatalf("frame 1 after a refused frame: %v (a failure moved the counter?)", err)
	}
	if _, err := c.OpenFrame(recv, bytes.Clone(f1)); !errors.Is(err, ErrBadMAC) {
		t.Fatalf("frame 1 replayed: %v, want ErrBadMAC", err)
	}
	if f, err := c.OpenFrame(recv, bytes.Clone(f2)); err != nil || string(f.Payload) != "two" {
		t.Fatalf("frame 2: %v", err)
	}
	// Reflected: a frame sent in one direction, fed to the sender's own receiving side (the
	// other direction has another key).
	other := testCS(otherKey)
	if _, err := c.OpenFrame(other, encodeBody(t, c, testCS(testKey), testFrame(1, []byte("x")))); !errors.Is(err, ErrBadMAC) {
		t.Fatalf("frame under the other direction's key: %v", err)
	}
}

func TestReadFrameStreamErrors(t *testing.T) {
	c := newTestCodec(t, CodecConfig{})
	full := withPrefix(encodeBody(t, c, testCS(testKey), testFrame(1, bytes.Repeat([]byte("a"), 100))))
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
			_, _, err := c.ReadFrame(tc.r, testCS(testKey), nil)
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
			_, buf, err := c.ReadFrame(r, testCS(testKey), nil)
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
			// A codec with room to spare makes the over-limit frame for decoding.
			big := newTestCodec(t, CodecConfig{MaxPayload: limit + 1})

			body := encodeBody(t, c, testCS(testKey), testFrame(3, make([]byte, limit)))
			got, err := c.OpenFrame(testCS(testKey), bytes.Clone(body))
			if err != nil {
				t.Fatalf("open at MaxPayload: %v", err)
			}
			if len(got.Payload) != limit {
				t.Fatalf("decoded %d payload bytes, want %d", len(got.Payload), limit)
			}
			if _, _, err := c.ReadFrame(bytes.NewReader(withPrefix(body)), testCS(testKey), nil); err != nil {
				t.Fatalf("read at MaxPayload: %v", err)
			}

			over := testFrame(3, make([]byte, limit+1))
			send := testCS(testKey)
			if dst, err := c.AppendFrame([]byte("keep"), send, over); !errors.Is(err, ErrFrameTooLarge) || string(dst) != "keep" {
				t.Errorf("encode at MaxPayload+1: err = %v, dst = %d bytes; want ErrFrameTooLarge and dst unchanged", err, len(dst))
			}
			if send.Nonce() != 0 {
				t.Errorf("a refused frame used nonce %d", send.Nonce())
			}
			overBody := encodeBody(t, big, testCS(testKey), over)
			if _, err := c.OpenFrame(testCS(testKey), bytes.Clone(overBody)); !errors.Is(err, ErrFrameTooLarge) {
				t.Errorf("open at MaxPayload+1: err = %v, want ErrFrameTooLarge", err)
			}
			if _, _, err := c.ReadFrame(bytes.NewReader(withPrefix(overBody)), testCS(testKey), nil); !errors.Is(err, ErrFrameTooLarge) {
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
			dst, err := c.AppendFrame(bytes.Clone(prefix), testCS(testKey), tc.frame)
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
			if bytes.Contains(dst, []byte("x")) && len(tc.frame.Payload) > 0 && bytes.Contains(dst[len(prefix):], tc.frame.Payload) {
				t.Error("the payload is on the wire in clear")
			}
			got, err := c.OpenFrame(testCS(testKey), dst[len(prefix)+lenPrefixLen:])
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

// The payload travels encrypted: a marker in it appears nowhere on the wire.
func TestFramePayloadIsEncrypted(t *testing.T) {
	c := newTestCodec(t, CodecConfig{})
	marker := []byte("MARKER-7f3a9c-secret-body")
	wire, err := c.AppendFrame(nil, testCS(testKey), testFrame(1, bytes.Repeat(marker, 10)))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(wire, marker[:8]) {
		t.Fatal("the payload is readable on the wire")
	}
}

func TestNewCodec(t *testing.T) {
	tests := map[string]struct {
		cfg     CodecConfig
		wantErr string
		wantMax int
	}{
		"defaults":     {cfg: CodecConfig{}, wantMax: DefaultMaxPayload},
		"explicit":     {cfg: CodecConfig{MaxPayload: 10}, wantMax: 10},
		"negative max": {cfg: CodecConfig{MaxPayload: -1}, wantErr: "MaxPayload"},
		"max over u32": {cfg: CodecConfig{MaxPayload: 1 << 32}, wantErr: "MaxPayload"},
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
			if c.MaxPayload() != tc.wantMax {
				t.Errorf("MaxPayload %d, want %d", c.MaxPayload(), tc.wantMax)
			}
		})
	}
}

// The codec allocates nothing of its own: what a frame costs in allocations is what the
// cipher costs (flynn/noise builds each nonce in a fresh slice).
func TestCodecDoesNotAllocate(t *testing.T) {
	if testutil.RaceEnabled() {
		t.Skip("allocation counts are not meaningful with -race")
	}
	c := newTestCodec(t, CodecConfig{})
	f := testFrame(1, make([]byte, 1024))
	plain := make([]byte, headerLen+1024, headerLen+1024+tagLen)
	cs := testCS(testKey)
	cipherAllocs := testing.AllocsPerRun(100, func() { _, _ = cs.Encrypt(plain[:0], nil, plain) })
	dst := make([]byte, 0, 2048)
	send, recv := testCS(testKey), testCS(testKey)
	if n := testing.AllocsPerRun(100, func() {
		dst, _ = c.AppendFrame(dst[:0], send, f)
	}); n > cipherAllocs {
		t.Errorf("AppendFrame allocates %v times per frame with a large enough dst; the cipher alone %v", n, cipherAllocs)
	}
	// AllocsPerRun runs the function once more than asked, as a warm-up.
	send = testCS(testKey)
	var frames [][]byte
	for range 101 {
		b, _ := c.AppendFrame(nil, send, f)
		frames = append(frames, b)
	}
	r := bytes.NewReader(nil)
	buf := make([]byte, 2048)
	i := 0
	if n := testing.AllocsPerRun(100, func() {
		r.Reset(frames[i])
		i++
		_, buf, _ = c.ReadFrame(r, recv, buf)
	}); n > cipherAllocs {
		t.Errorf("ReadFrame allocates %v times per frame with a reused buffer; the cipher alone %v", n, cipherAllocs)
	}
	if recv.Nonce() != 101 {
		t.Fatalf("opened %d frames, want 101", recv.Nonce())
	}
}

func BenchmarkAppendFrame1K(b *testing.B) {
	c := newTestCodec(b, CodecConfig{})
	f := testFrame(1, make([]byte, 1024))
	dst := make([]byte, 0, 2048)
	send := testCS(testKey)
	b.ReportAllocs()
	b.SetBytes(int64(len(f.Payload)))
	for b.Loop() {
		var err error
		if dst, err = c.AppendFrame(dst[:0], send, f); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkReadFrame1K(b *testing.B) {
	c := newTestCodec(b, CodecConfig{})
	send, recv := testCS(testKey), testCS(testKey)
	f := testFrame(1, make([]byte, 1024))
	sealed := make([]byte, 0, 2048)
	var err error
	buf := make([]byte, 2048)
	r := bytes.NewReader(nil)
	b.ReportAllocs()
	b.SetBytes(1024)
	for b.Loop() {
		// Each frame must be the next of the session: seal it anew (counted in the time).
		sealed, _ = c.AppendFrame(sealed[:0], send, f)
		r.Reset(sealed)
		if _, buf, err = c.ReadFrame(r, recv, buf); err != nil {
			b.Fatal(err)
		}
	}
}
