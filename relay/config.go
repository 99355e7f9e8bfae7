package relay

import (
	"log/slog"
	"time"

	"golang.org/x/time/rate"

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
	// DefaultRate and DefaultBurst bound what one sending peer may deliver to this peer, per
	// second and at once: generous for agents, who send a few messages a minute, tight enough
	// that a runaway loop cannot fill a disk.
	DefaultRate  rate.Limit = 1000
	DefaultBurst int        = 2000
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
	// DefaultHoldInterval is a fallback: claims, joins and stores wake holders at once.
	DefaultHoldInterval = time.Second
	// DefaultHandoverStagger is how long each lower-ranked holder waits before handing over
	// in case the first did not: longer than a handover of a typical backlog takes.
	DefaultHandoverStagger = 2 * time.Second
	// DefaultExpiryInterval is how often holders look for expired messages: expiry is in
	// days, so a minute late is nothing.
	DefaultExpiryInterval = time.Minute
	// maxPayloadHeadroom is what a frame carries besides a message's body: its metadata.
	maxPayloadHeadroom = 64 << 10
)

// Config configures a Relay. The zero value of each optional field means its default
// (DefaultConfig).
type Config struct {
	Dir        Directory // required
	Key        []byte    // relay HMAC key, from internal/keys; required
	ListenAddr string    // host:port; port 0 picks one; default DefaultListenAddr
	// StateRoot is the shared state dir: inboxes live in StateRoot/inbox,
	// large bodies in StateRoot/files. Required.
	StateRoot string
	// MaxBody is the largest body accepted; default DefaultMaxBody.
	MaxBody int
	// LargeBody: received bodies over this are saved to a file and the
	// agent sees a preview; default DefaultLargeBody.
	LargeBody int
	// Rate and Burst bound what one sending peer may deliver to this peer:
	// generous for agents (who send a few messages a minute), tight enough
	// that a runaway loop cannot fill a disk.
	// Defaults DefaultRate and DefaultBurst.
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
	// Quota is how many messages one holder keeps for one name; DefaultConfig sets
	// DefaultQuota (0 in a Config not made by it: no quota).
	Quota int
	// HoldInterval is how often holders look for recipients that came
	// online and for membership changes (they are also woken at once when
	// a message is stored); HandoverStagger is how long each lower-ranked
	// holder waits before handing over in case the first did not; ExpiryInterval is how often
	// expired messages are looked for. Defaults DefaultHoldInterval, DefaultHandoverStagger,
	// DefaultExpiryInterval.
	HoldInterval    time.Duration
	HandoverStagger time.Duration
	ExpiryInterval  time.Duration
	// OnHeldChange, when set, is called (from the holding goroutine) when
	// the number of messages held changes, to announce it in the mesh.
	OnHeldChange func(msgs, names int)
	// Logger receives the relay's and its transport's logs; default: discard.
	Logger *slog.Logger
	// Now is the clock of ids, send times, rate limits and expiry; default time.Now.
	Now func() time.Time

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
		HoldInterval:    DefaultHoldInterval,
		HandoverStagger: DefaultHandoverStagger,
		ExpiryInterval:  DefaultExpiryInterval,
	}
}
