package wire

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flynn/noise"

	"github.com/paf-mesh/paf-mesh/internal/keys"
	"github.com/paf-mesh/paf-mesh/internal/testutil"
)

// Hostile input: what a Transport refuses, from clients and servers, and how it says so.

func TestTransportRejectLogIsRateLimited(t *testing.T) {
	h := &tpCountHandler{}
	tr := tpNew(t, "a", nil, func(c *Config) { c.Logger = slog.New(h) })
	flood := &net.TCPAddr{IP: net.IPv4(10, 0, 0, 1), Port: 1}
	for i := range 250 {
		flood.Port = 1000 + i // a new connection each time: the port does not matter
		tr.reject(reasonBadMAC, flood, "", ErrBadMAC)
	}
	tr.reject(reasonIdentity, &net.TCPAddr{IP: net.IPv4(10, 0, 0, 2), Port: 1}, "", errIdentity)
	if got := h.warns.Load(); got != 4 { // rejections 1, 100 and 200 of the flood, and the other host's first
		t.Fatalf("%d Warn lines, want 4", got)
	}
	if r := tr.Stats().Rejected; r["bad-mac"] != 250 || r["identity"] != 1 {
		t.Fatalf("rejected %v", r)
	}
}

type tpCountHandler struct{ warns atomic.Int64 }

func (h *tpCountHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *tpCountHandler) Handle(_ context.Context, r slog.Record) error {
	if r.Level == slog.LevelWarn {
		h.warns.Add(1)
	}
	return nil
}
func (h *tpCountHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *tpCountHandler) WithGroup(string) slog.Handler      { return h }

// tpNoise starts a Noise handshake the way the transport does, as the peer named name (its
// identity is testIdentity(name)), with key as the pre-shared key.
func tpNoise(t *testing.T, name string, key []byte, initiator bool) *noise.HandshakeState {
	t.Helper()
	id := testIdentity(name)
	hs, err := noise.NewHandshakeState(noise.Config{
		CipherSuite: cipherSuite, Random: rand.Reader, Pattern: noise.HandshakeXX, Initiator: initiator,
		Prologue: prologue, PresharedKey: key, PresharedKeyPlacement: 0,
		StaticKeypair: noise.DHKey{Private: id.StaticPrivate(), Public: id.StaticPublic()},
	})
	if err != nil {
		t.Fatal(err)
	}
	return hs
}

// tpRaw is a hand-driven client connection for feeding a transport bad input. It plays the
// peer named "raw".
type tpRaw struct {
	t          *testing.T
	srv        *Transport
	nc         net.Conn
	br         *bufio.Reader
	codec      *Codec
	hs         *noise.HandshakeState
	send, recv *noise.CipherState
	sent       [][]byte // every record sent, for replaying
}

func tpDialRaw(t *testing.T, srv *Transport) *tpRaw {
	t.Helper()
	nc, err := net.Dial("tcp", srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
	return &tpRaw{t: t, srv: srv, nc: nc, br: bufio.NewReader(nc), codec: newTestCodec(t, CodecConfig{Now: time.Now}),
		hs: tpNoise(t, "raw", testKey, true)}
}

func (r *tpRaw) write(b []byte) {
	r.t.Helper()
	r.sent = append(r.sent, b)
	if _, err := r.nc.Write(b); err != nil {
		r.t.Fatalf("raw write: %v", err)
	}
}

// msg sends the next handshake message with payload.
func (r *tpRaw) msg(payload []byte) {
	r.t.Helper()
	m, cs1, cs2, err := r.hs.WriteMessage(nil, payload)
	if err != nil {
		r.t.Fatal(err)
	}
	if cs1 != nil {
		r.send, r.recv = cs1, cs2
	}
	r.write(withPrefix(m))
}

func (r *tpRaw) hello1() { r.msg(appendHello1(nil, hello1{serverID: r.srv.cfg.ID})) }

// answer reads the server's second message.
func (r *tpRaw) answer() hello2 {
	r.t.Helper()
	rec, _, err := readSized(r.br, nil, 1, maxMsg2Len)
	if err != nil {
		r.t.Fatalf("raw handshake: %v", err)
	}
	p, _, _, err := r.hs.ReadMessage(nil, rec)
	if err != nil {
		r.t.Fatalf("raw handshake: %v", err)
	}
	h, err := decodeHello2(p)
	if err != nil {
		r.t.Fatalf("raw handshake: %v", err)
	}
	return h
}

// handshake opens the session the way a real client does, as the peer "raw".
func (r *tpRaw) handshake() {
	r.t.Helper()
	r.hello1()
	r.answer()
	r.msg(appendHello3(nil, hello3{clientID: tid("raw"), cert: testIdentity("raw").Certificate()}))
}

// frame seals a frame as the next of this session and sends it.
func (r *tpRaw) frame(typ FrameType, payload []byte) {
	r.t.Helper()
	b, err := r.codec.AppendFrame(nil, r.send, &Frame{Type: typ, Time: time.Now(), Payload: payload})
	if err != nil {
		r.t.Fatal(err)
	}
	r.write(b)
}

func (r *tpRaw) request(id uint64, body string) {
	r.frame(frameRequest, append(binary.BigEndian.AppendUint64(nil, id), body...))
}

// tpExpectClosed reads until the peer closes nc (EOF or reset), failing on a timeout.
func tpExpectClosed(t *testing.T, nc net.Conn) {
	t.Helper()
	_ = nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err := io.Copy(io.Discard, nc)
	if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
		t.Fatal("the connection was not closed")
	}
}

func TestTransportRejectsBadInput(t *testing.T) {
	tests := map[string]struct {
		reason string
		feed   func(r *tpRaw)
	}{
		"http request": {reason: "too-large", feed: func(r *tpRaw) {
			r.write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n")) // "GET " is a 1.2 GB length
		}},
		"garbage hello": {reason: "bad-mac", feed: func(r *tpRaw) {
			r.write(withPrefix(bytes.Repeat([]byte{0x5a}, 200)))
		}},
		"oversize length": {reason: "too-large", feed: func(r *tpRaw) {
			r.write([]byte{0xff, 0xff, 0xff, 0xff, 1, 1})
		}},
		"one byte over the largest hello": {reason: "too-large", feed: func(r *tpRaw) {
			r.write(withPrefix(make([]byte, maxMsg1Len+1)))
		}},
		"length below a hello": {reason: "truncated", feed: func(r *tpRaw) {
			r.write(withPrefix(make([]byte, minMsg1Len-1)))
		}},
		"truncated hello": {reason: "truncated", feed: func(r *tpRaw) {
			m, _, _, _ := r.hs.WriteMessage(nil, appendHello1(nil, hello1{serverID: r.srv.cfg.ID}))
			r.write(withPrefix(m)[:len(m)-10])
			if err := r.nc.(*net.TCPConn).CloseWrite(); err != nil {
				r.t.Fatal(err)
			}
		}},
		"another mesh secret": {reason: "bad-mac", feed: func(r *tpRaw) {
			r.hs = tpNoise(r.t, "raw", otherKey, true)
			r.hello1()
		}},
		"unknown hello version": {reason: "bad-version", feed: func(r *tpRaw) {
			p := appendHello1(nil, hello1{serverID: r.srv.cfg.ID})
			p[0] = handshakeVersion + 1
			r.msg(p)
		}},
		"hello of version 2 (HMAC frames)": {reason: "bad-version", feed: func(r *tpRaw) {
			p := appendHello1(nil, hello1{serverID: r.srv.cfg.ID})
			p[0] = 2
			r.msg(p)
		}},
		"malformed hello": {reason: "handshake", feed: func(r *tpRaw) {
			p := appendHello1(nil, hello1{serverID: r.srv.cfg.ID})
			r.msg(p[:len(p)-1])
		}},
		"id of another identity": {reason: "identity", feed: func(r *tpRaw) {
			r.hello1()
			r.answer()
			// raw proves its own key but claims the victim's id.
			r.msg(appendHello3(nil, hello3{clientID: tid("victim"), cert: testIdentity("raw").Certificate()}))
		}},
		"certificate of another identity": {reason: "identity", feed: func(r *tpRaw) {
			r.hello1()
			r.answer()
			// The victim's certificate (public) over raw's transport key.
			r.msg(appendHello3(nil, hello3{clientID: tid("victim"), cert: testIdentity("victim").Certificate()}))
		}},
		"id bound to no identity": {reason: "identity", feed: func(r *tpRaw) {
			r.hello1()
			r.answer()
			r.msg(appendHello3(nil, hello3{clientID: "raw", cert: testIdentity("raw").Certificate()}))
		}},
		"garbage third message": {reason: "bad-mac", feed: func(r *tpRaw) {
			r.hello1()
			r.answer()
			r.write(withPrefix(bytes.Repeat([]byte{1}, minMsg3Len)))
		}},
		"skipped frame": {reason: "bad-mac", feed: func(r *tpRaw) {
			r.handshake()
			_, _ = r.codec.AppendFrame(nil, r.send, testFrame(frameRequest, make([]byte, 9))) // sealed, never sent
			r.request(1, "after a gap")
		}},
		"replayed request": {reason: "bad-mac", feed: func(r *tpRaw) {
			r.handshake()
			r.request(1, "once")
			if _, _, err := r.codec.ReadFrame(r.br, r.recv, nil); err != nil {
				r.t.Fatalf("the original request was not answered: %v", err)
			}
			r.write(r.sent[len(r.sent)-1])
		}},
		"frame from another session": {reason: "bad-mac", feed: func(r *tpRaw) {
			other := tpDialRaw(r.t, r.srv)
			other.handshake()
			other.request(1, "elsewhere")
			r.handshake()
			r.write(other.sent[len(other.sent)-1])
		}},
		"unknown frame version": {reason: "bad-version", feed: func(r *tpRaw) {
			r.handshake()
			sealed, _ := r.send.Encrypt(nil, nil, rawPlain(FrameVersion+1, byte(frameRequest), make([]byte, 9)))
			r.write(withPrefix(sealed))
		}},
		"frame type 0": {reason: "bad-type", feed: func(r *tpRaw) {
			r.handshake()
			sealed, _ := r.send.Encrypt(nil, nil, rawPlain(FrameVersion, 0, make([]byte, 9)))
			r.write(withPrefix(sealed))
		}},
		"response on a served connection": {reason: "protocol", feed: func(r *tpRaw) {
			r.handshake()
			r.frame(frameResponse, make([]byte, responseHdrLen))
		}},
		"short request": {reason: "protocol", feed: func(r *tpRaw) {
			r.handshake()
			r.frame(frameRequest, []byte{0, 0, 1})
		}},
		"request id 0": {reason: "protocol", feed: func(r *tpRaw) {
			r.handshake()
			r.request(0, "zero")
		}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			srv := tpNew(t, "srv", tpEcho, nil)
			r := tpDialRaw(t, srv)
			tc.feed(r)
			tpExpectClosed(t, r.nc)
			testutil.WaitForEvery(t, tpPoll, 10*time.Second, "the rejection to be counted", func() bool { return srv.Stats().Rejected[tc.reason] == 1 })
			if got := srv.Stats().Rejected; len(got) != 1 {
				t.Fatalf("rejected %v, want only %s", got, tc.reason)
			}
			tpMustServe(t, srv)
		})
	}
}

// A recording of a whole session (handshake and requests), replayed on a new connection at
// any later time, opens nothing: the server answers the recorded hello under a fresh
// ephemeral key, so the recorded third message does not authenticate, and the recorded
// requests never reach the handler.
func TestTransportReplayedSessionDeliversNothing(t *testing.T) {
	var handled atomic.Int64
	srv := tpNew(t, "srv", tpFunc(func(_ string, body []byte, respond func([]byte, error)) {
		handled.Add(1)
		respond(bytes.Clone(body), nil)
	}), nil)
	orig := tpDialRaw(t, srv)
	orig.handshake()
	orig.request(1, "pay alice 10")
	if f, _, err := orig.codec.ReadFrame(orig.br, orig.recv, nil); err != nil || f.Type != frameResponse {
		t.Fatalf("the original request was not answered: %v", err)
	}
	orig.nc.Close()
	if handled.Load() != 1 {
		t.Fatalf("handled %d", handled.Load())
	}
	replay := tpDialRaw(t, srv)
	for _, rec := range orig.sent {
		if _, err := replay.nc.Write(rec); err != nil {
			break // closed by the server: fine
		}
	}
	tpExpectClosed(t, replay.nc)
	testutil.WaitForEvery(t, tpPoll, 10*time.Second, "the replay to be refused", func() bool { return srv.Stats().Rejected["bad-mac"] == 1 })
	if handled.Load() != 1 {
		t.Fatalf("a replayed request reached the handler (%d handled)", handled.Load())
	}
}

// tpRawServer accepts one connection as the peer named name (with key), reads the hello, and
// lets serve answer it.
func tpRawServer(t *testing.T, name string, key []byte, serve func(s *tpRawSrv)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { ln.Close(); <-done })
	go func() {
		defer close(done)
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		defer nc.Close()
		s := &tpRawSrv{nc: nc, hs: tpNoise(t, name, key, false), name: name, codec: newTestCodec(t, CodecConfig{Now: time.Now})}
		rec, _, err := readSized(nc, nil, 1, maxMsg1Len)
		if err != nil {
			return
		}
		if _, _, _, err := s.hs.ReadMessage(nil, rec); err != nil {
			// Without the mesh key: answer with noise.
			_, _ = nc.Write(withPrefix(bytes.Repeat([]byte{9}, minMsg2Len)))
		} else {
			serve(s)
		}
		// Hold the connection until the client is done with it.
		_, _ = io.Copy(io.Discard, nc)
	}()
	return ln.Addr().String()
}

// tpRawSrv is a hand-driven server side.
type tpRawSrv struct {
	nc         net.Conn
	hs         *noise.HandshakeState
	name       string
	codec      *Codec
	send, recv *noise.CipherState
}

// answer sends the second message with payload, then reads the client's third.
func (s *tpRawSrv) answer(payload []byte) bool {
	m, _, _, err := s.hs.WriteMessage(nil, payload)
	if err != nil {
		return false
	}
	if _, err := s.nc.Write(withPrefix(m)); err != nil {
		return false
	}
	rec, _, err := readSized(s.nc, nil, 1, maxMsg3Len)
	if err != nil {
		return false
	}
	_, cs1, cs2, err := s.hs.ReadMessage(nil, rec)
	s.recv, s.send = cs1, cs2
	return err == nil
}

// ok answers as a good server claiming id with the identity of s.name.
func (s *tpRawSrv) ok(id string) bool {
	return s.answer(appendHello2(nil, hello2{serverID: id, cert: testIdentity(s.name).Certificate()}))
}

func (s *tpRawSrv) frame(typ FrameType, payload []byte) {
	b, err := s.codec.AppendFrame(nil, s.send, &Frame{Type: typ, Time: time.Now(), Payload: payload})
	if err == nil {
		_, _ = s.nc.Write(b)
	}
}

func TestTransportClientRejectsBadServer(t *testing.T) {
	response := func(id uint64, body string) []byte {
		return append(append(binary.BigEndian.AppendUint64(nil, id), statusOK), body...)
	}
	b := tid("b")
	tests := map[string]struct {
		name    string // the identity the server has
		key     []byte
		serve   func(s *tpRawSrv)
		wantErr error
		reason  string // counted by the client; "" for none
	}{
		"server without the mesh key": {
			name: "b", key: otherKey, wantErr: ErrUnreachable, reason: "bad-mac",
		},
		"another identity answering as b": {
			name: "mallory", serve: func(s *tpRawSrv) { s.ok(b) },
			wantErr: ErrUnreachable, reason: "identity",
		},
		"b's certificate over another key": {
			name: "mallory", serve: func(s *tpRawSrv) {
				s.answer(appendHello2(nil, hello2{serverID: b, cert: testIdentity("b").Certificate()}))
			},
			wantErr: ErrUnreachable, reason: "identity",
		},
		"another peer at the address": {
			name: "c", serve: func(s *tpRawSrv) { s.ok(tid("c")) },
			wantErr: ErrPeerMismatch,
		},
		"answer of another version": {
			name: "b", serve: func(s *tpRawSrv) {
				p := appendHello2(nil, hello2{serverID: b, cert: testIdentity("b").Certificate()})
				p[0] = handshakeVersion + 1
				s.answer(p)
			},
			wantErr: ErrUnreachable, reason: "bad-version",
		},
		"malformed answer": {
			name: "b", serve: func(s *tpRawSrv) {
				p := appendHello2(nil, hello2{serverID: b, cert: testIdentity("b").Certificate()})
				s.answer(p[:len(p)-1])
			},
			wantErr: ErrUnreachable, reason: "handshake",
		},
		"closed without an answer": {
			name: "b", serve: func(s *tpRawSrv) { s.nc.Close() },
			wantErr: ErrUnreachable,
		},
		"response out of sequence": {
			name: "b", serve: func(s *tpRawSrv) {
				if s.ok(b) {
					_, _ = s.codec.AppendFrame(nil, s.send, testFrame(frameResponse, response(1, "x")))
					s.frame(frameResponse, response(1, "x"))
				}
			},
			wantErr: ErrUnreachable, reason: "bad-mac",
		},
		"response to a request never sent": {
			name: "b", serve: func(s *tpRawSrv) {
				if s.ok(b) {
					s.frame(frameResponse, response(99, "x"))
				}
			},
			wantErr: ErrUnreachable, reason: "protocol",
		},
		"request on a dialled connection": {
			name: "b", serve: func(s *tpRawSrv) {
				if s.ok(b) {
					s.frame(frameRequest, response(1, "x"))
				}
			},
			wantErr: ErrUnreachable, reason: "protocol",
		},
		"bad status": {
			name: "b", serve: func(s *tpRawSrv) {
				if s.ok(b) {
					p := response(1, "x")
					p[8] = 7
					s.frame(frameResponse, p)
				}
			},
			wantErr: ErrUnreachable, reason: "protocol",
		},
		"unknown error code": {
			name: "b", serve: func(s *tpRawSrv) {
				if s.ok(b) {
					p := append(binary.BigEndian.AppendUint64(nil, 1), statusError, numCodes)
					s.frame(frameResponse, append(p, "from a newer version"...))
				}
			},
			wantErr: ErrUnreachable, reason: "protocol",
		},
		"error response without its code": {
			name: "b", serve: func(s *tpRawSrv) {
				if s.ok(b) {
					s.frame(frameResponse, append(binary.BigEndian.AppendUint64(nil, 1), statusError))
				}
			},
			wantErr: ErrUnreachable, reason: "protocol",
		},
		"good server": {
			name: "b", serve: func(s *tpRawSrv) {
				if !s.ok(b) {
					return
				}
				br := bufio.NewReader(s.nc)
				if _, _, err := s.codec.ReadFrame(br, s.recv, nil); err != nil { // the request
					return
				}
				s.frame(frameResponse, response(1, "fine"))
			},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			key := tc.key
			if key == nil {
				key = testKey
			}
			addr := tpRawServer(t, tc.name, key, tc.serve)
			a := tpNew(t, "a", nil, nil)
			got, err := a.Request(tpCtx(t), b, addr, []byte("hi"))
			if tc.wantErr == nil {
				if err != nil || string(got) != "fine" {
					t.Fatalf("got %q, %v", got, err)
				}
				return
			}
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			rej := a.Stats().Rejected
			if tc.reason == "" && len(rej) != 0 || tc.reason != "" && (rej[tc.reason] != 1 || len(rej) != 1) {
				t.Fatalf("rejected %v, want %q", rej, tc.reason)
			}
			// A connection that failed at once is not re-dialled by the same request.
			if n := a.dialCount(); n != 1 {
				t.Fatalf("%d dials, want 1", n)
			}
			if tc.reason != "" { // and a peer that sent a refused frame is in backoff
				if _, err := a.Request(tpCtx(t), b, addr, nil); !errors.Is(err, ErrUnreachable) || a.dialCount() != 1 {
					t.Fatalf("after a refused frame: err = %v, %d dials; want a fast ErrUnreachable", err, a.dialCount())
				}
			}
		})
	}
}

// testIdentity returns the identity of the test peer named name: derived from the name, so
// that a test can refer to a peer by name (tid) before it exists.
func testIdentity(name string) *keys.Identity {
	if id, ok := testIdentities.Load(name); ok {
		return id.(*keys.Identity)
	}
	seed := sha256.Sum256([]byte("identity of " + name))
	id, err := keys.IdentityFromSeed(seed[:])
	if err != nil {
		panic(err)
	}
	testIdentities.Store(name, id)
	return id
}

// testIdentities memoizes testIdentity: deriving one costs a key generation and a signature,
// which a benchmark calling tid in its loop would otherwise measure.
var testIdentities sync.Map

// tid is the peer id of the test peer named name, bound to testIdentity(name).
func tid(name string) string {
	suffix := sha256.Sum256([]byte("peer " + name))
	return testIdentity(name).Fingerprint() + "-" + hex.EncodeToString(suffix[:8])
}
