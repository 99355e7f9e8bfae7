package relay

import (
	"log/slog"
	"time"

	"golang.org/x/time/rate"

	"github.com/paf-mesh/paf-mesh/internal/keys"
	"github.com/paf-mesh/paf-mesh/relay/store"
	"github.com/paf-mesh/paf-mesh/relay/wire"
)

// Defaults of Config (DefaultConfig), from SPEC sections 3 and 7.
const (
	// DefaultListenAddr is loopback, any port: what open mode requires.
	DefaultListenAddr = "127.0.0.1:0"
	// DefaultMaxBody is the largest body accepted (SPEC: 8 MiB).
	DefaultMaxBody = 8 << 20
	// DefaultLargeBody: received bodies over this are saved to a file (SPEC: 10 KiB).
	DefaultLargeBody = store.DefaultLargeBody
	// DefaultRate and DefaultBurst bound what one sending identity (see Config.Rate) may
	// deliver or store at this peer, per second and at once: generous for agents, who send a
	// few messages a minute, and for every peer of one user on one machine together (they
	// share its identity), tight enough that a runaway loop cannot fill a disk. One sending
	// address may do AddrFactor times as much, for every identity behind it.
	DefaultRate  rate.Limit = 1000
	DefaultBurst int        = 2000
	// AddrFactor is how many identities' worth of Rate, Burst and SenderHeldBytes one
	// sending address gets (SourceHeldBytes is its own setting): several users of one machine
	// or one NAT each have their own limits, and an insider who mints identities at will
	// (an identity costs nothing to make) still gets no more than this from one address.
	AddrFactor = 4
	// DefaultDeliverTimeout bounds one delivery, retries included: long enough for a rename
	// or claim to finish gossiping, short enough for an agent to be told.
	DefaultDeliverTimeout = 10 * time.Second
	// DefaultReplicas is how many peers hold each stored message (SPEC: 3).
	DefaultReplicas = 3
	// DefaultStoreTTL is how long a stored message waits for its recipient (SPEC: 30 days).
	DefaultStoreTTL = 30 * 24 * time.Hour
	// DefaultQuota is how many messages one holder keeps for one name: enough for any real
	// backlog, small enough that a loop cannot fill the disk.
	DefaultQuota = 10000
	// DefaultHeldBytes is the most one holder keeps for every offline name together, in the
	// bytes the messages take in its held.db. It is the hard bound on what others can make a
	// peer store for 30 days (an insider that invents names, each under its own quota, meets
	// it): a sliver of any disk, even with a few holders on one machine, and still room for
	// tens of thousands of typical messages or sixteen of the largest bodies.
	DefaultHeldBytes int64 = 128 << 20
	// DefaultSourceHeldBytes is the most one holder keeps on behalf of one sending address
	// (Config.SourceHeldBytes): half the total, so that one host, however many names it
	// invents or identities it makes, leaves the other half to everyone else.
	DefaultSourceHeldBytes int64 = 64 << 20
	// DefaultSenderHeldBytes is the most one holder keeps on behalf of one sending identity
	// (Config.SenderHeldBytes): a quarter of the total, so that users sharing a machine or a
	// NAT each have room of their own within their address's half.
	DefaultSenderHeldBytes int64 = 32 << 20
	// DefaultNameHeldBytes is the most one holder keeps for one name: a quarter of the total
	// (four of the largest bodies, or thousands of typical messages), so that a backlog for
	// one name, even one that will never come online, cannot take a holder's room.
	DefaultNameHeldBytes int64 = 32 << 20
	// DefaultHoldInterval is a fallback: claims, joins and stores wake holders at once.
	DefaultHoldInterval = time.Second
	// DefaultHandoverStagger is how long each lower-ranked holder waits before handing over
	// in case the first did not: longer than a handover of a typical backlog takes.
	DefaultHandoverStagger = 2 * time.Second
	// DefaultExpiryInterval is how often holders look for expired messages: expiry is in
	// days, so a minute late is nothing.
	DefaultExpiryInterval = time.Minute
	// DefaultClockWindow is the clock skew accepted either way (SPEC sections 3 and 7): wide
	// enough for clocks that NTP keeps, narrow enough that ids (ULIDs, which carry their
	// sender's time) and send times stay meaningful. It was the HMAC frame codec's window; the
	// Noise transport carries frame times only as information, so this is the one check.
	DefaultClockWindow = 2 * time.Minute
	// maxPayloadHeadroom is what a frame carries besides a message's body: its metadata.
	maxPayloadHeadroom = 64 << 10
)

// Config configures a Relay. The zero value of each optional field means its default
// (DefaultConfig).
type Config struct {
	Dir Directory // required
	Key []byte    // the mesh's relay key (the transport's pre-shared key), from internal/keys; required
	// Identity proves Dir.ID() on every connection; nil means the Directory's own
	// (mesh.Peer.Identity), which is where it comes from in a real peer.
	Identity   *keys.Identity
	ListenAddr string // host:port; port 0 picks one; default DefaultListenAddr
	// StateRoot is the shared state dir: inboxes live in StateRoot/inbox,
	// large bodies in StateRoot/files. Required.
	StateRoot string
	// MaxBody is the largest body accepted; default DefaultMaxBody.
	MaxBody int
	// LargeBody: received bodies over this are saved to a file and the
	// agent sees a preview; default DefaultLargeBody.
	LargeBody int
	// Rate and Burst bound what one sending identity may deliver and store at this peer:
	// generous for agents (who send a few messages a minute), tight enough that a runaway loop
	// cannot fill a disk. Defaults DefaultRate and DefaultBurst.
	//
	// The identity is the one the transport's handshake proved (SPEC section 7: quotas and
	// rates are keyed on identities), shared by every peer of one user on one machine. The
	// sending connection's address (an IPv4 address, an IPv6 /64) has a bucket of its own,
	// AddrFactor times larger, since identities cost nothing to make. This peer's own
	// requests are not limited.
	Rate  rate.Limit
	Burst int
	// DeliverTimeout bounds one delivery attempt, retries included; default
	// DefaultDeliverTimeout.
	DeliverTimeout time.Duration

	// HolderDir is this peer's own state slot, where it keeps messages it
	// holds for offline names. Empty: this peer never holds (a transient
	// peer, whose Meta.Transient keeps others from choosing it).
	HolderDir string
	// Replicas is how many peers hold each stored message; default DefaultReplicas.
	Replicas int
	// StoreTTL is how long a stored message waits; default DefaultStoreTTL.
	StoreTTL time.Duration
	// Store quotas of a holder: Quota is how many messages it keeps for one name,
	// NameHeldBytes how many bytes for one name, SenderHeldBytes how many bytes on behalf of
	// one sending identity (the message's author, whose signature a holder checks),
	// SourceHeldBytes on behalf of one sending address (the connection's; this peer's own
	// messages are one source of their own), HeldBytes how many bytes in all. A message that
	// would pass any of them is refused with CodeQuota and its sender told why (ErrQuota),
	// never dropped later. Defaults DefaultQuota, DefaultNameHeldBytes,
	// DefaultSenderHeldBytes, DefaultSourceHeldBytes and DefaultHeldBytes; a negative value is
	// no limit. Per-name, per-sender and per-address quotas above HeldBytes are lowered to it.
	//
	// The per-sender and per-address quotas below the total are what leave room for others
	// when one sender floods: an identity can take SenderHeldBytes, everything from one
	// address SourceHeldBytes (however many identities it makes), the rest stays for others.
	// Hosts together can still fill the total (they are then refused, like everyone); the
	// total is the bound on the disk.
	Quota           int
	NameHeldBytes   int64
	SenderHeldBytes int64
	SourceHeldBytes int64
	HeldBytes       int64
	// HoldInterval is how often holders look for recipients that came
	// online and for membership changes (they are also woken at once when
	// a message is stored); HandoverStagger is how long each lower-ranked
	// holder waits before handing over in case the first did not; ExpiryInterval is how often
	// expired messages are looked for. Defaults DefaultHoldInterval, DefaultHandoverStagger,
	// DefaultExpiryInterval.
	HoldInterval    time.Duration
	HandoverStagger time.Duration
	ExpiryInterval  time.Duration
	// Logger receives the relay's and its transport's logs; default: discard.
	Logger *slog.Logger
	// Now is the clock of ids, send times, request stamps (the clock-skew check), rate limits
	// and expiry; default time.Now. Tests skew one peer's clock with it. (The transport's
	// frames keep the real clock.)
	Now func() time.Time
	// ClockWindow is how far a requesting peer's clock (its request's stamp) may be from this
	// peer's either way before its requests are refused as clock skew (wire.CodeClockSkew);
	// default DefaultClockWindow.
	ClockWindow time.Duration
	// OutboxRetry is the first wait before a queued message is tried again (it doubles up to
	// 30 s); OutboxAdopt is how often this peer looks for outboxes left by peers that are
	// gone when no departure told it (a peer failing or leaving wakes the look at once).
	// Defaults DefaultOutboxRetry and DefaultOutboxAdopt.
	OutboxRetry time.Duration
	OutboxAdopt time.Duration

	// heldLimits is what New makes of the quotas, for the held store.
	heldLimits store.HeldLimits

	// wrapHandler, when set (tests and benchmarks of this package), wraps the relay's handler
	// of other peers' requests before the transport starts serving them.
	wrapHandler func(wire.Handler) wire.Handler
}

// DefaultConfig returns the defaults of SPEC sections 3 and 7.
func DefaultConfig() Config {
	return Config{
		ListenAddr:      DefaultListenAddr,
		MaxBody:         DefaultMaxBody,
		LargeBody:       DefaultLargeBody,
		Rate:            DefaultRate,
		Burst:           DefaultBurst,
		DeliverTimeout:  DefaultDeliverTimeout,
		Replicas:        DefaultReplicas,
		StoreTTL:        DefaultStoreTTL,
		Quota:           DefaultQuota,
		NameHeldBytes:   DefaultNameHeldBytes,
		SenderHeldBytes: DefaultSenderHeldBytes,
		SourceHeldBytes: DefaultSourceHeldBytes,
		HeldBytes:       DefaultHeldBytes,
		HoldInterval:    DefaultHoldInterval,
		HandoverStagger: DefaultHandoverStagger,
		ExpiryInterval:  DefaultExpiryInterval,
	}
}

// limits resolves the store quotas: zero is the default, negative none, and the per-name and
// per-sender and per-address byte quotas are at most the total.
func (cfg *Config) limits() store.HeldLimits {
	def := DefaultConfig()
	pick := func(v, d int64) int64 {
		switch {
		case v == 0:
			return d
		case v < 0:
			return 0
		}
		return v
	}
	lim := store.HeldLimits{
		Bytes:        pick(cfg.HeldBytes, def.HeldBytes),
		NameBytes:    pick(cfg.NameHeldBytes, def.NameHeldBytes),
		NameMessages: int(pick(int64(cfg.Quota), int64(def.Quota))),
		SenderBytes:  pick(cfg.SenderHeldBytes, def.SenderHeldBytes),
		AddrBytes:    pick(cfg.SourceHeldBytes, def.SourceHeldBytes),
	}
	if lim.Bytes > 0 {
		for _, q := range []*int64{&lim.NameBytes, &lim.SenderBytes, &lim.AddrBytes} {
			if *q == 0 || *q > lim.Bytes {
				*q = lim.Bytes
			}
		}
	}
	return lim
}
