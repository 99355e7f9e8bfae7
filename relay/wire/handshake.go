package wire

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"time"
	"unicode/utf8"
)

// Frame types used by the transport (the codec treats them as opaque).
const (
	frameHello    FrameType = 1 // client -> server: opens a connection
	frameHelloAck FrameType = 2 // server -> client
	frameRequest  FrameType = 3 // payload: u64 request id, then the body
	frameResponse FrameType = 4 // payload: u64 request id, u8 status (0 ok, 1 error), [u8 code when status 1], then body (error text when status 1)
)

// Payload layouts, all integers big-endian, no trailing bytes allowed:
//
//	hello:    u8 version, u8 len + client id, u8 len + expected server id, 8B client session
//	helloAck: u8 version, u8 len + server id, 8B client session (echoed), 8B server session
//	request:  u64 request id (never 0), body
//	response: u64 request id (never 0), u8 status 0 (ok), body
//	       or u64 request id (never 0), u8 status 1 (error), u8 Code, error text
//
// The handshake version covers every payload layout of the connection, not just the hello
// and ack: version 2 added the error response's code byte. A peer still speaking version 1
// would read the code as the text's first byte, so it is refused at the hello ("bad-version")
// rather than misunderstood later; and a response with a status or Code this version does not
// define is a protocol error that closes the connection.
//
// The connection's session id, which prefixes every later nonce, is the client session XOR the
// server session. The client half makes the echo in the ack prove freshness to the client; the
// server half makes a session fresh for the server even when a hello is replayed after the
// server restarted (its ReplayGuard is in memory only): recorded frames of an old session then
// fail the sequence check of the new one.
const (
	// handshakeVersion is the version of the hello/ack payloads. A peer speaking another
	// version is refused with reason "bad-version".
	handshakeVersion = 2
	// maxIDLen bounds a peer id so that it fits the u8 length prefix.
	maxIDLen   = 255
	sessionLen = 8
	// maxHelloLen is the largest hello payload; MaxPayload must hold it.
	maxHelloLen = 1 + 1 + maxIDLen + 1 + maxIDLen + sessionLen
	// maxHelloAckLen is the largest hello-ack payload.
	maxHelloAckLen = 1 + 1 + maxIDLen + sessionLen + sessionLen
	requestHdrLen  = 8
	responseHdrLen = 8 + 1
	errorHdrLen    = responseHdrLen + 1 // an error response's header: its Code follows the status

	statusOK    = 0
	statusError = 1
)

// Sentinel errors of the payload decoders. Only the transport acts on them (to choose the
// rejection reason); they never reach a caller of Request unwrapped.
var (
	errBadPayload       = errors.New("relay: malformed payload")
	errHandshakeVersion = errors.New("relay: unknown handshake version")
)

// hello opens a connection.
type hello struct {
	clientID string
	serverID string // the id the client expects to reach
	session  [sessionLen]byte
}

// helloAck answers a hello.
type helloAck struct {
	serverID      string
	clientSession [sessionLen]byte // echoed from the hello
	serverSession [sessionLen]byte
}

func appendID(dst []byte, id string) []byte {
	dst = append(dst, byte(len(id)))
	return append(dst, id...)
}

// readID reads a u8-length-prefixed peer id from b at *off.
func readID(b []byte, off *int) (string, error) {
	if *off >= len(b) {
		return "", fmt.Errorf("%w: id length missing at offset %d", errBadPayload, *off)
	}
	n := int(b[*off])
	*off++
	if n == 0 || len(b)-*off < n {
		return "", fmt.Errorf("%w: id of %d bytes at offset %d, %d left", errBadPayload, n, *off, len(b)-*off)
	}
	id := b[*off : *off+n]
	*off += n
	if !utf8.Valid(id) {
		return "", fmt.Errorf("%w: id is not UTF-8", errBadPayload)
	}
	return string(id), nil
}

func readSession(b []byte, off *int) ([sessionLen]byte, error) {
	var s [sessionLen]byte
	if len(b)-*off < sessionLen {
		return s, fmt.Errorf("%w: session id truncated at offset %d", errBadPayload, *off)
	}
	copy(s[:], b[*off:])
	*off += sessionLen
	return s, nil
}

func checkVersion(b []byte) error {
	if len(b) == 0 {
		return fmt.Errorf("%w: empty", errBadPayload)
	}
	if b[0] != handshakeVersion {
		return fmt.Errorf("%w: %d (this peer speaks %d; upgrade the older peer)", errHandshakeVersion, b[0], handshakeVersion)
	}
	return nil
}

func checkEnd(b []byte, off int) error {
	if off != len(b) {
		return fmt.Errorf("%w: %d trailing bytes", errBadPayload, len(b)-off)
	}
	return nil
}

// validID reports whether id can travel in a hello: 1..maxIDLen bytes of UTF-8.
func validID(id string) error {
	if id == "" || len(id) > maxIDLen || !utf8.ValidString(id) {
		return fmt.Errorf("relay: peer id %q must be 1-%d bytes of UTF-8", id, maxIDLen)
	}
	return nil
}

func appendHello(dst []byte, h hello) []byte {
	dst = append(dst, handshakeVersion)
	dst = appendID(dst, h.clientID)
	dst = appendID(dst, h.serverID)
	return append(dst, h.session[:]...)
}

// decodeHello parses a hello payload. Errors wrap errHandshakeVersion or errBadPayload.
func decodeHello(b []byte) (hello, error) {
	var h hello
	if err := checkVersion(b); err != nil {
		return h, err
	}
	off := 1
	var err error
	if h.clientID, err = readID(b, &off); err != nil {
		return h, fmt.Errorf("client id: %w", err)
	}
	if h.serverID, err = readID(b, &off); err != nil {
		return h, fmt.Errorf("server id: %w", err)
	}
	if h.session, err = readSession(b, &off); err != nil {
		return h, err
	}
	return h, checkEnd(b, off)
}

func appendHelloAck(dst []byte, a helloAck) []byte {
	dst = append(dst, handshakeVersion)
	dst = appendID(dst, a.serverID)
	dst = append(dst, a.clientSession[:]...)
	return append(dst, a.serverSession[:]...)
}

// decodeHelloAck parses a hello-ack payload. Errors wrap errHandshakeVersion or errBadPayload.
func decodeHelloAck(b []byte) (helloAck, error) {
	var a helloAck
	if err := checkVersion(b); err != nil {
		return a, err
	}
	off := 1
	var err error
	if a.serverID, err = readID(b, &off); err != nil {
		return a, fmt.Errorf("server id: %w", err)
	}
	if a.clientSession, err = readSession(b, &off); err != nil {
		return a, err
	}
	if a.serverSession, err = readSession(b, &off); err != nil {
		return a, err
	}
	return a, checkEnd(b, off)
}

// decodeRequest splits a request payload. body aliases b.
func decodeRequest(b []byte) (id uint64, body []byte, err error) {
	if len(b) < requestHdrLen {
		return 0, nil, fmt.Errorf("%w: request of %d bytes, header is %d", errBadPayload, len(b), requestHdrLen)
	}
	if id = binary.BigEndian.Uint64(b); id == 0 {
		return 0, nil, fmt.Errorf("%w: request id 0", errBadPayload)
	}
	return id, b[requestHdrLen:], nil
}

// decodeResponse splits a response payload. body aliases b. code is meaningful only when
// status is statusError; a Code this version does not define is refused.
func decodeResponse(b []byte) (id uint64, status byte, code Code, body []byte, err error) {
	if len(b) < responseHdrLen {
		return 0, 0, 0, nil, fmt.Errorf("%w: response of %d bytes, header is %d", errBadPayload, len(b), responseHdrLen)
	}
	if id = binary.BigEndian.Uint64(b); id == 0 {
		return 0, 0, 0, nil, fmt.Errorf("%w: response id 0", errBadPayload)
	}
	switch status = b[8]; status {
	case statusOK:
		return id, status, 0, b[responseHdrLen:], nil
	case statusError:
		if len(b) < errorHdrLen {
			return 0, 0, 0, nil, fmt.Errorf("%w: error response of %d bytes, header is %d", errBadPayload, len(b), errorHdrLen)
		}
		if code = Code(b[responseHdrLen]); !code.Known() {
			return 0, 0, 0, nil, fmt.Errorf("%w: unknown error code %d", errBadPayload, b[responseHdrLen])
		}
		return id, status, code, b[errorHdrLen:], nil
	}
	return 0, 0, 0, nil, fmt.Errorf("%w: response status %d", errBadPayload, status)
}

// sessionNonce is the nonce of frame number seq of a session: session id || u64 seq.
func sessionNonce(session [sessionLen]byte, seq uint64) [16]byte {
	var n [16]byte
	copy(n[:sessionLen], session[:])
	binary.BigEndian.PutUint64(n[sessionLen:], seq)
	return n
}

func xorSessions(a, b [sessionLen]byte) [sessionLen]byte {
	for i := range a {
		a[i] ^= b[i]
	}
	return a
}

func randomSession() [sessionLen]byte {
	var s [sessionLen]byte
	n := NewNonce() // crypto/rand
	copy(s[:], n[:])
	return s
}

// writeFrame encodes and writes one frame directly, for the handshake (before the connection's
// writer goroutine exists).
func (t *Transport) writeFrame(nc net.Conn, typ FrameType, nonce [16]byte, payload []byte) error {
	b, err := t.codec.AppendFrame(nil, &Frame{Type: typ, Time: t.now(), Nonce: nonce, Payload: payload})
	if err != nil {
		return err
	}
	if _, err := nc.Write(b); err != nil {
		return err
	}
	t.stats.framesOut.Add(1)
	return nil
}

// clientHandshake sends a hello on nc and checks the ack. It returns the established
// connection (not yet registered or running). Errors wrap ErrUnreachable, ErrPeerMismatch or
// ErrClosed; a rejected ack is also counted. The handshake is bounded by HandshakeTimeout and
// aborted by Close.
func (t *Transport) clientHandshake(nc net.Conn, id, addr string) (*conn, error) {
	stop := context.AfterFunc(t.ctx, func() { nc.Close() })
	defer stop()
	_ = nc.SetDeadline(time.Now().Add(t.cfg.HandshakeTimeout))

	fail := func(format string, args ...any) error {
		if t.ctx.Err() != nil {
			return ErrClosed
		}
		return fmt.Errorf("relay: handshake with %s at %s: %s: %w", id, addr, fmt.Sprintf(format, args...), ErrUnreachable)
	}
	h := hello{clientID: t.cfg.ID, serverID: id, session: randomSession()}
	if err := t.writeFrame(nc, frameHello, NewNonce(), appendHello(nil, h)); err != nil {
		return nil, fail("send hello: %v", err)
	}
	br := bufio.NewReaderSize(nc, readBufSize)
	// Bounded by the largest ack until the ack authenticates: whoever answers at addr may not
	// be a peer of this mesh.
	f, buf, err := t.codec.readFrame(br, make([]byte, 0, maxAckFrame), maxHelloAckLen)
	if err != nil {
		if reason, ok := codecReason(err); ok {
			t.reject(reason, nc.RemoteAddr(), id, err)
		}
		if errors.Is(err, io.EOF) {
			return nil, fail("connection closed by the peer before its answer (a different mesh secret? see the peer's log)")
		}
		return nil, fail("read answer: %v", err)
	}
	t.stats.framesIn.Add(1)
	if f.Type != frameHelloAck {
		err := fmt.Errorf("relay: expected a hello-ack, got frame type %d", f.Type)
		t.reject(reasonHandshake, nc.RemoteAddr(), id, err)
		return nil, fail("%v", err)
	}
	ack, err := decodeHelloAck(f.Payload)
	if err != nil {
		reason := reasonHandshake
		if errors.Is(err, errHandshakeVersion) {
			reason = reasonBadVersion
		}
		t.reject(reason, nc.RemoteAddr(), id, err)
		return nil, fail("hello-ack: %v", err)
	}
	session := xorSessions(h.session, ack.serverSession)
	if ack.clientSession != h.session || f.Nonce != sessionNonce(session, 0) {
		// Not an answer to this hello: a replayed or forged ack.
		err := errors.New("relay: hello-ack does not answer this hello")
		t.reject(reasonHandshake, nc.RemoteAddr(), id, err)
		return nil, fail("%v", err)
	}
	if ack.serverID != id {
		return nil, fmt.Errorf("relay: dial %s at %s: the peer there is %s: %w", id, addr, ack.serverID, ErrPeerMismatch)
	}
	_ = nc.SetDeadline(time.Time{})
	return newConn(t, nc, br, buf, id, session, false), nil
}

// serverHandshake reads the hello of an accepted connection and answers it, calling
// authenticated once the hello has passed the codec (MAC, time) and the replay guard. A
// rejected hello is counted and returned as a *rejection; a clean close before any byte
// returns io.EOF.
//
// Until the hello authenticates, the connection is read for at most the largest hello
// (maxPendingFrame bytes, allocated once here: a length prefix announcing more is refused
// before anything else is read), within HandshakeTimeout from the accept (a deadline for the
// whole hello, not per read: a hello sent a byte at a time does not extend it). The hello is
// read from nc without buffering, so nothing past it is read before it authenticates; the
// connection's buffered reader is made afterwards.
func (t *Transport) serverHandshake(nc net.Conn, authenticated func()) (*conn, error) {
	_ = nc.SetDeadline(time.Now().Add(t.cfg.HandshakeTimeout))
	f, buf, err := t.codec.readFrame(nc, make([]byte, 0, maxPendingFrame), maxHelloLen)
	if err != nil {
		if reason, ok := codecReason(err); ok {
			return nil, &rejection{reason: reason, err: err}
		}
		if errors.Is(err, io.EOF) {
			return nil, io.EOF
		}
		if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
			return nil, &rejection{reason: reasonHandshake, err: fmt.Errorf("relay: no hello within %v", t.cfg.HandshakeTimeout)}
		}
		return nil, err
	}
	t.stats.framesIn.Add(1)
	if f.Type != frameHello {
		return nil, &rejection{reason: reasonHandshake, err: fmt.Errorf("relay: expected a hello, got frame type %d", f.Type)}
	}
	// Only the hello has a random nonce: the guard is what stops a recorded one from opening a
	// second session within the window.
	if err := t.replay.Check(f.Nonce, f.Time); err != nil {
		return nil, &rejection{reason: reasonReplay, err: err}
	}
	authenticated()
	h, err := decodeHello(f.Payload)
	if err != nil {
		reason := reasonHandshake
		if errors.Is(err, errHandshakeVersion) {
			reason = reasonBadVersion
		}
		return nil, &rejection{reason: reason, err: fmt.Errorf("hello: %w", err)}
	}
	ack := helloAck{serverID: t.cfg.ID, clientSession: h.session, serverSession: randomSession()}
	session := xorSessions(h.session, ack.serverSession)
	// The ack is sent even to a client that expected another peer, so that it can tell
	// ErrPeerMismatch (a stale address) from an unreachable peer.
	if err := t.writeFrame(nc, frameHelloAck, sessionNonce(session, 0), appendHelloAck(nil, ack)); err != nil {
		return nil, fmt.Errorf("relay: send hello-ack to %s: %w", h.clientID, err)
	}
	if h.serverID != t.cfg.ID {
		return nil, fmt.Errorf("relay: %s at %s dialled %s, this peer is %s: %w",
			h.clientID, nc.RemoteAddr(), h.serverID, t.cfg.ID, ErrPeerMismatch)
	}
	_ = nc.SetDeadline(time.Time{})
	return newConn(t, nc, bufio.NewReaderSize(nc, readBufSize), buf, h.clientID, session, true), nil
}
