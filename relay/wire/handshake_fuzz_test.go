package wire

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"strings"
	"testing"
	"time"
)

// isPayloadError reports whether err is one the payload decoders are allowed to return.
func isPayloadError(err error) bool {
	return errors.Is(err, errBadPayload) || errors.Is(err, errHandshakeVersion)
}

func fuzzHelloSeeds() [][]byte {
	s := [sessionLen]byte{1, 2, 3, 4, 5, 6, 7, 8}
	good := appendHello(nil, hello{clientID: "0123456789abcdef", serverID: "fedcba9876543210", session: s})
	long := appendHello(nil, hello{clientID: strings.Repeat("c", maxIDLen), serverID: strings.Repeat("s", maxIDLen), session: s})
	otherVersion := bytes.Clone(good)
	otherVersion[0] = handshakeVersion + 1
	return [][]byte{
		good, long, otherVersion,
		good[:len(good)-1],      // session truncated
		append(good, 0),         // trailing byte
		{},                      // empty
		{handshakeVersion},      // version only
		{handshakeVersion, 0},   // empty client id
		{handshakeVersion, 200}, // id longer than the payload
		{handshakeVersion, 1, 0xff, 1, 'b', 1, 2, 3, 4, 5, 6, 7, 8}, // client id not UTF-8
	}
}

func FuzzDecodeHello(f *testing.F) {
	for _, s := range fuzzHelloSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := decodeHello(b)
		if err != nil {
			if !isPayloadError(err) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			return
		}
		if validID(h.clientID) != nil || validID(h.serverID) != nil {
			t.Fatalf("accepted invalid ids %q, %q", h.clientID, h.serverID)
		}
		// The encoding is canonical: what decodes re-encodes to the same bytes.
		if got := appendHello(nil, h); !bytes.Equal(got, b) {
			t.Fatalf("re-encoded %x, input %x", got, b)
		}
	})
}

func FuzzDecodeHelloAck(f *testing.F) {
	c, s := [sessionLen]byte{1, 2, 3, 4, 5, 6, 7, 8}, [sessionLen]byte{9, 9, 9, 9, 9, 9, 9, 9}
	good := appendHelloAck(nil, helloAck{serverID: "fedcba9876543210", clientSession: c, serverSession: s})
	for _, seed := range [][]byte{
		good,
		appendHelloAck(nil, helloAck{serverID: strings.Repeat("s", maxIDLen), clientSession: c, serverSession: s}),
		good[:len(good)-1], append(good, 1), {}, {handshakeVersion}, {handshakeVersion + 1}, {handshakeVersion, 0},
	} {
		f.Add(seed)
	}
	for _, seed := range fuzzHelloSeeds() { // a hello is a plausible wrong answer
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := decodeHelloAck(b)
		if err != nil {
			if !isPayloadError(err) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			return
		}
		if validID(a.serverID) != nil {
			t.Fatalf("accepted invalid id %q", a.serverID)
		}
		if got := appendHelloAck(nil, a); !bytes.Equal(got, b) {
			t.Fatalf("re-encoded %x, input %x", got, b)
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
// and payload: what a peer holding the key could send. data is a list of frames, each a type
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
	f.Add(false, []byte{byte(frameHello), 0, 0})
	f.Add(false, []byte{200, 0, 1, 0})

	tr, err := NewTransport(Config{ID: "fuzz", Key: testKey, Handler: tpEcho, MaxPayload: 1 << 16})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { tr.Close() })
	session := [sessionLen]byte{1, 2, 3, 4, 5, 6, 7, 8}

	f.Fuzz(func(t *testing.T, inbound bool, data []byte) {
		// Bounded so that the echoed responses, which nothing drains here, stay under maxQueued
		// (past it the read loop would wait for the writer).
		data = data[:min(len(data), 64<<10)]
		var stream []byte
		for seq := uint64(1); len(data) >= 3; seq++ {
			typ, n := FrameType(data[0]), int(binary.BigEndian.Uint16(data[1:]))
			data = data[3:]
			n = min(n, len(data))
			if typ == 0 {
				typ = frameRequest // the codec refuses to encode type 0; its decoder is fuzzed elsewhere
			}
			var err error
			stream, err = tr.codec.AppendFrame(stream, &Frame{Type: typ, Time: time.Now(), Nonce: sessionNonce(session, seq), Payload: data[:n]})
			if err != nil {
				t.Fatal(err)
			}
			data = data[n:]
		}
		c := newConn(tr, nil, bufio.NewReader(bytes.NewReader(stream)), nil, "peer", session, inbound)
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
