package node

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/paf-mesh/paf-mesh/internal/keys"
	"github.com/paf-mesh/paf-mesh/internal/owner"
	"github.com/paf-mesh/paf-mesh/node/control"
)

// The defaults of every setting, in one place: Config's presets use them,
// and cmd/paf-peer reads them for its flag help and its environment parsing,
// so the help can never tell another figure than the peer uses.
const (
	// DefaultOpenBind is the gossip bind address in open mode: loopback,
	// because without a shared secret the mesh must never leave the machine;
	// port 0, because several peers share one machine.
	DefaultOpenBind = "127.0.0.1:0"
	// DefaultSecureBind is the bind address in secure mode: every interface,
	// so peers on the LAN can reach this one (the secret authenticates them).
	DefaultSecureBind = "0.0.0.0:0"

	// DefaultMaxBody is the largest message body sent or accepted (SPEC
	// section 3): a whole source file or log excerpt fits; anything bigger
	// belongs in a shared file, not a message.
	DefaultMaxBody = 8 << 20
	// DefaultFileOver: received bodies above this are saved to a file and
	// shown as a preview with the path, so one large message does not flood
	// an agent's context (SPEC section 3).
	DefaultFileOver = 10 << 10
	// DefaultForwardTTL is how long an old name forwards after a rename: long
	// enough for the replies of a working session, short enough that the old
	// name is soon free for someone else (SPEC section 2).
	DefaultForwardTTL = 2 * time.Hour
	// DefaultStoreTTL is how long a message for an offline name is kept:
	// "a session opened days later" still finds it (SPEC section 3).
	DefaultStoreTTL = 30 * 24 * time.Hour
	// DefaultReplicas is how many peers keep each stored message: any two of
	// them may close and the message survives.
	DefaultReplicas = 3
	// DefaultRate is the messages per second accepted from one sending identity
	// (bursts of twice that; an address gets relay.AddrFactor times as much; see
	// relay.Config.Rate: every peer of one user on one machine shares its
	// identity): far above the pace of a user's agents together, low enough
	// that a runaway loop cannot fill an inbox or a disk.
	DefaultRate = 1000
	// DefaultConversationIdle ends a conversation quiet for this long (SPEC
	// section 4), so a forgotten one does not keep a session busy for ever.
	DefaultConversationIdle = 60 * time.Minute

	// ClaimPatience bounds how long a peer starting under a name waits for
	// the mesh to release it from a holder that stopped without leaving (a
	// session restarted after a crash): failure detection and the name's
	// grace period take about 6 s on one machine and 11-13 s on a LAN of a
	// few hosts, more when the mesh is large or the machines loaded.
	ClaimPatience = 30 * time.Second
	// CollectPatience bounds how long a session that has just taken a name
	// waits for the messages other peers kept for it.
	CollectPatience = 2 * time.Second
	// BriefCollectPatience bounds how long a brief peer (check, listen)
	// waits for holders to hand over what they keep for its name: it has no
	// later moment to show what arrives after it leaves.
	BriefCollectPatience = 5 * time.Second
)

// Bounds of the settings: wide enough for any real use. cmd/paf-peer refuses
// values outside them with a message that says what is allowed.
const (
	MinBody      = 1 << 10
	MaxBodyLimit = control.MaxBody // a body must fit in one control request
	MaxReplicas  = 16
	MaxRate      = 1e6

	MinForwardTTL       = time.Minute
	MaxForwardTTL       = 30 * 24 * time.Hour
	MinStoreTTL         = time.Hour
	MaxStoreTTL         = 365 * 24 * time.Hour
	MinConversationIdle = time.Minute
	MaxConversationIdle = 7 * 24 * time.Hour
)

// Config configures one peer. DefaultConfig gives the defaults; New treats a
// zero field as its default too, so a test sets only what it cares about.
type Config struct {
	// Name is claimed at start ("" for none). A name held by a live peer
	// elsewhere makes New fail with mesh.ErrNameTaken; one held by a peer
	// that stopped answering, or (for a peer that is not Brief) by a Brief
	// peer, which is asked to give it up, is waited for, up to ClaimPatience.
	Name string
	// Description is what this peer is for, shown to others.
	Description string
	// Clock is the clock of the times messages carry (relay.Config.Now); nil is time.Now.
	// Tests skew one peer's clock with it.
	Clock func() time.Time

	// Keys are the mesh's keys from the shared secret: secure mode. Nil is
	// open mode, with keys kept in the run dir (keys.LocalKeys), so every
	// peer of this user on this machine shares them.
	Keys *keys.Keys
	// StateDir holds per-peer state (held messages, inboxes, saved bodies),
	// one locked slot per peer. Required: there is no safe shared default
	// for a library (cmd/paf-peer derives $XDG_STATE_HOME/paf).
	StateDir string
	// RunDir is the local rendezvous directory: every peer of this user on
	// this machine advertises itself and its control socket there. Required.
	RunDir string
	// Bind is the gossip address; its IP is used for messages too (port 0).
	// The zero value means DefaultOpenBind (DefaultSecureBind with Keys).
	Bind netip.AddrPort
	// Join are seed peers (host:port) to join besides those discovered.
	Join []string
	// MDNS announces and browses on the LAN. Only in secure mode; never on
	// loopback (the run dir covers this machine).
	MDNS bool

	// Brief makes a short-lived helper peer (a shell command acting as a
	// name): it keeps no state slot (so it never adopts, then abandons,
	// what a dead peer left), does not advertise itself in the run dir,
	// serves no control socket, and is marked transient in the mesh.
	Brief bool

	// MaxBody, FileOver, ForwardTTL, StoreTTL, Replicas and Rate: see the
	// Default constants of the same names.
	MaxBody    int
	FileOver   int
	ForwardTTL time.Duration
	StoreTTL   time.Duration
	Replicas   int
	Rate       float64
	// ConversationIdle is for the MCP server (see DefaultConversationIdle).
	ConversationIdle time.Duration

	// Version is announced in the mesh and over mDNS.
	Version string
	// Logger receives the peer's logs; nil discards them. It must never
	// write to the MCP channel.
	Logger *slog.Logger
}

// DefaultConfig is the configuration of an open-mode peer with every
// default filled in; StateDir and RunDir remain to be set.
func DefaultConfig() Config {
	return Config{
		Bind:             netip.MustParseAddrPort(DefaultOpenBind),
		MaxBody:          DefaultMaxBody,
		FileOver:         DefaultFileOver,
		ForwardTTL:       DefaultForwardTTL,
		StoreTTL:         DefaultStoreTTL,
		Replicas:         DefaultReplicas,
		Rate:             DefaultRate,
		ConversationIdle: DefaultConversationIdle,
	}
}

// Secure reports whether the peer runs in secure mode (a shared secret).
func (c *Config) Secure() bool { return c.Keys != nil }

// Mode is "secure" or "open", as status reports it.
func (c *Config) Mode() string {
	if c.Secure() {
		return "secure"
	}
	return "open"
}

// withDefaults fills the zero fields.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if !c.Bind.IsValid() {
		c.Bind = d.Bind
		if c.Secure() {
			c.Bind = netip.MustParseAddrPort(DefaultSecureBind)
		}
	}
	c.MaxBody, c.FileOver = cmp.Or(c.MaxBody, d.MaxBody), cmp.Or(c.FileOver, d.FileOver)
	c.ForwardTTL, c.StoreTTL = cmp.Or(c.ForwardTTL, d.ForwardTTL), cmp.Or(c.StoreTTL, d.StoreTTL)
	c.Replicas, c.Rate = cmp.Or(c.Replicas, d.Replicas), cmp.Or(c.Rate, d.Rate)
	c.ConversationIdle = cmp.Or(c.ConversationIdle, d.ConversationIdle)
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Validate checks what open mode forbids: without a shared secret nothing
// may reach beyond this machine (SPEC section 7), so the bind address and
// every seed must be on loopback and mDNS must be off. New refuses such a
// Config too; each error says what to do.
func (c *Config) Validate() error {
	if c.Secure() {
		return nil
	}
	if c.Bind.IsValid() && !c.Bind.Addr().IsLoopback() {
		return fmt.Errorf("bind address %s would expose the mesh beyond this machine, which needs a shared secret: set PAF_SECRET (or --secret-file), or bind to 127.0.0.1", c.Bind)
	}
	for _, j := range c.Join {
		if !isLoopbackHostPort(j) {
			return fmt.Errorf("seed %s is not on this machine; joining peers on other hosts needs a shared secret: set PAF_SECRET (or --secret-file)", j)
		}
	}
	if c.MDNS {
		return errors.New("mDNS on the LAN needs a shared secret: set PAF_SECRET (or --secret-file), or use --mdns off")
	}
	return nil
}

func isLoopbackHostPort(hp string) bool {
	host, _, err := net.SplitHostPort(hp)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// DefaultStateDir is the state dir when none is given: $XDG_STATE_HOME/paf,
// else ~/.local/state/paf (SPEC section 6). getenv is the environment: every
// setting comes through it, never from os.UserHomeDir.
func DefaultStateDir(getenv func(string) string) (string, error) {
	base := getenv("XDG_STATE_HOME")
	if base == "" {
		home := getenv("HOME")
		if home == "" {
			return "", errors.New("no state dir: $HOME is not set; give one with --state-dir or PAF_STATE_DIR")
		}
		base = filepath.Join(home, ".local", "state")
	}
	return filepath.Join(base, "paf"), nil
}

// DefaultRunDir is the run dir when none is given. It depends on the user id
// alone, never on environment variables: a client may strip them (Codex
// passes its MCP servers only HOME, LANG, PATH, SHELL and TERM), and every
// session of one user on one machine must meet in the same directory. It is
// <runtime>/<uid>/paf where the system keeps a runtime directory per user
// (/run/user/<uid>, what systemd's XDG_RUNTIME_DIR names) and it is the
// user's, else /tmp/paf-<uid> (discovery refuses it if another user made it).
func DefaultRunDir() string {
	uid := os.Geteuid()
	rt := filepath.Join(userRuntimeBase, strconv.Itoa(uid))
	if fi, err := os.Stat(rt); err == nil && fi.IsDir() && owner.Check(rt, fi) == nil {
		return filepath.Join(rt, "paf")
	}
	return filepath.Join("/tmp", "paf-"+strconv.Itoa(uid))
}

// userRuntimeBase holds the per-user runtime directories; a variable for tests.
var userRuntimeBase = "/run/user"

// ParseBind reads a bind address as ip:port, the form memberlist needs:
// "localhost" is 127.0.0.1, an IPv4-mapped IPv6 address its IPv4 form, and
// port 0 any free port. The error names the input and shows the form.
func ParseBind(s string) (netip.AddrPort, error) {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("bind address %q: want ip:port, e.g. 127.0.0.1:0 or 0.0.0.0:7946", s)
	}
	if host == "localhost" {
		host = "127.0.0.1"
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("bind address %q: %q is not an IP address (want e.g. 127.0.0.1:0)", s, host)
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("bind address %q: port %q is not 0-65535", s, port)
	}
	return netip.AddrPortFrom(ip.Unmap(), uint16(p)), nil
}
