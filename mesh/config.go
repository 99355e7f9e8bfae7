package mesh

import (
	"context"
	"log/slog"
	"os"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/paf-mesh/paf-mesh/internal/keys"
)

// Defaults of Config, named so that the presets, New and the docs agree.
// DefaultLocalConfig uses the plain ones, DefaultLANConfig the LAN ones, and
// New fills a zero field with the local value (the preset it uses for a nil
// Config).
const (
	// DefaultNameGrace: loopback never loses packets for long, so a failed
	// peer's name is freed after 3 s, soon enough for a restarted session
	// to take it back, long enough for a stalled one to refute first.
	DefaultNameGrace = 3 * time.Second
	// DefaultLANNameGrace: a busy Wi-Fi drops bursts of packets; a peer
	// wrongly declared dead there needs longer to refute and keep its name.
	DefaultLANNameGrace = 5 * time.Second
	// DefaultForwardTTL: an old name forwards to the new one for 2 hours
	// after a rename (SPEC), long enough for the others to learn the new
	// name from the messages it answers.
	DefaultForwardTTL = 2 * time.Hour
	// DefaultRetain: failed and departed peers stay listed for 30 s so that
	// status shows them as dead or left for a while; at least NameGrace.
	DefaultRetain = 30 * time.Second
	// DefaultLANRetain: twice as long on a LAN, where a peer that comes
	// back (a laptop waking) is likelier and worth recognising.
	DefaultLANRetain = 60 * time.Second
	// DefaultDiscoverInterval: discovery is only a heal on one machine (a
	// new peer reads the run dir at start and joins at once, the others
	// learn of it by gossip), and each round reads the run dir, the largest
	// share of an idle peer's CPU: once a second.
	DefaultDiscoverInterval = time.Second
	// DefaultLANDiscoverInterval: new mDNS answers are joined promptly.
	DefaultLANDiscoverInterval = 500 * time.Millisecond
	// WatchedDiscoverInterval is the DiscoverInterval for a peer whose
	// DiscoverWake tells it of every change to the run dir (Linux: inotify):
	// it reads the dir when something changed, and the timer is only a heal.
	// An idle peer then reads nothing; at 1 s, reading the dir was the
	// largest share of an idle peer's CPU (issue 18: a sixth of it at 20
	// peers, 20 opens and flocks a second).
	WatchedDiscoverInterval = 30 * time.Second
	// DefaultAnnounceWait is Config.AnnounceWait's default: how long every claim waited
	// before the field was added.
	DefaultAnnounceWait = time.Second
)

// memberlist settings both presets change from memberlist's own.
const (
	// retransmitMult: with the local preset's 2, 20 peers sometimes took
	// 15-29 s to converge; 4 converges in about half a second every time.
	retransmitMult = 4
	// pushPullInterval: push/pull is our anti-entropy for the forwarding
	// table too; every 10 s is cheap at our scale (tens of peers) and bounds
	// how long a missed broadcast can keep two peers apart.
	pushPullInterval = 10 * time.Second
	// localSuspicionMult: a peer is suspected for SuspicionMult *
	// log10(peers) probe intervals before it is declared dead: with
	// memberlist's local 3 (and 1 s probes), a hard-killed peer took 8.3-9.4 s
	// to be seen dead by all of 100 peers. 2 gives 2 probe intervals up to 10
	// peers, 4 at 100 (localProbeInterval). A peer only stalled, not dead,
	// refutes when it runs again and keeps its name (NameGrace).
	localSuspicionMult = 2
	// lanSuspicionMult: memberlist's LAN 4 kept a SIGKILLed peer alive in the others' view for
	// 6.7-7.2 s on a 5-host LAN (BenchmarkLANFailureDetection; SPEC: 5 s); 3 gave a median of
	// 4.7-5.5 s and a max of 6.3-7.8 s, its suspicion waiting for another peer's confirmation
	// (Lifeguard). With 2 the suspicion lasts 2 probe intervals (times log10 of the peers, at
	// least 1), confirmed or not: a peer whose packets are only delayed has 2 intervals to refute, and
	// one that was declared dead but runs again rejoins and takes its name back (NameGrace).
	lanSuspicionMult = 2
	// lanProbeInterval: memberlist's LAN 1 s left a SIGKILLed peer alive in some host's view
	// for 4.4-5.5 s in the worst of three kills (4 runs on a 5-host LAN; SPEC: 5 s). The time
	// is the wait for a first probe of the dead peer (each peer probes the others in a
	// shuffled round, one per interval: with 4 probers and 4 targets the first probe of one
	// target comes after more than 1.7 s about 1 kill in 9), one interval for that probe and
	// its indirect probes to fail, and the suspicion (lanSuspicionMult intervals), then the
	// gossip of the verdict. At 800 ms every part is a fifth shorter; a delayed peer has 1.6 s
	// to refute a suspicion, and probes cost a quarter more packets (tens of bytes each, one
	// per peer per interval).
	lanProbeInterval = 800 * time.Millisecond
)

// localPushPullInterval: the local preset's push/pull (the whole state both ways with a
// random peer: the most expensive of memberlist's timers) runs every 30 s rather than 10: it is
// anti-entropy for the forwarding table and for updates gossip missed, and between the peers
// of one machine the run dir now tells of starts (DiscoverWake), deaths (Gone) and claims
// (Names) without it.
const localPushPullInterval = 30 * time.Second

// localProbeInterval: the local preset probes a random peer every 3 s, memberlist's local
// preset every second. On one machine a crash is proven by the run dir at once (Config.Gone:
// the entry's lock is free), so probes only find a peer that hangs without dying, or one with
// no entry (a brief shell command): in about 10-15 s (a probe round, then SuspicionMult probe
// intervals) instead of 3-5 s. With gossip bursts (burst.go) the probes were most of an idle
// peer's CPU: 20 idle sessions, A/B in the same minutes (issue 18), 0.15-0.16 % of a core each
// at 1 s, 0.12 % at 2 s, 0.10 % at 3 s. The LAN preset keeps memberlist's 1 s: there a crash
// has no other witness.
const localProbeInterval = 3 * time.Second

// localGossipInterval: the local preset's idle gossip pace (memberlist's ticker; a peer with
// news gossips in bursts, burst.go). What it alone carries is what reaches a peer without any
// delegate hearing of it, a suspicion about a third peer learnt from another, and on one
// machine a suspicion only ever concerns a peer that hangs, found in 10-15 s (above); every
// probe packet carries it too. Each tick wakes an idle process: with the ticker at 1 s it was
// a third of an idle session's wake-ups (issue 18, a runtime trace of a session among 20).
const localGossipInterval = localProbeInterval

// localUDPBufferSize: the local preset's gossip packets hold up to 8 KiB of piggybacked
// broadcasts, memberlist's presets 1,400 bytes (an Ethernet MTU; the LAN preset keeps it).
// Loopback has a 64 KiB MTU, and a packet is read whole whatever its size (maxPacket). Names
// travel in node metadata, so a claim is an "alive" broadcast of up to ~600 bytes: at 1,400
// bytes a packet carried two or three, and while 50 sessions started together their claims
// queued behind each other. 50 sessions starting together (issue 18, runs interleaved in the
// same minutes; BENCHMARKS.md, Session 14): the last one seen by all 1.7-2.6 s after the last
// start at 1,400 bytes (10 runs), 1.1-1.4 s at 8 KiB (4 runs), with less CPU. Not more than 8 KiB: memberlist piggybacks on a ping or an ack
// in one compound message whose count is a byte (makeCompoundMessage), so a packet must never
// hold more than 255 broadcasts. The smallest, a suspect or dead message, is about 33 bytes
// with a two-byte length even for one-letter peer ids (ours have 33 letters, and it is ~100),
// so 8 KiB holds at most about 235.
const localUDPBufferSize = 8 << 10

// localCompression: memberlist compresses every gossip packet and push/pull
// state with LZW by default. Over loopback bandwidth is free and the
// compression is not: it was 14% of the CPU of 20 `paf-peer mcp` processes
// starting together (perf, issue 18), each packet paying a fresh LZW table.
// Peers still read compressed messages from peers that send them.
const localCompression = false

// Config configures a Peer. Start from DefaultLocalConfig or DefaultLANConfig;
// New gives a zero field the value of DefaultLocalConfig (see the Default
// constants), and a nil Config is DefaultLocalConfig.
type Config struct {
	// ID is the peer id, used as the memberlist node name. It must be unique
	// in the mesh and bound to Identity; empty means a fresh random id of
	// Identity (keys.Identity.NewPeerID), which is what a process wants: a
	// restarted process is a new peer that may claim the old name.
	ID string

	// ConfirmClaim, when set, is asked before this peer gives its name up to another peer
	// whose claim ranks first: it must prove that m is a live peer of the identity its id is
	// bound to (the relay does it with a handshake at m's relay address). Until it says yes,
	// the name is kept; a claimant it refuses is never yielded to. This is what stops replayed
	// gossip of a departed peer, which cannot answer, from taking a live name. Nil: yield as
	// the ranking says.
	ConfirmClaim func(ctx context.Context, m Member) bool

	// Identity is the user's identity on this machine (keys.LoadIdentity);
	// the relay proves it on every connection. Nil means a fresh identity
	// that is stored nowhere (tests).
	Identity *keys.Identity

	// Meta is what this peer announces at start. Name is ignored here: names
	// are claimed with Peer.Claim after joining, so that a taken name is seen
	// before it is claimed. An empty Host is the machine's host name. New
	// fails when the tags are invalid or do not fit (see Meta).
	Meta Meta

	// StateDir, when set, is where the peer persists its copy of the
	// forwarding table, so forwards survive the restart of any peer.
	StateDir string

	// NameGrace is how long the name of a failed peer stays reserved. A peer
	// that was wrongly declared dead (a stalled process, a lost packet burst)
	// refutes and keeps its name; a peer that is really gone frees it soon
	// enough for a restarted session to claim it again. Zero:
	// DefaultNameGrace.
	NameGrace time.Duration

	// ForwardTTL is how long an old name forwards to the new one after a
	// rename. Zero: DefaultForwardTTL.
	ForwardTTL time.Duration

	// Retain is how long failed and departed peers stay listed (so status can
	// show them as dead or left) before they are forgotten. New raises it to
	// NameGrace if shorter: a failed peer must be remembered as long as its
	// name is reserved. Zero: DefaultRetain.
	Retain time.Duration

	// Discover, when set, is polled every DiscoverInterval (and by
	// Peer.Discover) for addresses to join; addresses of peers already known
	// are skipped. It is never called concurrently with itself. Polling (rather
	// than a single join at start) heals meshes that started apart, such as
	// two peers starting at the same instant and each finding no one.
	// Zero DiscoverInterval: DefaultDiscoverInterval.
	Discover         func() []string
	DiscoverInterval time.Duration
	// DiscoverWake, when set, runs a discovery round at once whenever it
	// receives (a change to the run dir), besides the timer. A closed channel
	// is ignored from then on.
	DiscoverWake <-chan struct{}
	// WakeGone, when set with DiscoverWake and Gone, tells after a wake which peers it may be
	// about: the ids it returns, or every member of this host when it says all. The wake then
	// asks Gone about those ids alone (a wake that names none, a peer that started or
	// rewrote its entry, asks nothing), and so does the discovery round the wake arms; the
	// rounds of the timer (DiscoverInterval) and Peer.Discover still ask about every member.
	// The run-dir watch names the entries their owners closed (discovery.Watcher.Closed): 50
	// sessions starting together woke each peer about a hundred times, each wake and each
	// round asking about every member (issue 18). Nil: every wake and every round asks about
	// every member of this host, a wake at most every 200 ms.
	WakeGone func() (ids []string, all bool)

	// Names, when set, tells the names that peers of this machine say they hold (their run-dir
	// entries), by peer id. It is a hint, never trusted for ownership: a known live peer whose
	// entry names another name than this peer's view shows it holding is pulled from (a
	// push/pull, as a join does) in the discovery round, which heals a claim that gossip did
	// not bring here; the pulled state is judged as any gossip is. Asked once per round, never
	// concurrently with itself; it may block briefly (it reads files).
	Names func() map[string]string

	// Gone, when set, says whether the peer with this id is known to have stopped, by a proof
	// that comes sooner than failure detection: for a peer of this machine, its run-dir entry
	// whose owner's lock is free (discovery.Local.Gone). It must say true only on proof, for a
	// peer it names is failed in this peer's view at once and for good, even while memberlist
	// still reports it alive: its name is reserved for NameGrace, during which a restarted
	// session of the same identity may take it back. It is asked about every live member of
	// this host (Meta.Host, a filter only) after each discovery round (with WakeGone, only
	// the timer's and Peer.Discover's), and on a DiscoverWake about those WakeGone names
	// (without WakeGone: about every one, at once or within 200 ms of the last check); never
	// with the peer's lock held, never concurrently with itself. It may block briefly (it
	// reads files).
	Gone func(id string) bool

	// AnnounceWait bounds how long Claim, ClaimWhenReleased, Rename and Release wait for the
	// new metadata to have been gossiped (memberlist's UpdateNode returns once the update has
	// been retransmitted as often as it will be) before they return; the update is queued and
	// goes on either way. Zero: DefaultAnnounceWait, which suits a brief peer (a shell command
	// that exits soon after it claimed: its claim must have left first). A long-lived peer
	// gossips on after the call returns, and pushes a claim to a peer at once besides
	// (spreadClaim), so it may wait much less: at 50 sessions starting together 43 of the 50
	// claims waited the whole second, and each session's start with them (issue 18).
	AnnounceWait time.Duration

	// BurstGossip is how often a peer with news gossips, for a second after the last news
	// (burst.go); Memberlist.GossipInterval is its pace otherwise. A BurstGossip no shorter
	// than that turns bursts off: memberlist's own ticker is as fast. Zero:
	// DefaultBurstGossip.
	BurstGossip time.Duration

	// Memberlist is the gossip configuration; nil is DefaultLocalConfig's.
	// Name, Delegate, Events, Logger and LogOutput are set by New; the rest
	// is taken as given. SecretKey (or Keyring) turns on gossip encryption.
	Memberlist *memberlist.Config

	// Logger receives the peer's logs and memberlist's, at matching levels.
	// Nil discards them: a library does not choose where logs go.
	Logger *slog.Logger
}

// DefaultLocalConfig is for peers of one user on one machine: loopback only,
// fast timers. Loopback never loses packets for long, so failures are
// detected quickly and a failed peer's name is freed after 3 s.
func DefaultLocalConfig() *Config {
	ml := memberlist.DefaultLocalConfig()
	tune(ml)
	ml.SuspicionMult = localSuspicionMult
	ml.EnableCompression = localCompression
	ml.PushPullInterval = localPushPullInterval
	ml.ProbeInterval = localProbeInterval
	ml.GossipInterval = localGossipInterval
	ml.UDPBufferSize = localUDPBufferSize
	ml.BindAddr = "127.0.0.1"
	ml.BindPort = 0
	ml.AdvertisePort = 0
	return &Config{
		NameGrace:        DefaultNameGrace,
		ForwardTTL:       DefaultForwardTTL,
		Retain:           DefaultRetain,
		DiscoverInterval: DefaultDiscoverInterval,
		Memberlist:       ml,
	}
}

// DefaultLANConfig is for peers spread over a LAN: memberlist's LAN timers,
// which tolerate a busy Wi-Fi, and a longer name grace period.
func DefaultLANConfig() *Config {
	ml := memberlist.DefaultLANConfig()
	tune(ml)
	ml.SuspicionMult = lanSuspicionMult
	ml.ProbeInterval = lanProbeInterval
	ml.BindPort = 0
	ml.AdvertisePort = 0
	return &Config{
		NameGrace:        DefaultLANNameGrace,
		ForwardTTL:       DefaultForwardTTL,
		Retain:           DefaultLANRetain,
		DiscoverInterval: DefaultLANDiscoverInterval,
		Memberlist:       ml,
	}
}

// tune applies what both presets share.
func tune(ml *memberlist.Config) {
	ml.RetransmitMult = retransmitMult
	ml.PushPullInterval = pushPullInterval
	// Names travel in node meta, so an update must reach every peer fast: a peer with news
	// gossips every BurstGossip (burst.go); memberlist's own ticker is only the idle pace.
	ml.GossipInterval = idleGossipInterval
}

// withDefaults returns a copy of c (nil: DefaultLocalConfig) with its zero
// fields set from DefaultLocalConfig, a fresh ID and the host name, and its
// own copy of Memberlist, which New modifies.
func (c *Config) withDefaults() Config {
	def := DefaultLocalConfig()
	if c == nil {
		c = def
	}
	out := *c
	if out.Memberlist == nil {
		out.Memberlist = def.Memberlist
	}
	ml := *out.Memberlist
	out.Memberlist = &ml
	if out.NameGrace <= 0 {
		out.NameGrace = def.NameGrace
	}
	if out.ForwardTTL <= 0 {
		out.ForwardTTL = def.ForwardTTL
	}
	if out.Retain <= 0 {
		out.Retain = def.Retain
	}
	out.Retain = max(out.Retain, out.NameGrace)
	if out.DiscoverInterval <= 0 {
		out.DiscoverInterval = def.DiscoverInterval
	}
	if out.BurstGossip <= 0 {
		out.BurstGossip = DefaultBurstGossip
	}
	if out.AnnounceWait <= 0 {
		out.AnnounceWait = DefaultAnnounceWait
	}
	if out.Logger == nil {
		out.Logger = slog.New(slog.DiscardHandler)
	}
	if out.Identity == nil {
		out.Identity = keys.NewIdentity()
	}
	if out.ID == "" {
		out.ID = out.Identity.NewPeerID()
	}
	if out.Meta.Host == "" {
		out.Meta.Host, _ = os.Hostname()
	}
	return out
}
