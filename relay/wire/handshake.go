package wire

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"time"
	"unicode/utf8"

	"github.com/flynn/noise"

	"github.com/paf-mesh/paf-mesh/internal/keys"
	"github.com/paf-mesh/paf-mesh/internal/rawio"
)

// The handshake is Noise_XXpsk0_25519_ChaChaPoly_BLAKE2s (noiseprotocol.org, revision 34),
// from github.com/flynn/noise; nothing in it is made here. Each handshake message travels as
// u32 length || Noise message, and the payloads are:
//
//	1, client -> server (psk, e):         u8 version, u8 len + the server id the client expects
//	2, server -> client (e, ee, s, es):   u8 version, u8 len + server id, identity certificate
//	3, client -> server (s, se):          u8 len + client id, identity certificate
//
// What each side gets from it:
//   - The pre-shared key (the mesh's relay key) is mixed in before the first message, whose
//     payload is therefore encrypted and authenticated under it: a connection without the
//     mesh secret is refused after reading at most maxPendingFrame bytes, and learns nothing
//     (not even which peer it reached).
//   - Each side's static key is an X25519 key of its identity (keys.Identity), proved by the
//     handshake itself; the certificate (the Ed25519 identity key and its signature of that
//     static key) says whose it is. A peer id must start with that identity's fingerprint
//     (keys.PeerIDFingerprint): nobody can answer or dial as another identity's peer.
//   - Split gives one key per direction. Every later frame is sealed with its direction's key
//     and a counter nonce (frame.go), so frames cannot be replayed, reordered or reflected.
//   - Fresh ephemeral keys on both sides make every session new: a recorded first message
//     replayed later gets an answer under a new ephemeral key, and without the client's static
//     private key the replayer cannot send the third message nor read anything. No clock and
//     no replay cache are needed.
//
// The handshake version covers every payload layout of the connection (requests and
// responses too). A peer speaking another version is refused with reason "bad-version".
const (
	handshakeVersion = 3
	// maxIDLen bounds a peer id so that it fits the u8 length prefix.
	maxIDLen = 255
	// dhLen and aeadTagLen are Noise's sizes for 25519 and ChaChaPoly.
	dhLen      = 32
	aeadTagLen = 16
	// The largest handshake messages: keys as Noise sends them, then the encrypted payload.
	maxMsg1Len = dhLen + (1 + 1 + maxIDLen) + aeadTagLen
	maxMsg2Len = dhLen + (dhLen + aeadTagLen) + (1 + 1 + maxIDLen + keys.CertificateLen) + aeadTagLen
	maxMsg3Len = (dhLen + aeadTagLen) + (1 + maxIDLen + keys.CertificateLen) + aeadTagLen
	// The smallest: one-byte ids.
	minMsg1Len = dhLen + (1 + 1 + 1) + aeadTagLen
	minMsg2Len = dhLen + (dhLen + aeadTagLen) + (1 + 1 + 1 + keys.CertificateLen) + aeadTagLen
	minMsg3Len = (dhLen + aeadTagLen) + (1 + 1 + keys.CertificateLen) + aeadTagLen

	requestHdrLen  = 8
	responseHdrLen = 8 + 1
	errorHdrLen    = responseHdrLen + 1 // an error response's header: its Code follows the status

	statusOK    = 0
	statusError = 1
)

// prologue binds the handshake to this protocol: a handshake for anything else fails.
var prologue = []byte("paf-mesh relay")

// Frame types used by the transport after the handshake (the codec treats them as opaque).
const (
	frameRequest  FrameType = 3 // payload: u64 request id, then the body
	frameResponse FrameType = 4 // payload: u64 request id, u8 status (0 ok, 1 error), [u8 code when status 1], then body (error text when status 1)
)

var cipherSuite = noise.NewCipherSuite(noise.DH25519, noise.CipherChaChaPoly, noise.HashBLAKE2s)

// Payload layouts of requests and responses, all integers big-endian, no trailing bytes:
//
//	request:  u64 request id (never 0), body
//	response: u64 request id (never 0), u8 status 0 (ok), body
//	       or u64 request id (never 0), u8 status 1 (error), u8 Code, error text

// Sentinel errors of the payload decoders. Only the transport acts on them (to choose the
// rejection reason); they never reach a caller of Request unwrapped.
var (
	errBadPayload       = errors.New("relay: malformed payload")
	errHandshakeVersion = errors.New("relay: unknown handshake version")
	errIdentity         = errors.New("relay: peer identity does not match")
)

// session is the outcome of a handshake: the other peer and the two cipher states.
type session struct {
	peerID  string
	peerKey ed25519.PublicKey // the other side's identity key
	send    *noise.CipherState
	recv    *noise.CipherState
}

func newHandshake(t *Transport, initiator bool) (*noise.HandshakeState, error) {
	return noise.NewHandshakeState(noise.Config{
		CipherSuite:           cipherSuite,
		Random:                rand.Reader,
		Pattern:               noise.HandshakeXX,
		Initiator:             initiator,
		Prologue:              prologue,
		PresharedKey:          t.cfg.Key,
		PresharedKeyPlacement: 0,
		StaticKeypair:         noise.DHKey{Private: t.cfg.Identity.StaticPrivate(), Public: t.cfg.Identity.StaticPublic()},
	})
}

// hello1 is the first message's payload.
type hello1 struct {
	serverID string // the id the client expects to reach
}

func appendHello1(dst []byte, h hello1) []byte {
	dst = append(dst, handshakeVersion)
	return appendID(dst, h.serverID)
}

// decodeHello1 parses the first message's payload. Errors wrap errHandshakeVersion or
// errBadPayload.
func decodeHello1(b []byte) (hello1, error) {
	var h hello1
	if err := checkVersion(b); err != nil {
		return h, err
	}
	off := 1
	var err error
	if h.serverID, err = readID(b, &off); err != nil {
		return h, fmt.Errorf("server id: %w", err)
	}
	return h, checkEnd(b, off)
}

// hello2 is the second message's payload (server), and hello3 the third's (client).
type hello2 struct {
	serverID string
	cert     []byte
}

func appendHello2(dst []byte, h hello2) []byte {
	dst = append(dst, handshakeVersion)
	dst = appendID(dst, h.serverID)
	return append(dst, h.cert...)
}

func decodeHello2(b []byte) (hello2, error) {
	var h hello2
	if err := checkVersion(b); err != nil {
		return h, err
	}
	off := 1
	var err error
	if h.serverID, err = readID(b, &off); err != nil {
		return h, fmt.Errorf("server id: %w", err)
	}
	if h.cert, err = readCert(b, &off); err != nil {
		return h, err
	}
	return h, checkEnd(b, off)
}

type hello3 struct {
	clientID string
	cert     []byte
}

func appendHello3(dst []byte, h hello3) []byte {
	dst = appendID(dst, h.clientID)
	return append(dst, h.cert...)
}

func decodeHello3(b []byte) (hello3, error) {
	var h hello3
	off := 0
	var err error
	if h.clientID, err = readID(b, &off); err != nil {
		return h, fmt.Errorf("client id: %w", err)
	}
	if h.cert, err = readCert(b, &off); err != nil {
		return h, err
	}
	return h, checkEnd(b, off)
}

func readCert(b []byte, off *int) ([]byte, error) {
	if len(b)-*off < keys.CertificateLen {
		return nil, fmt.Errorf("%w: identity certificate truncated at offset %d", errBadPayload, *off)
	}
	c := b[*off : *off+keys.CertificateLen]
	*off += keys.CertificateLen
	return c, nil
}

// validID reports whether id can travel in a handshake: 1..maxIDLen bytes of UTF-8.
func validID(id string) error {
	if id == "" || len(id) > maxIDLen || !utf8.ValidString(id) {
		return fmt.Errorf("relay: peer id %q must be 1-%d bytes of UTF-8", id, maxIDLen)
	}
	return nil
}

// checkIdentity checks that the handshake's static key belongs to cert's identity and that id
// is bound to that identity. Errors wrap errIdentity.
func checkIdentity(id string, cert, static []byte) (ed25519.PublicKey, error) {
	pub, err := keys.VerifyCertificate(cert, static)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errIdentity, err)
	}
	fp, ok := keys.PeerIDFingerprint(id)
	if !ok {
		return nil, fmt.Errorf("%w: peer id %q is not bound to an identity", errIdentity, id)
	}
	if want := keys.Fingerprint(pub); fp != want {
		return nil, fmt.Errorf("%w: peer id %q belongs to identity %s, but the peer proved identity %s", errIdentity, id, fp, want)
	}
	return pub, nil
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

// writeRecord writes one length-prefixed handshake message directly (before the connection's
// writer goroutine exists).
func writeRecord(nc net.Conn, msg []byte) error {
	b := make([]byte, lenPrefixLen, lenPrefixLen+len(msg))
	binary.BigEndian.PutUint32(b, uint32(len(msg)))
	_, err := nc.Write(append(b, msg...))
	return err
}

// clientHandshake runs the client side on nc. It returns the established connection (not yet
// registered or running). Errors wrap ErrUnreachable, ErrPeerMismatch or ErrClosed; a refused
// answer is also counted. The handshake is bounded by HandshakeTimeout and aborted by Close.
func (t *Transport) clientHandshake(nc net.Conn, id, addr string) (*conn, error) {
	nc = rawio.WrapConn(nc) // raw reads and writes: see rawio
	stop := context.AfterFunc(t.ctx, func() { nc.Close() })
	defer stop()
	_ = nc.SetDeadline(time.Now().Add(t.cfg.HandshakeTimeout))

	fail := func(format string, args ...any) error {
		if t.ctx.Err() != nil {
			return ErrClosed
		}
		return fmt.Errorf("relay: handshake with %s at %s: %s: %w", id, addr, fmt.Sprintf(format, args...), ErrUnreachable)
	}
	refuse := func(reason rejectReason, err error) error {
		t.reject(reason, nc.RemoteAddr(), id, err)
		return fail("%v", err)
	}
	hs, err := newHandshake(t, true)
	if err != nil {
		return nil, fail("%v", err)
	}
	msg1, _, _, err := hs.WriteMessage(nil, appendHello1(nil, hello1{serverID: id}))
	if err != nil {
		return nil, fail("%v", err)
	}
	if err := writeRecord(nc, msg1); err != nil {
		return nil, fail("send hello: %v", err)
	}
	br := bufio.NewReaderSize(nc, readBufSize)
	// Bounded by the largest second message until it authenticates: whoever answers at addr
	// may not be a peer of this mesh.
	rec, _, err := readSized(br, make([]byte, 0, maxAckFrame), minMsg2Len, maxMsg2Len)
	if err != nil {
		if reason, ok := codecReason(err); ok {
			return nil, refuse(reason, err)
		}
		if errors.Is(err, io.EOF) {
			return nil, fail("connection closed by the peer before its answer (a different mesh secret? see the peer's log)")
		}
		return nil, fail("read answer: %v", err)
	}
	p2, _, _, err := hs.ReadMessage(nil, rec)
	if err != nil {
		return nil, refuse(reasonBadMAC, fmt.Errorf("relay: the answer does not authenticate: %v", err))
	}
	h2, err := decodeHello2(p2)
	if err != nil {
		reason := reasonHandshake
		if errors.Is(err, errHandshakeVersion) {
			reason = reasonBadVersion
		}
		return nil, refuse(reason, err)
	}
	peerKey, err := checkIdentity(h2.serverID, h2.cert, hs.PeerStatic())
	if err != nil {
		return nil, refuse(reasonIdentity, err)
	}
	if h2.serverID != id {
		return nil, fmt.Errorf("relay: dial %s at %s: the peer there is %s: %w", id, addr, h2.serverID, ErrPeerMismatch)
	}
	msg3, send, recv, err := hs.WriteMessage(nil, appendHello3(nil, hello3{clientID: t.cfg.ID, cert: t.cfg.Identity.Certificate()}))
	if err != nil {
		return nil, fail("%v", err)
	}
	if err := writeRecord(nc, msg3); err != nil {
		return nil, fail("send identity: %v", err)
	}
	t.stats.handshakes.Add(1)
	_ = nc.SetDeadline(time.Time{})
	return newConn(t, nc, br, nil, session{peerID: id, peerKey: peerKey, send: send, recv: recv}, false), nil
}

// serverHandshake runs the server side on an accepted connection, calling authenticated once
// the first message has proved the mesh key. A refused handshake is counted and returned as a
// *rejection; a clean close before any byte returns io.EOF.
//
// Until the first message authenticates, the connection is read for at most maxPendingFrame
// bytes (allocated once here: a length prefix announcing more is refused before anything else
// is read), within HandshakeTimeout from the accept (a deadline for the whole handshake, not
// per read: a hello sent a byte at a time does not extend it). Handshake messages are read
// from nc without buffering, so nothing past them is read before they authenticate; the
// connection's buffered reader is made afterwards.
func (t *Transport) serverHandshake(nc net.Conn, authenticated func()) (*conn, error) {
	nc = rawio.WrapConn(nc) // raw reads and writes: see rawio
	_ = nc.SetDeadline(time.Now().Add(t.cfg.HandshakeTimeout))
	readMsg := func(minLen, maxLen int, what string) ([]byte, error) {
		rec, _, err := readSized(nc, make([]byte, 0, lenPrefixLen+maxLen), minLen, maxLen)
		if err == nil {
			return rec, nil
		}
		if reason, ok := codecReason(err); ok {
			return nil, &rejection{reason: reason, err: fmt.Errorf("%s: %w", what, err)}
		}
		if errors.Is(err, io.EOF) {
			return nil, io.EOF
		}
		if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
			return nil, &rejection{reason: reasonHandshake, err: fmt.Errorf("relay: no %s within %v", what, t.cfg.HandshakeTimeout)}
		}
		return nil, err
	}
	hs, err := newHandshake(t, false)
	if err != nil {
		return nil, err
	}
	rec, err := readMsg(minMsg1Len, maxMsg1Len, "hello")
	if err != nil {
		return nil, err
	}
	p1, _, _, err := hs.ReadMessage(nil, rec)
	if err != nil {
		return nil, &rejection{reason: reasonBadMAC, err: fmt.Errorf("relay: hello does not authenticate (a different mesh secret?): %v", err)}
	}
	authenticated()
	h1, err := decodeHello1(p1)
	if err != nil {
		reason := reasonHandshake
		if errors.Is(err, errHandshakeVersion) {
			reason = reasonBadVersion
		}
		return nil, &rejection{reason: reason, err: fmt.Errorf("hello: %w", err)}
	}
	msg2, _, _, err := hs.WriteMessage(nil, appendHello2(nil, hello2{serverID: t.cfg.ID, cert: t.cfg.Identity.Certificate()}))
	if err != nil {
		return nil, err
	}
	// The answer goes even to a client that expected another peer, so that it can tell
	// ErrPeerMismatch (a stale address) from an unreachable peer.
	if err := writeRecord(nc, msg2); err != nil {
		return nil, fmt.Errorf("relay: answer hello from %s: %w", nc.RemoteAddr(), err)
	}
	if h1.serverID != t.cfg.ID {
		return nil, fmt.Errorf("relay: a peer at %s dialled %s, this peer is %s: %w",
			nc.RemoteAddr(), h1.serverID, t.cfg.ID, ErrPeerMismatch)
	}
	if rec, err = readMsg(minMsg3Len, maxMsg3Len, "identity"); err != nil {
		return nil, err
	}
	p3, recv, send, err := hs.ReadMessage(nil, rec)
	if err != nil {
		return nil, &rejection{reason: reasonBadMAC, err: fmt.Errorf("relay: identity message does not authenticate: %v", err)}
	}
	h3, err := decodeHello3(p3)
	if err != nil {
		return nil, &rejection{reason: reasonHandshake, err: fmt.Errorf("identity: %w", err)}
	}
	peerKey, err := checkIdentity(h3.clientID, h3.cert, hs.PeerStatic())
	if err != nil {
		return nil, &rejection{reason: reasonIdentity, err: err}
	}
	t.stats.handshakes.Add(1)
	_ = nc.SetDeadline(time.Time{})
	return newConn(t, nc, bufio.NewReaderSize(nc, readBufSize), nil, session{peerID: h3.clientID, peerKey: peerKey, send: send, recv: recv}, true), nil
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
