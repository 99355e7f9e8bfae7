package wire

import (
	"log/slog"
	"math"
	"time"
)

// The configuration of this package and every default, in one place: Config for a
// Transport, CodecConfig for a Codec (a Transport makes its own from Config), and
// DefaultReplayCapacity for a ReplayGuard.

// Transport defaults.
const (
	// DefaultDialTimeout bounds a TCP connect. Peers are on loopback or a LAN: a connect that
	// takes longer means the peer is gone, and the message layer has stores to fall back to.
	DefaultDialTimeout = 2 * time.Second
	// DefaultHandshakeTimeout bounds the hello/ack exchange on both sides, so a connection that
	// never says hello cannot hold a goroutine for long.
	DefaultHandshakeTimeout = 5 * time.Second
	// DefaultMaxBackoff caps the time requests to a peer fail fast after failed dials; it is
	// short because a restarted peer should be reachable again almost at once.
	DefaultMaxBackoff = 2 * time.Second
	// minBackoff is the first backoff after a failed dial; it doubles up to MaxBackoff.
	minBackoff = 50 * time.Millisecond
	// maxHandshaking bounds the accepted connections that have not completed their hello, so
	// that a flood of idle connections cannot pin a goroutine and a descriptor each for the
	// HandshakeTimeout. Real peers complete the hello within a round trip.
	maxHandshaking = 256
)

// Config configures a Transport. The zero value of each optional field means its
// default.
type Config struct {
	// ID is this peer's id: sent in the hello, and checked by a dialler against the id it
	// expects. Required; 1 to 255 bytes of UTF-8.
	ID string
	// Key is the relay HMAC key (32 bytes), from internal/keys. Required.
	Key []byte
	// ListenAddr is where to accept connections; default "127.0.0.1:0" (loopback, any port),
	// which is what open mode requires.
	ListenAddr string
	// MaxPayload is passed to the codec; default DefaultMaxPayload. A request body may be 8
	// bytes smaller, a response body 9, an error response's text 10 (their headers).
	MaxPayload int
	// Handler receives the requests of other peers. Nil answers every request with an error.
	Handler Handler
	// Logger receives rejections (Warn) and connection events (Debug); default: discard.
	Logger *slog.Logger
	// DialTimeout bounds a TCP connect; default DefaultDialTimeout.
	DialTimeout time.Duration
	// HandshakeTimeout bounds the hello/ack exchange; default DefaultHandshakeTimeout.
	HandshakeTimeout time.Duration
	// MaxBackoff caps the backoff after a failed dial; default DefaultMaxBackoff. After a
	// failed dial to a peer, requests to it fail fast with ErrUnreachable (or ErrPeerMismatch
	// if that was the failure) until the backoff, doubling from 50ms, has passed.
	MaxBackoff time.Duration
	// Now is the codec's clock (frame times and the ±2 minute window); default time.Now.
	// Backoff and timeouts use the real clock.
	Now func() time.Time
}

// Codec defaults and limits.
const (
	// DefaultMaxPayload allows an 8 MiB message body plus 64 KiB of headroom for the message
	// metadata that travels with it in the same frame.
	DefaultMaxPayload = 8<<20 + 64<<10
	// DefaultWindow is the clock skew accepted either way (SPEC section 7): wide enough for
	// machines without tight NTP, narrow enough that replays must happen soon after capture,
	// which is what bounds the ReplayGuard's memory.
	DefaultWindow = 2 * time.Minute
	// MinKeyLen is the shortest HMAC key accepted: HMAC-SHA256's full strength needs 32 bytes.
	MinKeyLen = 32
	// maxMaxPayload keeps the body length representable in the u32 length prefix.
	maxMaxPayload = math.MaxUint32 - frameOverhead
	// minReadBuf is the capacity ReadFrame allocates when the caller gives no buffer: it holds a
	// typical message so that the common first frames do not each reallocate.
	minReadBuf = 4 << 10
)

// CodecConfig configures a Codec. The zero value of every field except Key means its default.
type CodecConfig struct {
	// Key is the HMAC-SHA256 key (keys.Keys.Relay), at least MinKeyLen bytes. Required. It is
	// copied.
	Key []byte
	// MaxPayload is the largest payload accepted, in bytes; default DefaultMaxPayload. A frame
	// announcing more is refused before its body is read.
	MaxPayload int
	// Window is the clock skew accepted either way; default DefaultWindow.
	Window time.Duration
	// Now is the clock; default time.Now. Tests inject a fake clock.
	Now func() time.Time
}

// DefaultReplayCapacity is the number of nonces a ReplayGuard remembers by default: 65536
// handshakes within one 2-minute window is ~550 connections per second, far beyond any real
// mesh. Memory grows with use, to roughly 9 MiB if it ever fills.
const DefaultReplayCapacity = 65536
