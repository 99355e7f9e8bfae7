package wire

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync/atomic"
	"testing"
	"time"

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
	tr.reject(reasonStale, &net.TCPAddr{IP: net.IPv4(10, 0, 0, 2), Port: 1}, "", ErrStale)
	if got := h.warns.Load(); got != 4 { // rejections 1, 100 and 200 of the flood, and the other host's first
		t.Fatalf("%d Warn lines, want 4", got)
	}
	if r := tr.Stats().Rejected; r["bad-mac"] != 250 || r["stale"] != 1 {
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

// tpRaw is a hand-driven client connection for feeding a transport bad input.
type tpRaw struct {
	t       *testing.T
	srv     *Transport
	nc      net.Conn
	br      *bufio.Reader
	codec   *Codec
	session [sessionLen]byte
}

func tpDialRaw(t *testing.T, srv *Transport) *tpRaw {
	t.Helper()
	nc, err := net.Dial("tcp", srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
	return &tpRaw{t: t, srv: srv, nc: nc, br: bufio.NewReader(nc), codec: newTestCodec(t, CodecConfig{Now: time.Now})}
}

func (r *tpRaw) send(b []byte) {
	r.t.Helper()
	if _, err := r.nc.Write(b); err != nil {
		r.t.Fatalf("raw write: %v", err)
	}
}

func (r *tpRaw) encode(c *Codec, typ FrameType, nonce [16]byte, payload []byte) []byte {
	r.t.Helper()
	b, err := c.AppendFrame(nil, &Frame{Type: typ, Time: time.Now(), Nonce: nonce, Payload: payload})
	if err != nil {
		r.t.Fatal(err)
	}
	return b
}

// hello is a valid hello frame for the server, with a random nonce and session.
func (r *tpRaw) hello() []byte {
	return r.encode(r.codec, frameHello, NewNonce(), appendHello(nil, hello{clientID: "raw", serverID: r.srv.cfg.ID, session: randomSession()}))
}

// handshake opens the session the way a real client does.
func (r *tpRaw) handshake() {
	r.t.Helper()
	h := hello{clientID: "raw", serverID: r.srv.cfg.ID, session: randomSession()}
	r.send(r.encode(r.codec, frameHello, NewNonce(), appendHello(nil, h)))
	f, _, err := r.codec.ReadFrame(r.br, nil)
	if err != nil {
		r.t.Fatalf("raw handshake: %v", err)
	}
	ack, err := decodeHelloAck(f.Payload)
	if err != nil || f.Type != frameHelloAck || ack.clientSession != h.session {
		r.t.Fatalf("raw handshake: ack %+v type %d: %v", ack, f.Type, err)
	}
	r.session = xorSessions(h.session, ack.serverSession)
}

func (r *tpRaw) request(seq, id uint64, body string) []byte {
	return r.encode(r.codec, frameRequest, sessionNonce(r.session, seq), append(binary.BigEndian.AppendUint64(nil, id), body...))
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
			r.send([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n")) // "GET " is a 1.2 GB length
		}},
		"garbage body": {reason: "bad-mac", feed: func(r *tpRaw) {
			body := bytes.Repeat([]byte{0x5a}, 200)
			body[0], body[1] = FrameVersion, byte(frameHello)
			r.send(withPrefix(body))
		}},
		"oversize length": {reason: "too-large", feed: func(r *tpRaw) {
			r.send([]byte{0xff, 0xff, 0xff, 0xff, 1, 1})
		}},
		"length below a frame": {reason: "truncated", feed: func(r *tpRaw) {
			r.send(withPrefix([]byte{1, 1, 0, 0, 0}))
		}},
		"truncated frame": {reason: "truncated", feed: func(r *tpRaw) {
			h := r.hello()
			r.send(h[:len(h)-10])
			if err := r.nc.(*net.TCPConn).CloseWrite(); err != nil {
				r.t.Fatal(err)
			}
		}},
		"replayed hello": {reason: "replay", feed: func(r *tpRaw) {
			h := r.hello()
			first := tpDialRaw(r.t, r.srv)
			first.send(h)
			if f, _, err := first.codec.ReadFrame(first.br, nil); err != nil || f.Type != frameHelloAck {
				r.t.Fatalf("the original hello was not answered: %v", err)
			}
			r.send(h) // recorded and sent again
		}},
		"stale hello": {reason: "stale", feed: func(r *tpRaw) {
			old := newTestCodec(r.t, CodecConfig{Now: func() time.Time { return time.Now().Add(-10 * time.Minute) }})
			b, err := old.AppendFrame(nil, &Frame{Type: frameHello, Time: time.Now().Add(-10 * time.Minute), Nonce: NewNonce(),
				Payload: appendHello(nil, hello{clientID: "raw", serverID: "srv", session: randomSession()})})
			if err != nil {
				r.t.Fatal(err)
			}
			r.send(b)
		}},
		"unknown frame version": {reason: "bad-version", feed: func(r *tpRaw) {
			h := r.hello()
			h[lenPrefixLen+offVersion] = FrameVersion + 1
			reseal(h[lenPrefixLen:], testKey)
			r.send(h)
		}},
		"frame type 0": {reason: "bad-type", feed: func(r *tpRaw) {
			h := r.hello()
			h[lenPrefixLen+offType] = 0
			reseal(h[lenPrefixLen:], testKey)
			r.send(h)
		}},
		"unknown hello version": {reason: "bad-version", feed: func(r *tpRaw) {
			p := appendHello(nil, hello{clientID: "raw", serverID: "srv", session: randomSession()})
			p[0] = handshakeVersion + 1
			r.send(r.encode(r.codec, frameHello, NewNonce(), p))
		}},
		"hello of version 1 (error responses without a code)": {reason: "bad-version", feed: func(r *tpRaw) {
			p := appendHello(nil, hello{clientID: "raw", serverID: "srv", session: randomSession()})
			p[0] = 1
			r.send(r.encode(r.codec, frameHello, NewNonce(), p))
		}},
		"malformed hello": {reason: "handshake", feed: func(r *tpRaw) {
			p := appendHello(nil, hello{clientID: "raw", serverID: "srv", session: randomSession()})
			r.send(r.encode(r.codec, frameHello, NewNonce(), p[:len(p)-1]))
		}},
		"request before hello": {reason: "handshake", feed: func(r *tpRaw) {
			r.send(r.request(1, 1, "sneaky"))
		}},
		"skipped sequence number": {reason: "sequence", feed: func(r *tpRaw) {
			r.handshake()
			r.send(r.request(2, 1, "skipped one"))
		}},
		"replayed request": {reason: "sequence", feed: func(r *tpRaw) {
			r.handshake()
			req := r.request(1, 1, "once")
			r.send(req)
			if f, _, err := r.codec.ReadFrame(r.br, nil); err != nil || f.Type != frameResponse {
				r.t.Fatalf("the original request was not answered: %v", err)
			}
			r.send(req)
		}},
		"frame from another session": {reason: "sequence", feed: func(r *tpRaw) {
			r.handshake()
			r.session[0] ^= 1
			r.send(r.request(1, 1, "elsewhere"))
		}},
		"response on a served connection": {reason: "protocol", feed: func(r *tpRaw) {
			r.handshake()
			r.send(r.encode(r.codec, frameResponse, sessionNonce(r.session, 1), make([]byte, responseHdrLen)))
		}},
		"short request": {reason: "protocol", feed: func(r *tpRaw) {
			r.handshake()
			r.send(r.encode(r.codec, frameRequest, sessionNonce(r.session, 1), []byte{0, 0, 1}))
		}},
		"request id 0": {reason: "protocol", feed: func(r *tpRaw) {
			r.handshake()
			r.send(r.request(1, 0, "zero"))
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

// tpRawServer accepts one connection, reads the hello, and lets serve answer it.
func tpRawServer(t *testing.T, serve func(nc net.Conn, c *Codec, h hello, nonce [16]byte)) string {
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
		c, _ := NewCodec(CodecConfig{Key: testKey})
		f, _, err := c.ReadFrame(nc, nil)
		if err != nil {
			return
		}
		h, err := decodeHello(f.Payload)
		if err != nil {
			return
		}
		serve(nc, c, h, f.Nonce)
		// Hold the connection until the client is done with it.
		_, _ = io.Copy(io.Discard, nc)
	}()
	return ln.Addr().String()
}

func tpWrite(nc net.Conn, c *Codec, typ FrameType, nonce [16]byte, payload []byte) {
	b, err := c.AppendFrame(nil, &Frame{Type: typ, Time: time.Now(), Nonce: nonce, Payload: payload})
	if err == nil {
		_, _ = nc.Write(b)
	}
}

func TestTransportClientRejectsBadServer(t *testing.T) {
	serverSession := [sessionLen]byte{1, 2, 3, 4, 5, 6, 7, 8}
	ack := func(nc net.Conn, c *Codec, h hello, mod func(*helloAck)) [sessionLen]byte {
		a := helloAck{serverID: h.serverID, clientSession: h.session, serverSession: serverSession}
		if mod != nil {
			mod(&a)
		}
		s := xorSessions(h.session, serverSession)
		tpWrite(nc, c, frameHelloAck, sessionNonce(s, 0), appendHelloAck(nil, a))
		return s
	}
	response := func(id uint64, body string) []byte {
		return append(append(binary.BigEndian.AppendUint64(nil, id), statusOK), body...)
	}
	tests := map[string]struct {
		serve   func(nc net.Conn, c *Codec, h hello, nonce [16]byte)
		wantErr error
		reason  string // counted by the client; "" for none
	}{
		"ack echoes another session": {
			serve: func(nc net.Conn, c *Codec, h hello, _ [16]byte) {
				ack(nc, c, h, func(a *helloAck) { a.clientSession[0] ^= 1 })
			},
			wantErr: ErrUnreachable, reason: "handshake",
		},
		"hello sent back as the ack": {
			serve: func(nc net.Conn, c *Codec, h hello, nonce [16]byte) {
				tpWrite(nc, c, frameHello, nonce, appendHello(nil, h))
			},
			wantErr: ErrUnreachable, reason: "handshake",
		},
		"ack from another peer": {
			serve: func(nc net.Conn, c *Codec, h hello, _ [16]byte) {
				ack(nc, c, h, func(a *helloAck) { a.serverID = "someone-else" })
			},
			wantErr: ErrPeerMismatch,
		},
		"ack of another version": {
			serve: func(nc net.Conn, c *Codec, h hello, _ [16]byte) {
				s := xorSessions(h.session, serverSession)
				p := appendHelloAck(nil, helloAck{serverID: h.serverID, clientSession: h.session, serverSession: serverSession})
				p[0] = handshakeVersion + 1
				tpWrite(nc, c, frameHelloAck, sessionNonce(s, 0), p)
			},
			wantErr: ErrUnreachable, reason: "bad-version",
		},
		"ack of version 1 (error responses without a code)": {
			serve: func(nc net.Conn, c *Codec, h hello, _ [16]byte) {
				s := xorSessions(h.session, serverSession)
				p := appendHelloAck(nil, helloAck{serverID: h.serverID, clientSession: h.session, serverSession: serverSession})
				p[0] = 1
				tpWrite(nc, c, frameHelloAck, sessionNonce(s, 0), p)
			},
			wantErr: ErrUnreachable, reason: "bad-version",
		},
		"closed without an ack": {
			serve:   func(nc net.Conn, _ *Codec, _ hello, _ [16]byte) { nc.Close() },
			wantErr: ErrUnreachable,
		},
		"response out of sequence": {
			serve: func(nc net.Conn, c *Codec, h hello, _ [16]byte) {
				s := ack(nc, c, h, nil)
				tpWrite(nc, c, frameResponse, sessionNonce(s, 2), response(1, "x"))
			},
			wantErr: ErrUnreachable, reason: "sequence",
		},
		"response to a request never sent": {
			serve: func(nc net.Conn, c *Codec, h hello, _ [16]byte) {
				s := ack(nc, c, h, nil)
				tpWrite(nc, c, frameResponse, sessionNonce(s, 1), response(99, "x"))
			},
			wantErr: ErrUnreachable, reason: "protocol",
		},
		"request on a dialled connection": {
			serve: func(nc net.Conn, c *Codec, h hello, _ [16]byte) {
				s := ack(nc, c, h, nil)
				tpWrite(nc, c, frameRequest, sessionNonce(s, 1), response(1, "x"))
			},
			wantErr: ErrUnreachable, reason: "protocol",
		},
		"bad status": {
			serve: func(nc net.Conn, c *Codec, h hello, _ [16]byte) {
				s := ack(nc, c, h, nil)
				p := response(1, "x")
				p[8] = 7
				tpWrite(nc, c, frameResponse, sessionNonce(s, 1), p)
			},
			wantErr: ErrUnreachable, reason: "protocol",
		},
		"unknown error code": {
			serve: func(nc net.Conn, c *Codec, h hello, _ [16]byte) {
				s := ack(nc, c, h, nil)
				p := append(binary.BigEndian.AppendUint64(nil, 1), statusError, numCodes)
				tpWrite(nc, c, frameResponse, sessionNonce(s, 1), append(p, "from a newer version"...))
			},
			wantErr: ErrUnreachable, reason: "protocol",
		},
		"error response without its code": {
			serve: func(nc net.Conn, c *Codec, h hello, _ [16]byte) {
				s := ack(nc, c, h, nil)
				tpWrite(nc, c, frameResponse, sessionNonce(s, 1), append(binary.BigEndian.AppendUint64(nil, 1), statusError))
			},
			wantErr: ErrUnreachable, reason: "protocol",
		},
		"good server": {
			serve: func(nc net.Conn, c *Codec, h hello, _ [16]byte) {
				s := ack(nc, c, h, nil)
				if _, _, err := c.ReadFrame(nc, nil); err != nil { // the request
					return
				}
				tpWrite(nc, c, frameResponse, sessionNonce(s, 1), response(1, "fine"))
			},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			addr := tpRawServer(t, tc.serve)
			a := tpNew(t, "a", nil, nil)
			got, err := a.Request(tpCtx(t), "b", addr, []byte("hi"))
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
				if _, err := a.Request(tpCtx(t), "b", addr, nil); !errors.Is(err, ErrUnreachable) || a.dialCount() != 1 {
					t.Fatalf("after a refused frame: err = %v, %d dials; want a fast ErrUnreachable", err, a.dialCount())
				}
			}
		})
	}
}
