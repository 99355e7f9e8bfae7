package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/paf-mesh/paf-mesh/discovery"
	"github.com/paf-mesh/paf-mesh/internal/keys"
	"github.com/paf-mesh/paf-mesh/internal/statedir"
	"github.com/paf-mesh/paf-mesh/mcpserver"
	"github.com/paf-mesh/paf-mesh/mesh"
	"github.com/paf-mesh/paf-mesh/node/control"
	"github.com/paf-mesh/paf-mesh/relay"
)

// Node is one running peer: its state slot, keys, mesh membership, local
// rendezvous entry and control socket, wired together. This is the only
// place the packages meet.
type Node struct {
	cfg      Config
	log      *slog.Logger
	slot     *statedir.Slot
	keys     *keys.Keys
	identity *keys.Identity // this user's on this machine (the state dir's identity file)
	// relayReady is n.relay once it exists, for the mesh's callbacks (which may run before).
	relayReady atomic.Pointer[relay.Relay]
	peer       *mesh.Peer
	relay      *relay.Relay
	local      *discovery.Local
	advert     *discovery.Advert
	// watchStop ends the run dir's watch (discovery.Local.Watch), after the peer.
	watchStop chan struct{}
	ctl       *control.Server
	mdns      atomic.Pointer[discovery.MDNS]
	events    chan mesh.Event
	// lost receives the name this peer lost to a concurrent claim (capacity
	// 1; later losses are dropped): serve stops on it, since a headless peer
	// cannot pick another name by itself.
	lost chan mesh.Event
	// lostSubs are the event subscribers of Backend.Subscribe (MCP sessions): they are
	// told a loss when this peer could not take its name back (reportLost).
	lostMu   sync.Mutex
	lostSubs map[chan<- mesh.Event]struct{}
	// yielded is closed when a brief peer gives its name up to a long-lived
	// peer that wants it (claim.go).
	yielded   chan struct{}
	yieldOnce sync.Once
	bg        sync.WaitGroup // reclaims in progress (claim.go)
	cancelSub func()         // ends the subscription to events
	cancel    func()
	done      chan struct{}
	closeOnce sync.Once
}

// New starts a peer: it opens a state slot (unless Brief), joins the mesh
// through the run dir, the seeds and mDNS, claims cfg.Name, serves its
// control socket and advertises itself in the run dir (unless Brief), and
// adopts what dead peers left in the state dir. On error everything started
// is closed again. ctx bounds the start (the name claim may wait up to
// ClaimPatience), not the peer's life: Close ends that.
func New(ctx context.Context, cfg Config) (_ *Node, err error) {
	if cfg.StateDir == "" || cfg.RunDir == "" {
		return nil, errors.New("node: Config.StateDir and Config.RunDir are required")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := cfg.withDefaults()
	log := s.Logger
	n := &Node{cfg: s, log: log, done: make(chan struct{}), lost: make(chan mesh.Event, 1), yielded: make(chan struct{})}
	defer func() {
		if err != nil {
			n.Close() // whatever was started, in reverse order
		}
	}()
	// A short-lived helper peer keeps no state of its own: it must not
	// adopt (and then abandon) what a dead peer left in the state dir.
	if !s.Brief {
		if n.slot, err = statedir.Open(s.StateDir); err != nil {
			return nil, err
		}
	} else if err = os.MkdirAll(s.StateDir, 0o700); err != nil {
		return nil, fmt.Errorf("state dir %s: %w; fix its permissions or choose another with --state-dir / PAF_STATE_DIR", s.StateDir, err)
	}
	if n.local, err = discovery.NewLocal(s.RunDir, log); err != nil {
		return nil, fmt.Errorf("run dir: %w; choose another with --run-dir / PAF_RUN_DIR", err)
	}
	n.keys = s.Keys
	if n.keys == nil {
		if n.keys, err = keys.LocalKeys(s.RunDir); err != nil {
			return nil, err
		}
	}
	if !s.Brief {
		removeStaleSockets(n.local)
	}
	static := discovery.Static(s.Join)

	if n.identity, err = keys.LoadIdentity(s.StateDir); err != nil {
		return nil, fmt.Errorf("%w; fix it or choose another state dir with --state-dir / PAF_STATE_DIR", err)
	}

	mc := mesh.DefaultLocalConfig()
	if s.Secure() {
		mc = mesh.DefaultLANConfig()
	}
	mc.Logger = log
	mc.Identity = n.identity
	mc.ConfirmClaim = func(ctx context.Context, m mesh.Member) bool {
		r := n.relayReady.Load()
		return r != nil && r.ProveLive(ctx, m) == nil
	}
	if n.slot != nil {
		mc.StateDir = n.slot.Dir()
	}
	mc.ForwardTTL = s.ForwardTTL
	mc.Memberlist.BindAddr = s.Bind.Addr().String()
	mc.Memberlist.BindPort = int(s.Bind.Port())
	mc.Memberlist.AdvertisePort = int(s.Bind.Port())
	mc.Memberlist.SecretKey = n.keys.Gossip
	mc.Meta = mesh.Meta{Secure: s.Secure(), Version: s.Version, Transient: s.Brief}
	mcpserver.SetMetaDescription(&mc.Meta, s.Description)
	if !s.Brief {
		// A session gossips on after its claim returns: its start need not wait for every
		// retransmission of the claim (mesh.Config.AnnounceWait). A brief peer exits soon
		// after, so its claim must have left first: it keeps the default.
		mc.AnnounceWait = time.Millisecond
	}
	var localNames atomic.Pointer[map[string]string] // the run-dir names of the last Discover
	mc.Discover = func() []string {
		dctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		sources := discovery.Multi(n.local, static)
		if m := n.mdns.Load(); m != nil {
			sources = discovery.Multi(n.local, m, static)
		}
		cands, err := sources.Candidates(dctx)
		if err != nil {
			log.Debug("discovery", "err", err)
		}
		addrs := make([]string, 0, len(cands))
		names := make(map[string]string)
		for _, c := range cands {
			addrs = append(addrs, c.Addr)
			if c.Source == discovery.SourceLocal && c.ID != "" {
				names[c.ID] = c.Name
			}
		}
		localNames.Store(&names)
		return addrs
	}
	// A peer of this machine that died (its run-dir entry no longer held) is failed at once,
	// not after failure detection: a restarted session takes its name back within a second.
	mc.Gone = n.local.Gone
	if !s.Brief && !s.Secure() {
		// Same machine only (open mode): read the run dir when it changes, not every
		// second. In secure mode mDNS answers still need the LAN preset's polling.
		n.watchStop = make(chan struct{})
		if w, werr := n.local.Watch(n.watchStop); werr == nil {
			mc.DiscoverWake, mc.DiscoverInterval = w.C, mesh.WatchedDiscoverInterval
			// A wake checks the peers whose entries were closed (an exit, a crash), not all.
			mc.WakeGone = w.Closed
			// The names read by the same round's Discover (mesh asks Names right after it):
			// the run dir is read once per round.
			mc.Names = func() map[string]string {
				if m := localNames.Load(); m != nil {
					return *m
				}
				return nil
			}
		} else {
			log.Debug("run dir not watched; reading it every second", "err", werr)
		}
	}
	if n.peer, err = mesh.New(mc); err != nil {
		return nil, err
	}
	n.local.Self = n.peer.ID()

	rc := relay.DefaultConfig()
	rc.Dir, rc.Key, rc.StateRoot, rc.Logger = n.peer, n.keys.Relay, s.StateDir, log
	rc.ListenAddr = net.JoinHostPort(s.Bind.Addr().String(), "0")
	rc.MaxBody, rc.LargeBody, rc.StoreTTL, rc.Replicas = s.MaxBody, s.FileOver, s.StoreTTL, s.Replicas
	rc.Rate, rc.Burst = rate.Limit(s.Rate), int(2*s.Rate)
	rc.Now = s.Clock
	if n.slot != nil {
		rc.HolderDir = n.slot.Dir() // the relay announces what it holds itself (relay.Announce)
	}
	if n.relay, err = relay.New(rc); err != nil {
		return nil, err
	}
	n.relayReady.Store(n.relay)
	relayAddr := advertisable(n.relay.Addr(), n.peer.Addr())
	if err = n.peer.SetMeta(ctx, func(m *mesh.Meta) { n.relay.Announce(m, relayAddr) }); err != nil {
		return nil, err
	}
	if s.MDNS && !s.Brief {
		if err = n.startMDNS(); err != nil {
			return nil, err
		}
		n.awaitMDNS(ctx)
	}

	// Learn the mesh before claiming, so a taken name is refused at once.
	n.peer.Discover()
	if len(s.Join) > 0 && len(n.peer.Members()) <= 1 {
		log.Warn("no seed answered; running alone until one does", "seeds", s.Join)
	}
	// Subscribe before claiming: a concurrent claim lost during the start
	// is then handled as any other (watch starts below).
	n.events = make(chan mesh.Event, 256)
	n.cancelSub = n.peer.Subscribe(n.events)
	if s.Name != "" {
		if err = n.claimPatiently(ctx, s.Name); err != nil {
			return nil, err
		}
	}

	if !s.Brief {
		sock := filepath.Join(s.RunDir, n.peer.ID()+".sock")
		if n.ctl, err = control.Listen(sock, (*controlHandler)(n), log); err != nil {
			return nil, err
		}
		if n.advert, err = n.local.Advertise(n.entry()); err != nil {
			return nil, err
		}
	}
	if n.slot != nil {
		n.adoptOrphans()
	}
	evctx, cancel := context.WithCancel(context.Background())
	n.cancel = func() { cancel(); n.cancelSub() }
	go n.watch(evctx)
	return n, nil
}

// ID is this peer's id in the mesh.
func (n *Node) ID() string { return n.peer.ID() }

// Name is the name this peer holds, "" for none.
func (n *Node) Name() string { return n.peer.Name() }

// Addr is this peer's gossip address.
func (n *Node) Addr() string { return n.peer.Addr() }

// StateDir is this peer's own state slot, "" for a brief peer.
func (n *Node) StateDir() string {
	if n.slot == nil {
		return ""
	}
	return n.slot.Dir()
}

// ControlPath is this peer's control socket, "" for a brief peer.
func (n *Node) ControlPath() string {
	if n.ctl == nil {
		return ""
	}
	return n.ctl.Path()
}

// Mode is "secure" or "open".
func (n *Node) Mode() string { return n.cfg.Mode() }

// Lost delivers the name this peer lost to a peer that claimed it at the
// same moment and won (at most one event is kept until read).
func (n *Node) Lost() <-chan mesh.Event { return n.lost }

// Member is the peer id as this peer knows it.
func (n *Node) Member(id string) (mesh.Member, bool) { return n.peer.Member(id) }

// Members is every peer known, this one included.
func (n *Node) Members() []mesh.Member { return n.peer.Members() }

// Forwards is the renames in force.
func (n *Node) Forwards() []mesh.Forward { return n.peer.Forwards() }

// ClaimAndCollect claims name for an agent session (waiting, as New does,
// up to ClaimPatience for a holder that stopped answering), then
// waits briefly for the holders of messages stored for it to hand them over,
// so that the session's first look at its inbox (the unread count that
// paf_register reports, a first paf_check) includes them. Anything not handed
// over in that time still arrives, a moment later.
func (n *Node) ClaimAndCollect(ctx context.Context, name string) error {
	if err := n.claimPatiently(ctx, name); err != nil {
		return err
	}
	cctx, cancel := context.WithTimeout(ctx, CollectPatience)
	defer cancel()
	if err := n.relay.Collect(cctx, n.peer.Name()); err != nil {
		n.log.Info("stored messages still on their way after taking the name", "name", name, "err", err)
	}
	return nil
}

func (n *Node) entry() discovery.Entry {
	e := discovery.Entry{ID: n.peer.ID(), Addr: n.peer.Addr(), Name: n.peer.Name(), PID: os.Getpid()}
	if n.ctl != nil {
		e.Control = n.ctl.Path()
	}
	return e
}

// advertisable turns a listen address on an unspecified IP (0.0.0.0:port)
// into one others can dial, using the IP memberlist advertises for gossip.
func advertisable(listen, gossip string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return listen
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		if ghost, _, err := net.SplitHostPort(gossip); err == nil {
			return net.JoinHostPort(ghost, port)
		}
	}
	return listen
}

// startMDNS announces this peer on the LAN and browses for others of the
// same mesh (same secret), on the interfaces the bind address allows: the
// one that has it, or every multicast interface that is up when bound to
// all addresses. Never on loopback: the run dir covers this machine.
func (n *Node) startMDNS() error {
	ifaces, err := mdnsInterfaces(n.cfg.Bind.Addr())
	if err != nil {
		return err
	}
	if len(ifaces) == 0 {
		n.log.Warn("mDNS: no multicast interface for the bind address; peers on the LAN will not find this one by themselves (use --join)", "bind", n.cfg.Bind)
		return nil
	}
	m, err := discovery.NewMDNS(discovery.MDNSConfig{
		Interfaces: ifaces, MeshID: n.keys.MeshID, PeerID: n.peer.ID(), Addr: n.peer.Addr(),
		Version: n.cfg.Version, Logger: n.log,
	})
	if err != nil {
		return fmt.Errorf("mDNS: %w", err)
	}
	n.mdns.Store(m)
	names := make([]string, len(ifaces))
	for i, ifc := range ifaces {
		names[i] = ifc.Name
	}
	n.log.Info("mDNS: announcing and browsing", "interfaces", names, "mesh", n.keys.MeshID)
	return nil
}

// awaitMDNS gives mDNS a moment to hear from peers already on the LAN, so
// that the first discovery round (and the name claim after it) sees them: a
// name held on another host is then refused at start instead of lost later.
// The first peer of a mesh waits the whole second, once.
func (n *Node) awaitMDNS(ctx context.Context) {
	m := n.mdns.Load()
	if m == nil {
		return
	}
	deadline := time.Now().Add(time.Second)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if c, _ := m.Candidates(ctx); len(c) > 0 {
			// Others answer within milliseconds of each other; wait a
			// little for the rest before the first discovery round.
			time.Sleep(100 * time.Millisecond)
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func mdnsInterfaces(bind netip.Addr) ([]net.Interface, error) {
	all, err := net.Interfaces()
	if err != nil {
		return nil, fmt.Errorf("mDNS: list interfaces: %w", err)
	}
	var out []net.Interface
	for _, ifc := range all {
		if ifc.Flags&net.FlagUp == 0 || ifc.Flags&net.FlagMulticast == 0 || ifc.Flags&net.FlagLoopback != 0 {
			continue
		}
		if bind.IsUnspecified() {
			out = append(out, ifc)
			continue
		}
		addrs, _ := ifc.Addrs()
		for _, a := range addrs {
			if p, err := netip.ParsePrefix(a.String()); err == nil && p.Addr().Unmap() == bind.Unmap() {
				out = append(out, ifc)
				break
			}
		}
	}
	return out, nil
}

// removeStaleSockets deletes control sockets left in the run dir by peers that
// died (their rendezvous entries are gone: discovery removes those). A
// socket younger than a minute is spared: its peer may be starting, between
// listening and advertising.
func removeStaleSockets(local *discovery.Local) {
	entries, err := local.Entries()
	if err != nil {
		return
	}
	live := map[string]bool{}
	for _, e := range entries {
		live[e.ID+".sock"] = true
	}
	socks, _ := filepath.Glob(filepath.Join(local.Dir(), "*.sock"))
	for _, p := range socks {
		if st, err := os.Stat(p); err == nil && !live[filepath.Base(p)] && time.Since(st.ModTime()) > time.Minute {
			_ = os.Remove(p)
		}
	}
}

// How often a peer looks for orphaned state slots (adoptOrphans). A slot
// becomes an orphan when its peer's process lets go of its lock, a moment
// after the peer left the mesh (or, for a crash, at once): peers that stop
// while others start (a total restart) free theirs after the new ones looked
// at start. So a peer looks soon after its start and after each peer it sees
// leave or fail (after adoptEvery, then twice as long after each look, for
// adoptBurst: 0.25, 0.75, 1.75, 3.75 s ... 31.75 s; every 250 ms for the whole
// burst was a quarter of an idle peer's wake-ups, issue 18), and otherwise once
// a minute, in case it missed one. A look is a directory read and a lock
// attempt per slot.
const (
	adoptIdle  = time.Minute
	adoptEvery = 250 * time.Millisecond
	adoptBurst = 30 * time.Second
)

// adoptOrphans takes over the held messages of peers that died (their state
// slots are unlocked) and removes their slots, so that messages survive every
// session closing. It runs at start and then as the constants above say: a
// peer that dies while others run is adopted by one of them within a moment.
func (n *Node) adoptOrphans() {
	orphans, err := statedir.Orphans(n.cfg.StateDir)
	if err != nil {
		n.log.Debug("look for orphaned state", "err", err)
		return
	}
	for _, dir := range orphans {
		slot, err := statedir.LockOrphan(dir)
		if err != nil {
			continue // another live peer got it first
		}
		held := filepath.Join(dir, "held.db")
		if _, err := os.Stat(held); err == nil {
			got, err := n.relay.AdoptHeld(held)
			if err != nil {
				n.log.Warn("cannot adopt held messages of a dead peer; leaving them in place", "dir", dir, "err", err)
				slot.Close()
				continue
			}
			if got > 0 {
				n.log.Info("adopted messages held by a peer that is gone", "count", got, "from", dir)
			}
		}
		// Unlink the lock first, so nobody adopts what is being removed.
		_ = os.Remove(filepath.Join(dir, "lock"))
		slot.Close()
		_ = os.RemoveAll(dir)
	}
}

// watch logs what a user wants to know about and keeps the rendezvous entry's
// informational name current.
func (n *Node) watch(ctx context.Context) {
	defer close(n.done)
	adopt := time.NewTicker(adoptIdle)
	defer adopt.Stop()
	// soon fires after wait, which doubles from adoptEvery after each look until adoptBurst
	// has passed since the burst began; soonC is nil when no burst is on.
	soon := time.NewTimer(time.Hour)
	soon.Stop()
	defer soon.Stop()
	var soonC <-chan time.Time
	var burstEnd time.Time
	wait := adoptEvery
	burst := func() {
		if n.slot == nil {
			return
		}
		burstEnd, wait = time.Now().Add(adoptBurst), adoptEvery
		soon.Reset(wait)
		soonC = soon.C
	}
	burst()
	for {
		select {
		case <-ctx.Done():
			return
		case <-adopt.C:
			if n.slot != nil {
				n.adoptOrphans()
			}
		case <-soonC:
			n.adoptOrphans()
			if time.Now().After(burstEnd) {
				soonC = nil
				break
			}
			wait *= 2
			soon.Reset(wait)
		case e := <-n.events:
			if e.Type == mesh.EventPeerLeft || e.Type == mesh.EventPeerFailed {
				burst()
			}
			switch e.Type {
			case mesh.EventNameLost:
				n.relay.CloseInbox(e.Name) // the winner's process may need the file
				if n.reclaims(e) {
					n.log.Info("a brief peer (a shell command) claimed our name at the same moment; taking it back", "name", e.Name, "holder", e.PeerID)
					n.bg.Add(1)
					go n.reclaim(ctx, e)
					break
				}
				n.log.Error("lost our name to another peer that claimed it at the same time", "name", e.Name, "owner", e.PeerID)
				n.reportLost(e)
			case mesh.EventPeerJoined, mesh.EventPeerLeft, mesh.EventPeerFailed:
				n.log.Info(e.Type.String(), "peer", e.PeerID)
			case mesh.EventNameClaimed, mesh.EventNameReleased, mesh.EventNameRenamed:
				n.log.Info(e.Type.String(), "name", e.Name, "peer", e.PeerID, "to", e.To)
			}
			n.yieldIfWanted(e)
			// Rewrite our rendezvous entry only when our own name changed:
			// readers scanning the run dir retry around a rewrite, but there
			// is no need to make them.
			ours := e.PeerID == n.peer.ID() || e.Type == mesh.EventNameLost
			if n.advert != nil && ours && (e.Type == mesh.EventNameClaimed || e.Type == mesh.EventNameReleased || e.Type == mesh.EventNameLost || e.Type == mesh.EventNameRenamed) {
				if err := n.advert.Update(n.entry()); err != nil {
					n.log.Debug("update rendezvous entry", "err", err)
				}
			}
		}
	}
}

// Close leaves the mesh and releases everything, in reverse order of start,
// waiting for the goroutines the peer started. It is idempotent.
func (n *Node) Close() {
	n.closeOnce.Do(n.close)
}

func (n *Node) close() {
	if n.cancel != nil {
		n.cancel()
		<-n.done
		n.bg.Wait()
	} else if n.cancelSub != nil {
		n.cancelSub()
	}
	if m := n.mdns.Load(); m != nil {
		m.Close()
	}
	if n.advert != nil {
		n.advert.Close()
	}
	if n.ctl != nil {
		n.ctl.Close()
	}
	// Leave the mesh first, so senders stop routing here, then let the relay
	// finish what is in flight.
	if n.peer != nil {
		n.peer.Close()
	}
	if n.watchStop != nil {
		close(n.watchStop)
	}
	if n.relay != nil {
		n.relay.Close()
	}
	if n.slot != nil {
		n.slot.Close()
	}
}
