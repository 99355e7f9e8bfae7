package wire

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/paf-mesh/paf-mesh/internal/keys"
)

// isPayloadError reports whether err is one the payload decoders are allowed to return.
func isPayloadError(err error) bool {
	return errors.Is(err, errBadPayload) || errors.Is(err, errHandshakeVersion)
}

func fuzzHelloSeeds() [][]byte {
	cert := bytes.Repeat([]byte{7}, keys.CertificateLen)
	h1 := appendHello1(nil, hello1{serverID: "fedcba9876543210"})
	h2 := appendHello2(nil, hello2{serverID: "fedcba9876543210", cert: cert})
	h3 := appendHello3(nil, hello3{clientID: "0123456789abcdef", cert: cert})
	otherVersion := bytes.Clone(h1)
	otherVersion[0] = handshakeVersion + 1
	return [][]byte{
		h1, h2, h3, otherVersion,
		appendHello1(nil, hello1{serverID: strings.Repeat("s", maxIDLen)}),
		appendHello2(nil, hello2{serverID: strings.Repeat("s", maxIDLen), cert: cert}),
		appendHello3(nil, hello3{clientID: strings.Repeat("c", maxIDLen), cert: cert}),
		h2[:len(h2)-1],              // certificate truncated
		append(h1, 0),               // trailing byte
		{},                          // empty
		{handshakeVersion},          // version only
		{handshakeVersion, 0},       // empty id
		{handshakeVersion, 200},     // id longer than the payload
		{handshakeVersion, 1, 0xff}, // id not UTF-8
	}
}

// FuzzDecodeHellos: the three handshake payload decoders never panic, fail only with payload
// errors, accept only valid ids and whole certificates, and are canonical (what decodes
// re-encodes to the same bytes).
func FuzzDecodeHellos(f *testing.F) {
	for _, s := range fuzzHelloSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if h, err := decodeHello1(b); err == nil {
			if validID(h.serverID) != nil {
				t.Fatalf("hello1 accepted invalid id %q", h.serverID)
			}
			if got := appendHello1(nil, h); !bytes.Equal(got, b) {
				t.Fatalf("hello1 re-encoded %x, input %x", got, b)
			}
		} else if !isPayloadError(err) {
			t.Fatalf("hello1: unexpected error kind: %v", err)
		}
		if h, err := decodeHello2(b); err == nil {
			if validID(h.serverID) != nil || len(h.cert) != keys.CertificateLen {
				t.Fatalf("hello2 accepted id %q, cert of %d bytes", h.serverID, len(h.cert))
			}
			if got := appendHello2(nil, h); !bytes.Equal(got, b) {
				t.Fatalf("hello2 re-encoded %x, input %x", got, b)
			}
		} else if !isPayloadError(err) {
			t.Fatalf("hello2: unexpected error kind: %v", err)
		}
		if h, err := decodeHello3(b); err == nil {
			if validID(h.clientID) != nil || len(h.cert) != keys.CertificateLen {
				t.Fatalf("hello3 accepted id %q, cert of %d bytes", h.clientID, len(h.cert))
			}
			if got := appendHello3(nil, h); !bytes.Equal(got, b) {
				t.Fatalf("hello3 re-encoded %x, input %x", got, b)
			}
		} else if !isPayloadError(err) {
			t.Fatalf("hello3: unexpected error kind: %v", err)
		}
	})
}

// FuzzServerHandshake feeds a listening peer's handshake whatever an unauthenticated
// connection sends. It never panics, never reads more than maxPendingFrame bytes before the
// first message authenticates, never calls authenticated for bytes made without the mesh key,
// and ends with a rejection or the end of the stream.
func FuzzServerHandshake(f *testing.F) {
	tr := tpNew(f, "fuzz-server", tpEcho, nil)
	// A real first message (under the mesh key), and one under another key.
	first := func(key []byte) []byte {
		cli := tpNew(f, "fuzz-client", nil, func(c *Config) { c.Key = key })
		hs, err := newHandshake(cli, true)
		if err != nil {
			f.Fatal(err)
		}
		msg, _, _, err := hs.WriteMessage(nil, appendHello1(nil, hello1{serverID: tr.cfg.ID}))
		if err != nil {
			f.Fatal(err)
		}
		return withPrefix(msg)
	}
	f.Add(first(testKey))
	f.Add(first(otherKey))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 1, 1}) // a huge announced length
	f.Add([]byte{0, 0, 0, 0})
	f.Add(append(first(testKey), 0, 0, 1, 0))
	f.Fuzz(func(t *testing.T, in []byte) {
		r := &countingConn{r: bytes.NewReader(in)}
		authed := false
		_, err := tr.serverHandshake(r, func() { authed = true })
		if !authed && r.n > maxPendingFrame {
			t.Fatalf("read %d bytes before authenticating, bound is %d", r.n, maxPendingFrame)
		}
		if authed && (len(in) < lenPrefixLen+minMsg1Len) {
			t.Fatalf("authenticated %d bytes", len(in))
		}
		if err == nil {
			t.Fatal("a handshake completed from bytes alone")
		}
		if _, ok := errors.AsType[*rejection](err); !ok && err != io.EOF && !errors.Is(err, ErrPeerMismatch) && !errors.Is(err, io.ErrClosedPipe) {
			t.Fatalf("handshake ended with %v", err)
		}
	})
}

func FuzzDecodeRequest(f *testing.F) {
	for _, seed := range [][]byte{
		{}, {0, 0, 0, 0, 0, 0, 0}, make([]byte, 8), {0, 0, 0, 0, 0, 0, 0, 1},
		append([]byte{0, 0, 0, 0, 0, 0, 0, 42}, "a body"...),
		append([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, bytes.Repeat([]byte{7}, 1024)...),
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		id, body, err := decodeRequest(b)
		if err != nil {
			if !isPayloadError(err) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			return
		}
		if id == 0 {
			t.Fatal("accepted request id 0")
		}
		if got := append(binary.BigEndian.AppendUint64(nil, id), body...); !bytes.Equal(got, b) {
			t.Fatalf("re-encoded %x, input %x", got, b)
		}
	})
}

func FuzzDecodeResponse(f *testing.F) {
	for _, seed := range [][]byte{
		{}, make([]byte, 8), make([]byte, 9), {0, 0, 0, 0, 0, 0, 0, 1, statusOK},
		append([]byte{0, 0, 0, 0, 0, 0, 0, 1, statusOK}, "resp"...),
		append([]byte{0, 0, 0, 0, 0, 0, 0, 2, statusError, byte(CodeOther)}, "disk full"...),
		append([]byte{0, 0, 0, 0, 0, 0, 0, 2, statusError, byte(CodeQuota)}, "quota reached"...),
		append([]byte{0, 0, 0, 0, 0, 0, 0, 2, statusError, numCodes}, "a code from the future"...),
		{0, 0, 0, 0, 0, 0, 0, 2, statusError}, // an error without its code
		{0, 0, 0, 0, 0, 0, 0, 3, 2},
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		id, status, code, body, err := decodeResponse(b)
		if err != nil {
			if !isPayloadError(err) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			return
		}
		if id == 0 || status > statusError || !code.Known() {
			t.Fatalf("accepted id %d status %d code %d", id, status, code)
		}
		got := append(binary.BigEndian.AppendUint64(nil, id), status)
		if status == statusError {
			got = append(got, byte(code))
		} else if code != 0 {
			t.Fatalf("code %v on an ok response", code)
		}
		if got = append(got, body...); !bytes.Equal(got, b) {
			t.Fatalf("re-encoded %x, input %x", got, b)
		}
	})
}

// FuzzConnFrames feeds a connection's read loop authenticated, in-sequence frames of any type
// and payload: what a peer that completed a handshake could send. data is a list of frames, each a type
// byte, a u16 length and that many payload bytes. The loop must never panic, and may only stop
// at the end of the stream or with a "protocol" rejection.
func FuzzConnFrames(f *testing.F) {
	req := func(id uint64, body string) []byte {
		p := append(binary.BigEndian.AppendUint64(nil, id), body...)
		return append(append([]byte{byte(frameRequest)}, byte(len(p)>>8), byte(len(p))), p...)
	}
	resp := func(id uint64, status byte, body string) []byte {
		p := append(binary.BigEndian.AppendUint64(nil, id), status)
		if status == statusError {
			p = append(p, byte(CodeNotHere))
		}
		p = append(p, body...)
		return append(append([]byte{byte(frameResponse)}, byte(len(p)>>8), byte(len(p))), p...)
	}
	f.Add(true, req(1, "hello"))
	f.Add(true, append(req(1, "a"), req(2, "b")...))
	f.Add(true, req(0, "id zero"))
	f.Add(true, resp(1, statusOK, "wrong side"))
	f.Add(true, []byte{byte(frameRequest), 0, 3, 1, 2, 3})
	f.Add(false, resp(1, statusOK, "answer"))
	f.Add(false, resp(1, statusError, "\xff not utf-8"))
	f.Add(false, resp(99, statusOK, "never sent"))
	f.Add(false, resp(1, 5, "bad status"))
	f.Add(false, []byte{byte(frameResponse), 0, 10, 0, 0, 0, 0, 0, 0, 0, 1, statusError, numCodes}) // unknown code
	f.Add(false, []byte{byte(frameResponse), 0, 9, 0, 0, 0, 0, 0, 0, 0, 1, statusError})            // no code
	f.Add(false, req(1, "wrong side"))
	f.Add(false, []byte{1, 0, 0})
	f.Add(false, []byte{200, 0, 1, 0})

	tr := tpNew(f, "fuzz", tpEcho, func(c *Config) { c.MaxPayload = 1 << 16; c.Logger = nil })

	f.Fuzz(func(t *testing.T, inbound bool, data []byte) {
		// Bounded so that the echoed responses, which nothing drains here, stay under maxQueued
		// (past it the read loop would wait for the writer).
		data = data[:min(len(data), 64<<10)]
		var stream []byte
		send := testCS(testKey)
		for len(data) >= 3 {
			typ, n := FrameType(data[0]), int(binary.BigEndian.Uint16(data[1:]))
			data = data[3:]
			n = min(n, len(data))
			if typ == 0 {
				typ = frameRequest // the codec refuses to encode type 0; its decoder is fuzzed elsewhere
			}
			var err error
			stream, err = tr.codec.AppendFrame(stream, send, &Frame{Type: typ, Time: time.Now(), Payload: data[:n]})
			if err != nil {
				t.Fatal(err)
			}
			data = data[n:]
		}
		c := newConn(tr, nil, bufio.NewReader(bytes.NewReader(stream)), nil, session{peerID: "peer", recv: testCS(testKey), send: testCS(otherKey)}, inbound)
		if !inbound {
			// Two requests in flight, so that some responses have someone to go to.
			for range 2 {
				cl := &Call{c: c, id: c.nextID.Add(1), ch: make(chan callResult, 1)}
				c.pending[cl.id] = cl
			}
		}
		err := c.readFrames()
		if err == io.EOF {
			return
		}
		if r, ok := errors.AsType[*rejection](err); !ok || r.reason != reasonProtocol {
			t.Fatalf("read loop ended with %v, want EOF or a protocol rejection", err)
		}
	})
}

// countingConn is a net.Conn that reads from r and counts the bytes read; writes succeed and
// are dropped.
type countingConn struct {
	net.Conn
	r *bytes.Reader
	n int
}

func (c *countingConn) Read(p []byte) (int, error) {
	k, err := c.r.Read(p)
	c.n += k
	return k, err
}

func (c *countingConn) Write(p []byte) (int, error) { return len(p), nil }
func (c *countingConn) SetDeadline(time.Time) error { return nil }
func (c *countingConn) RemoteAddr() net.Addr {
	return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1}
}
func (c *countingConn) Close() error { return nil }
