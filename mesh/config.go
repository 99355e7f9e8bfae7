package mesh

import (
	"log/slog"
	"time"

	"github.com/hashicorp/memberlist"
)

// Config configures a Peer. Start from DefaultLocalConfig or DefaultLANConfig.
type Config struct {
	// ID is the peer id, used as the memberlist node name. It must be unique
	// in the mesh; empty means a fresh random id, which is what a process
	// wants: a restarted process is a new peer that may claim the old name.
	ID string

	// Meta is what this peer announces at start. Name is ignored here: names
	// are claimed with Peer.Claim after joining, so that a taken name is seen
	// before it is claimed.
	Meta Meta

	// StateDir, when set, is where the peer persists its copy of the
	// forwarding table, so forwards survive the restart of any peer.
	StateDir string

	// NameGrace is how long the name of a failed peer stays reserved. A peer
	// that was wrongly declared dead (a stalled process, a lost packet burst)
	// refutes and keeps its name; a peer that is really gone frees it soon
	// enough for a restarted session to claim it again.
	NameGrace time.Duration

	// ForwardTTL is how long an old name forwards to the new one after a
	// rename (SPEC: 2 hours).
	ForwardTTL time.Duration

	// Retain is how long failed and departed peers stay listed (so status can
	// show them as dead or left) before they are forgotten. At least NameGrace.
	Retain time.Duration

	// Discover, when set, is polled every DiscoverInterval (and by
	// Peer.Discover) for addresses to join; addresses of peers already known
	// are skipped. It is never called concurrently with itself. Polling (rather
	// than a single join at start) heals meshes that started apart, such as
	// two peers starting at the same instant and each finding no one.
	Discover         func() []string
	DiscoverInterval time.Duration

	// Memberlist is the gossip configuration. Name, Delegate, Events, Logger
	// and LogOutput are set by New; the rest is taken as given. SecretKey (or
	// Keyring) turns on gossip encryption.
	Memberlist *memberlist.Config

	// Logger receives the peer's logs and memberlist's, at matching levels.
	Logger *slog.Logger
}

// DefaultLocalConfig is for peers of one user on one machine: loopback only,
// fast timers. Loopback never loses packets for long, so failures are
// detected quickly and a failed peer's name is freed after 3 s.
func DefaultLocalConfig() *Config {
	ml := memberlist.DefaultLocalConfig()
	tune(ml)
	// A peer is suspected for SuspicionMult * log10(peers) probe intervals
	// before it is declared dead: with memberlist's local 3, a hard-killed
	// peer took 8.3-9.4 s to be seen dead by all of 100 peers (SPEC: 8 s).
	// 2 gives 4 s at 100 peers and 2 s up to 10. A peer only stalled, not
	// dead, refutes when it runs again and keeps its name (NameGrace).
	ml.SuspicionMult = 2
	ml.BindAddr = "127.0.0.1"
	ml.BindPort = 0
	ml.AdvertisePort = 0
	return &Config{
		NameGrace:  3 * time.Second,
		ForwardTTL: 2 * time.Hour,
		Retain:     30 * time.Second,
		// Only a heal: a new peer reads the run dir at start and joins
		// at once, and the others learn of it by gossip. Each round
		// reads the run dir, the largest share of an idle peer's CPU.
		DiscoverInterval: time.Second,
		Memberlist:       ml,
	}
}

// DefaultLANConfig is for peers spread over a LAN: memberlist's LAN timers,
// which tolerate a busy Wi-Fi, and a longer name grace period.
func DefaultLANConfig() *Config {
	ml := memberlist.DefaultLANConfig()
	tune(ml)
	ml.BindPort = 0
	ml.AdvertisePort = 0
	return &Config{
		NameGrace:        5 * time.Second,
		ForwardTTL:       2 * time.Hour,
		Retain:           60 * time.Second,
		DiscoverInterval: 500 * time.Millisecond, // new mDNS answers are joined promptly
		Memberlist:       ml,
	}
}

// tune applies what both presets share.
func tune(ml *memberlist.Config) {
	// With the local preset's RetransmitMult of 2, 20 peers sometimes took
	// 15-29 s to converge; 4 converges in about half a second every time.
	ml.RetransmitMult = 4
	// Push/pull is our anti-entropy for the forwarding table too; every 10 s
	// is cheap at our scale (tens of peers) and bounds how long a missed
	// broadcast can keep two peers apart.
	ml.PushPullInterval = 10 * time.Second
	// Names travel in node meta: an update must reach every peer fast.
	ml.GossipInterval = 100 * time.Millisecond
}
