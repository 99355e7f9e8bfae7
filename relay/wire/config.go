package wire

import (
	"log/slog"
	"math"
	"time"

	"github.com/paf-mesh/paf-mesh/internal/keys"
)

// The configuration of this package and every default, in one place: Config for a
// Transport, and CodecConfig for a Codec (a Transport makes its own from Config).

// Transport defaults.
const (
	// DefaultDialTimeout bounds a TCP connect. Peers are on loopback or a LAN: a connect that
	// takes longer means the peer is gone, and the message layer has stores to fall back to.
	DefaultDialTimeout = 2 * time.Second
	// DefaultHandshakeTimeout bounds the handshake on both sides, so a connection that
	// never says hello (or says it a byte at a time) cannot hold a goroutine and a descriptor
	// for long. A real peer sends its hello as soon as its connect completes, so the hello
	// arrives one round trip after the accept: microseconds on loopback, milliseconds on a LAN;
	// 3 s leaves room for a machine under load (a full test run on 2 cores) while an idle
	// connection is gone soon. It is not what keeps peers able to connect under a flood (the
	// pending limits below drop the oldest first); it bounds how long a silent connection lives
	// when nothing newer pushes it out.
	DefaultHandshakeTimeout = 3 * time.Second
	// DefaultMaxBackoff caps the time requests to a peer fail fast after failed dials; it is
	// short because a restarted peer should be reachable again almost at once.
	DefaultMaxBackoff = 2 * time.Second
	// minBackoff is the first backoff after a failed dial; it doubles up to MaxBackoff.
	minBackoff = 50 * time.Millisecond
	// maxPendingPerSource bounds the accepted connections from one IP address that have not yet
	// sent a hello that authenticates; past it the OLDEST of that address is dropped, so a flood
	// from one host only churns its own connections. All of a machine's peers connect from
	// 127.0.0.1, and a burst of dozens of them dialling one peer at once (a mesh starting, or
	// everyone re-dialling a restarted peer) is normal: 64 admits such a burst whole, and a
	// legitimate connection is lost only if 64 newer ones from its address arrive within the
	// one round trip its hello takes (its sender then re-dials after a backoff).
	maxPendingPerSource = 64
	// maxPending bounds such connections from all addresses, for a flood from many hosts; past
	// it the OLDEST of all is dropped. Each pending connection costs a goroutine, a descriptor
	// and a hello-sized buffer (well under 16 KiB together; nothing is read past the largest
	// hello before it authenticates), so 256 hold at most a few MiB; 4 sources at the
	// per-source limit fill it, and a legitimate hello is lost only if 256 newer connections
	// arrive within its round trip.
	maxPending = 256
	// maxPendingFrame is the most a connection that has not authenticated can make this peer
	// read or allocate: the largest first handshake message with its length prefix (309
	// bytes). A length prefix announcing more is refused before anything more is read.
	maxPendingFrame = lenPrefixLen + maxMsg1Len
	// maxAckFrame likewise bounds the second handshake message a dialler reads before the
	// answer authenticates (the peer dialled may not be the one expected, or not a peer at all).
	maxAckFrame = lenPrefixLen + maxMsg2Len
)

// Config configures a Transport. The zero value of each optional field means its
// default.
type Config struct {
	// ID is this peer's id: sent in the handshake, and checked by a dialler against the id it
	// expects. Required, and bound to Identity (keys.Identity.NewPeerID).
	ID string
	// Identity is this user's identity on this machine: its transport key authenticates the
	// handshake, and every connection learns the other side's. Required.
	Identity *keys.Identity
	// Key is the mesh's relay key (32 bytes, from internal/keys), the handshake's pre-shared
	// key: only holders of the mesh secret (or, in open mode, of this user's key file) can
	// connect. Required.
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
	// HandshakeTimeout bounds the handshake; default DefaultHandshakeTimeout.
	HandshakeTimeout time.Duration
	// MaxBackoff caps the backoff after a failed dial; default DefaultMaxBackoff. After a
	// failed dial to a peer, requests to it fail fast with ErrUnreachable (or ErrPeerMismatch
	// if that was the failure) until the backoff, doubling from 50ms, has passed.
	MaxBackoff time.Duration
	// Now is the clock of the times frames carry; default time.Now. Backoff and timeouts use
	// the real clock.
	Now func() time.Time
}

// Codec defaults and limits.
const (
	// DefaultMaxPayload allows an 8 MiB message body plus 64 KiB of headroom for the message
	// metadata that travels with it in the same frame.
	DefaultMaxPayload = 8<<20 + 64<<10
	// KeyLen is the length of the pre-shared key (Config.Key).
	KeyLen = 32
	// maxMaxPayload keeps the body length representable in the u32 length prefix.
	maxMaxPayload = math.MaxUint32 - frameOverhead
	// minReadBuf is the capacity ReadFrame allocates when the caller gives no buffer: it holds a
	// typical message so that the common first frames do not each reallocate.
	minReadBuf = 4 << 10
)

// CodecConfig configures a Codec. The zero value of every field means its default.
type CodecConfig struct {
	// MaxPayload is the largest payload accepted, in bytes; default DefaultMaxPayload. A frame
	// announcing more is refused before its body is read.
	MaxPayload int
	// Now is the clock frames are stamped with; default time.Now.
	Now func() time.Time
}
