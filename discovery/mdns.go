package discovery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/grandcat/zeroconf"
)

const (
	// SourceMDNS names candidates found on the LAN by [MDNS].
	SourceMDNS = "mdns"
	// MDNSService is the DNS-SD service type paf-mesh peers announce and browse.
	MDNSService = "_paf._tcp"

	// DefaultMDNSRefresh is how often [MDNS] starts a fresh browse. zeroconf reports each
	// instance once per browse, so a fresh browse is the only way to see that a peer is still
	// there. Each browse costs one query per peer and one answer per peer per query (plus
	// zeroconf's own follow-up queries, 4 s and then about 10 s into a browse); 20 s keeps
	// that small on a LAN of a few dozen peers while stale entries go within about a minute.
	DefaultMDNSRefresh = 20 * time.Second
	// DefaultMDNSExpiry is how long an entry stays a candidate after it was last seen: three
	// missed browses and some slack, so one lost packet does not drop a live peer. The mesh
	// joins candidates one at a time, so a dead address kept much longer would slow it down.
	DefaultMDNSExpiry = 70 * time.Second

	mdnsDomain = "local."
	// maxMDNSPeers bounds the entries kept. Anyone on the LAN can announce the mesh id (it is
	// public), so without a bound a flood of fake peers could take all memory; past it, the
	// least recently seen entry makes room.
	maxMDNSPeers = 1024
	// maxMDNSAddrs bounds the addresses kept per peer.
	maxMDNSAddrs = 16
	// maxMDNSNoted bounds the set of announcers already logged about; past it, the set starts
	// over, so a flood of names costs at most a burst of repeated log lines.
	maxMDNSNoted = 1024
	// mdnsRetryMin and the refresh interval bound the wait before retrying a failed browse.
	mdnsRetryMin = 500 * time.Millisecond
)

// ErrMDNSConfig is wrapped by [NewMDNS]'s errors about its configuration.
var ErrMDNSConfig = errors.New("discovery: bad mdns config")

// MDNSConfig configures [NewMDNS]. Interfaces, MeshID, PeerID and Addr are required.
type MDNSConfig struct {
	// Interfaces are the only interfaces mDNS uses, to announce and to browse. Required: with
	// none, zeroconf would use every multicast interface of the machine, which a peer must
	// never do by accident (tests must never touch real interfaces at all). Each must exist in
	// the network namespace NewMDNS runs in and have multicast enabled.
	Interfaces []net.Interface
	// MeshID is announced as TXT "mesh=<id>" (16 lowercase hex, from internal/keys); peers
	// announcing another mesh id are ignored and counted in [MDNSStats.ForeignMesh].
	MeshID string
	// PeerID is announced as TXT "id=<id>" and is the DNS-SD instance and host name, so it
	// must be 1-63 letters, digits, '-' or '_'. Our own announcement is ignored by this id.
	PeerID string
	// Addr is our gossip address, host:port. The host must be an IP address; an unspecified
	// one (0.0.0.0 or ::) announces the addresses of Interfaces of that family (IPv4 for
	// 0.0.0.0, both for ::; IPv6 link-local ones are left out, as they need a zone). The
	// port must be the bound port, not 0.
	Addr string
	// Version is announced as TXT "v=<version>", informational; "" leaves it out.
	Version string
	// Logger receives what mDNS sees and what goes wrong; nil discards.
	Logger *slog.Logger

	// Refresh is how often a fresh browse starts; 0 means DefaultMDNSRefresh.
	Refresh time.Duration
	// Expiry is how long an entry not seen again stays a candidate; 0 means
	// DefaultMDNSExpiry. It is raised to twice Refresh if below, so that a live peer is not
	// dropped between two browses. An entry also expires when its DNS TTL runs out, if sooner.
	Expiry time.Duration
}

// MDNSStats counts announcements received. Each answer counts, so a peer that stays around is
// counted again at every browse.
type MDNSStats struct {
	Seen        uint64 // announcements of other peers of our mesh, accepted
	ForeignMesh uint64 // announcements ignored because they carry another mesh id
	Malformed   uint64 // announcements ignored because their TXT record, port or addresses are unusable
	Peers       int    // peers currently known (not expired)
}

// MDNS announces this peer on the LAN with mDNS/DNS-SD and browses for the other peers of its
// mesh. It is a [Source] of their gossip addresses.
//
// It announces with zeroconf's RegisterProxy (instance and host name = peer id, addresses from
// Addr) and browses continuously in the background: a browse is restarted every Refresh, the
// new one started before the old one stops so that no announcement falls in a gap, and a
// browse that ends by itself is restarted at once. A peer that starts later is found at once,
// without waiting for a refresh: its first query makes every responder answer by multicast,
// its own included, and its announcements follow. Entries that are not seen again expire;
// whether a peer is alive is memberlist's business, not this one's.
//
// All sockets are opened in the network namespace NewMDNS was called in, including those of
// later browses, and only on Interfaces. Its methods may be called concurrently.
type MDNS struct {
	cfg    MDNSConfig
	log    *slog.Logger
	ifaces []net.Interface
	ipType zeroconf.IPType
	server *zeroconf.Server
	ns     *netnsPin

	closing   chan struct{}
	closeOnce sync.Once
	wg        sync.WaitGroup // the browse loop and the drains of its browses

	mu    sync.Mutex // guards the fields below
	peers map[string]*mdnsPeer
	noted map[string]struct{} // what noteOnceLocked has logged at its level already
	stats MDNSStats
}

// mdnsPeer is what we know of one other peer of our mesh.
type mdnsPeer struct {
	addrs   []string // host:port, in the order announced
	seen    time.Time
	expires time.Time
}

// NewMDNS checks cfg, starts announcing this peer and starts browsing. Call it in the network
// namespace whose interfaces cfg names (tests call it inside netns.Host.Run).
func NewMDNS(cfg MDNSConfig) (*MDNS, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Refresh <= 0 {
		cfg.Refresh = DefaultMDNSRefresh
	}
	if cfg.Expiry <= 0 {
		cfg.Expiry = DefaultMDNSExpiry
	}
	cfg.Expiry = max(cfg.Expiry, 2*cfg.Refresh)
	ifaces, err := checkInterfaces(cfg.Interfaces, cfg.Logger)
	if err != nil {
		return nil, err
	}
	self := mdnsEntry{PeerID: cfg.PeerID, MeshID: cfg.MeshID, Version: cfg.Version}
	if err := checkPeerID(self.PeerID); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMDNSConfig, err)
	}
	if err := checkMeshID(self.MeshID); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMDNSConfig, err)
	}
	if err := checkVersion(self.Version); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMDNSConfig, err)
	}
	ips, port, err := announceAddrs(cfg.Addr, ifaces)
	if err != nil {
		return nil, fmt.Errorf("%w: addr %q: %v", ErrMDNSConfig, cfg.Addr, err)
	}
	ns, err := pinNetns()
	if err != nil {
		// Only tests switch namespaces; a process without /proc just runs where it is.
		cfg.Logger.Debug("mdns: cannot pin the network namespace; browsing where the browse loop runs", "err", err)
		ns = nil
	}

	m := &MDNS{
		cfg:     cfg,
		log:     cfg.Logger,
		ifaces:  ifaces,
		ipType:  ipTypeOf(ips),
		ns:      ns,
		closing: make(chan struct{}),
		peers:   make(map[string]*mdnsPeer),
		noted:   make(map[string]struct{}),
	}
	ipStrings := make([]string, len(ips))
	for i, ip := range ips {
		ipStrings[i] = ip.String()
	}
	// RegisterProxy, not Register: Register skips loopback addresses and names the host
	// after os.Hostname, which peers on one machine share.
	err = m.ns.do(func() (err error) {
		m.server, err = zeroconf.RegisterProxy(cfg.PeerID, MDNSService, mdnsDomain, int(port), cfg.PeerID, ipStrings, txtRecord(self), ifaces)
		return err
	})
	if err != nil {
		m.ns.close()
		return nil, fmt.Errorf("discovery: mdns: announce on %s: %w", ifaceNames(ifaces), err)
	}
	m.log.Debug("mdns: announcing", "id", cfg.PeerID, "addrs", ipStrings, "port", port, "interfaces", ifaceNames(ifaces))

	m.wg.Add(1)
	go m.browseLoop()
	return m, nil
}

// Candidates returns the addresses of the other peers of our mesh seen within Expiry, one
// candidate per address, ordered by peer id. It never blocks on the network. After Close it
// returns nothing.
func (m *MDNS) Candidates(ctx context.Context) ([]Candidate, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	select {
	case <-m.closing:
		return nil, nil
	default:
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.pruneLocked(time.Now())
	ids := make([]string, 0, len(m.peers))
	for id := range m.peers {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	var out []Candidate
	for _, id := range ids {
		for _, a := range m.peers[id].addrs {
			out = append(out, Candidate{ID: id, Addr: a, Source: SourceMDNS})
		}
	}
	return out, nil
}

// Stats returns the counters.
func (m *MDNS) Stats() MDNSStats {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.pruneLocked(time.Now())
	s := m.stats
	s.Peers = len(m.peers)
	return s
}

// Close stops announcing (the responder closes at once, so nobody gets an answer from us any
// more) and browsing, and waits for the goroutines it started. zeroconf gives no way to join
// its own goroutines: those of a browse end moments after the browse has handed back its
// results channel, which Close waits for. The announcing one (zeroconf's Server.probe) is not
// waited for: it only sleeps and sends on the closed socket (zeroconf ignores those errors on
// Linux) and ends by itself about 3.5 s after NewMDNS (two probes up to 250 ms apart, two
// announcements 1 s and 2 s apart); waiting for it made a peer stopped soon after its start
// take up to 4 s to leave. Idempotent; returns nil.
func (m *MDNS) Close() error {
	m.closeOnce.Do(func() {
		close(m.closing)
		m.server.Shutdown()
		m.wg.Wait()
		m.ns.close()
		m.log.Debug("mdns: closed", "id", m.cfg.PeerID)
	})
	return nil
}

// browse is one zeroconf browse, running until stopped.
type browse struct {
	cancel context.CancelFunc
	ended  chan struct{} // closed when zeroconf has closed the entries channel and all was read
}

// stop ends the browse and waits until zeroconf has let go of it.
func (b *browse) stop() {
	b.cancel()
	<-b.ended
}

// browseLoop keeps a browse running until Close, replacing it every Refresh.
func (m *MDNS) browseLoop() {
	defer m.wg.Done()
	var (
		cur      *browse
		failures int
	)
	defer func() {
		if cur != nil {
			cur.stop()
		}
	}()
	for {
		next, err := m.startBrowse()
		wait := jitter(m.cfg.Refresh)
		if err != nil {
			failures++
			wait = min(mdnsRetryMin<<min(failures-1, 8), m.cfg.Refresh)
			level := slog.LevelDebug
			if failures == 1 {
				level = slog.LevelWarn
			}
			m.log.Log(context.Background(), level, "mdns: browse failed; retrying", "err", err, "retry_in", wait)
		} else {
			if failures > 0 {
				m.log.Info("mdns: browsing again")
			}
			failures = 0
			// The new browse runs before the old one stops, so no announcement is missed.
			if cur != nil {
				cur.stop()
			}
			cur = next
		}

		var ended <-chan struct{}
		if cur != nil {
			ended = cur.ended
		}
		t := time.NewTimer(wait)
		select {
		case <-m.closing:
			t.Stop()
			return
		case <-t.C:
		case <-ended:
			// zeroconf gave up on this browse (it does when a query cannot be sent). Start
			// another, but not in a tight loop if that keeps happening.
			t.Stop()
			cur.stop()
			cur = nil
			m.log.Debug("mdns: browse ended by itself; restarting")
			if !m.pause(mdnsRetryMin) {
				return
			}
		}
	}
}

// pause waits for d, or returns false at once when Close is called.
func (m *MDNS) pause(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-m.closing:
		return false
	case <-t.C:
		return true
	}
}

// startBrowse opens a resolver in our namespace and starts a browse whose results feed
// observe until it is stopped.
func (m *MDNS) startBrowse() (*browse, error) {
	var r *zeroconf.Resolver
	err := m.ns.do(func() (err error) {
		r, err = newResolver(m.ifaces, m.ipType)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("discovery: mdns: listen on %s: %w", ifaceNames(m.ifaces), err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	entries := make(chan *zeroconf.ServiceEntry, 16)
	b := &browse{cancel: cancel, ended: make(chan struct{})}
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		defer close(b.ended)
		// Read until zeroconf closes the channel: it blocks sending an entry, and would never
		// get to shut its sockets if nobody read.
		for se := range entries {
			m.observe(se, time.Now())
		}
	}()
	if err := r.Browse(ctx, MDNSService, mdnsDomain, entries); err != nil {
		b.stop() // zeroconf's loop runs even when the first query fails; this ends it
		return nil, fmt.Errorf("discovery: mdns: browse: %w", err)
	}
	return b, nil
}

// newResolver opens a zeroconf resolver for the families in t. When both fail together, one
// of them may just lack multicast on these interfaces (IPv6 often does), so each is tried
// alone: every responder answers on each family it can, so one is enough.
func newResolver(ifaces []net.Interface, t zeroconf.IPType) (*zeroconf.Resolver, error) {
	r, err := zeroconf.NewResolver(zeroconf.SelectIfaces(ifaces), zeroconf.SelectIPTraffic(t))
	if err == nil || t != zeroconf.IPv4AndIPv6 {
		return r, err
	}
	for _, one := range []zeroconf.IPType{zeroconf.IPv4, zeroconf.IPv6} {
		if r, err1 := zeroconf.NewResolver(zeroconf.SelectIfaces(ifaces), zeroconf.SelectIPTraffic(one)); err1 == nil {
			return r, nil
		}
	}
	return nil, err
}

// observe records one announcement from the network.
func (m *MDNS) observe(se *zeroconf.ServiceEntry, now time.Time) {
	e, err := parseTXT(se.Text)
	var addrs []string
	if err == nil && e.MeshID == m.cfg.MeshID && e.PeerID != m.cfg.PeerID {
		// Addresses matter only for peers we would join.
		addrs, err = entryAddrs(se)
	}

	m.mu.Lock()
	defer m.mu.Unlock()
	switch {
	case err != nil:
		m.stats.Malformed++
		m.noteOnceLocked("malformed "+se.Instance, slog.LevelWarn, "mdns: ignoring malformed announcement", "instance", se.Instance, "err", err)
	case e.MeshID != m.cfg.MeshID:
		// Normal on a LAN shared with other users' meshes, hence Debug.
		m.stats.ForeignMesh++
		m.noteOnceLocked("foreign "+se.Instance, slog.LevelDebug, "mdns: ignoring a peer of another mesh", "instance", se.Instance, "mesh", e.MeshID)
	case e.PeerID == m.cfg.PeerID:
		// Our own announcement, looped back.
	default:
		m.stats.Seen++
		m.addLocked(e, addrs, se.TTL, now)
	}
}

// addLocked stores or refreshes a peer.
func (m *MDNS) addLocked(e mdnsEntry, addrs []string, ttl uint32, now time.Time) {
	expires := now.Add(m.cfg.Expiry)
	if byTTL := now.Add(time.Duration(ttl) * time.Second); ttl > 0 && byTTL.Before(expires) {
		expires = byTTL
	}
	p, ok := m.peers[e.PeerID]
	if !ok {
		m.pruneLocked(now)
		if len(m.peers) >= maxMDNSPeers {
			m.evictOldestLocked()
		}
		p = &mdnsPeer{}
		m.peers[e.PeerID] = p
	}
	if !ok || !slices.Equal(p.addrs, addrs) {
		m.log.Debug("mdns: found peer", "id", e.PeerID, "addrs", addrs, "version", e.Version)
	}
	p.addrs, p.seen, p.expires = addrs, now, expires
}

// pruneLocked drops expired entries.
func (m *MDNS) pruneLocked(now time.Time) {
	for id, p := range m.peers {
		if !now.Before(p.expires) {
			delete(m.peers, id)
			m.log.Debug("mdns: peer no longer seen", "id", id, "last_seen", p.seen)
		}
	}
}

// evictOldestLocked drops the least recently seen entry.
func (m *MDNS) evictOldestLocked() {
	var oldest string
	var at time.Time
	for id, p := range m.peers {
		if oldest == "" || p.seen.Before(at) {
			oldest, at = id, p.seen
		}
	}
	delete(m.peers, oldest)
}

// noteOnceLocked logs at level the first time it sees key, and at Debug afterwards: every
// browse repeats every announcement, and the log should not.
func (m *MDNS) noteOnceLocked(key string, level slog.Level, msg string, args ...any) {
	if _, ok := m.noted[key]; ok {
		level = slog.LevelDebug
	} else {
		if len(m.noted) >= maxMDNSNoted {
			clear(m.noted)
		}
		m.noted[key] = struct{}{}
	}
	m.log.Log(context.Background(), level, msg, args...)
}

// entryAddrs turns an announcement's port and addresses into host:port candidates:
// unspecified, multicast and zone-less IPv6 link-local addresses are dropped, repeats are
// removed, and at most maxMDNSAddrs are kept. No usable address is an error.
func entryAddrs(se *zeroconf.ServiceEntry) ([]string, error) {
	if se.Port < 1 || se.Port > 65535 {
		return nil, fmt.Errorf("port %d out of range 1-65535", se.Port)
	}
	var out []string
	for _, ip := range slices.Concat(se.AddrIPv4, se.AddrIPv6) {
		a, ok := netip.AddrFromSlice(ip)
		if !ok {
			continue
		}
		a = a.Unmap()
		if a.IsUnspecified() || a.IsMulticast() || a.Is6() && a.IsLinkLocalUnicast() {
			continue
		}
		s := netip.AddrPortFrom(a, uint16(se.Port)).String()
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
		if len(out) == maxMDNSAddrs {
			break
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no usable address in %v %v", se.AddrIPv4, se.AddrIPv6)
	}
	return out, nil
}

// checkInterfaces re-reads each interface by index in the current namespace: the index must
// still name the same interface (an index from another namespace names something else, or
// nothing), and it must do multicast.
func checkInterfaces(ifaces []net.Interface, log *slog.Logger) ([]net.Interface, error) {
	if len(ifaces) == 0 {
		return nil, fmt.Errorf("%w: no interfaces given; mDNS runs only on interfaces named explicitly", ErrMDNSConfig)
	}
	out := make([]net.Interface, 0, len(ifaces))
	for _, want := range ifaces {
		got, err := net.InterfaceByIndex(want.Index)
		if err != nil || got.Name != want.Name {
			return nil, fmt.Errorf("%w: interface %q (index %d) does not exist here", ErrMDNSConfig, want.Name, want.Index)
		}
		if got.Flags&net.FlagMulticast == 0 {
			return nil, fmt.Errorf("%w: interface %s has multicast off", ErrMDNSConfig, got.Name)
		}
		if got.Flags&net.FlagUp == 0 {
			log.Warn("mdns: interface is down; nothing is sent or received on it until it comes up", "interface", got.Name)
		}
		if !slices.ContainsFunc(out, func(i net.Interface) bool { return i.Index == got.Index }) {
			out = append(out, *got)
		}
	}
	return out, nil
}

// announceAddrs returns the addresses and port to announce for the gossip address addr.
func announceAddrs(addr string, ifaces []net.Interface) ([]netip.Addr, uint16, error) {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return nil, 0, errors.New("want ip:port with the bound port")
	}
	if ap.Port() == 0 {
		return nil, 0, errors.New("port 0; announce the bound port")
	}
	a := ap.Addr().Unmap()
	if a.Zone() != "" || a.IsMulticast() {
		return nil, 0, errors.New("not a unicast address without zone")
	}
	if !a.IsUnspecified() {
		return []netip.Addr{a}, ap.Port(), nil
	}
	var ips []netip.Addr
	for _, ifi := range ifaces {
		addrs, err := ifi.Addrs()
		if err != nil {
			return nil, 0, fmt.Errorf("addresses of %s: %v", ifi.Name, err)
		}
		for _, ia := range addrs {
			pfx, err := netip.ParsePrefix(ia.String())
			if err != nil {
				continue
			}
			ip := pfx.Addr().Unmap()
			// "::" also accepts IPv4 (Linux binds dual-stack by default), "0.0.0.0" only IPv4.
			if ip.Is4() || a.Is6() && !ip.IsLinkLocalUnicast() {
				ips = append(ips, ip)
			}
		}
	}
	if len(ips) == 0 {
		return nil, 0, fmt.Errorf("unspecified host and no usable address on %s", ifaceNames(ifaces))
	}
	return ips, ap.Port(), nil
}

// ipTypeOf chooses the multicast families to browse on: those of the addresses we announce.
// Every zeroconf responder answers on each family it can, so this loses no peer we could
// reach, and it avoids failing on a machine without IPv6.
func ipTypeOf(ips []netip.Addr) zeroconf.IPType {
	var t zeroconf.IPType
	for _, ip := range ips {
		if ip.Is4() {
			t |= zeroconf.IPv4
		} else {
			t |= zeroconf.IPv6
		}
	}
	return t
}

func ifaceNames(ifaces []net.Interface) []string {
	names := make([]string, len(ifaces))
	for i, ifi := range ifaces {
		names[i] = ifi.Name
	}
	return names
}

// jitter spreads d by up to -10%, so that peers started together do not browse in step.
func jitter(d time.Duration) time.Duration {
	return d - time.Duration(rand.Int64N(int64(d/10)+1))
}
