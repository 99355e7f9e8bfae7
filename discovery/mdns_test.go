package discovery

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/grandcat/zeroconf"
	"github.com/paf-mesh/paf-mesh/internal/netns"
	"github.com/paf-mesh/paf-mesh/internal/testutil"
)

const (
	testMesh    = "0123456789abcdef"
	foreignMesh = "fedcba9876543210"
	// Fast timers so that refresh and expiry happen within the test.
	testRefresh = 600 * time.Millisecond
	testExpiry  = 2 * time.Second
)

// TestNewMDNSRefusesEmptyInterfaces runs anywhere: the refusal comes before any socket.
func TestNewMDNSRefusesEmptyInterfaces(t *testing.T) {
	for name, ifaces := range map[string][]net.Interface{"nil": nil, "empty": {}} {
		t.Run(name, func(t *testing.T) {
			m, err := NewMDNS(MDNSConfig{Interfaces: ifaces, MeshID: testMesh, PeerID: "p1", Addr: "10.0.0.1:7946"})
			if err == nil {
				_ = m.Close()
				t.Fatal("NewMDNS accepted no interfaces")
			}
			if !errors.Is(err, ErrMDNSConfig) || !strings.Contains(err.Error(), "no interfaces") {
				t.Fatalf("error %q; want ErrMDNSConfig saying no interfaces were given", err)
			}
		})
	}
}

// TestNewMDNSRefusesBadConfig runs inside a lab host, so that even a check that wrongly
// passed could not send anything on a real interface.
func TestNewMDNSRefusesBadConfig(t *testing.T) {
	lab := netns.New(t, 1)
	h := lab.Hosts[0]
	var eth0, lo net.Interface
	if err := h.Run(func() error {
		e, err := net.InterfaceByName(h.Iface)
		if err != nil {
			return err
		}
		l, err := net.InterfaceByName("lo")
		if err != nil {
			return err
		}
		eth0, lo = *e, *l
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	good := MDNSConfig{Interfaces: []net.Interface{eth0}, MeshID: testMesh, PeerID: "p1", Addr: h.IP + ":7946"}
	tests := map[string]struct {
		change func(*MDNSConfig)
		want   string
	}{
		"unknown interface":  {func(c *MDNSConfig) { c.Interfaces = []net.Interface{{Index: 9999, Name: "nope0"}} }, "does not exist"},
		"index of another":   {func(c *MDNSConfig) { c.Interfaces = []net.Interface{{Index: lo.Index, Name: h.Iface}} }, "does not exist"},
		"multicast off (lo)": {func(c *MDNSConfig) { c.Interfaces = []net.Interface{lo} }, "multicast off"},
		"empty mesh id":      {func(c *MDNSConfig) { c.MeshID = "" }, "mesh id"},
		"short mesh id":      {func(c *MDNSConfig) { c.MeshID = "0123" }, "mesh id"},
		"upper-case mesh id": {func(c *MDNSConfig) { c.MeshID = "0123456789ABCDEF" }, "mesh id"},
		"empty peer id":      {func(c *MDNSConfig) { c.PeerID = "" }, "peer id"},
		"dotted peer id":     {func(c *MDNSConfig) { c.PeerID = "a.b" }, "peer id"},
		"long peer id":       {func(c *MDNSConfig) { c.PeerID = strings.Repeat("a", 64) }, "peer id"},
		"bad version":        {func(c *MDNSConfig) { c.Version = "1.0 beta" }, "version"},
		"addr without port":  {func(c *MDNSConfig) { c.Addr = h.IP }, "addr"},
		"addr port 0":        {func(c *MDNSConfig) { c.Addr = h.IP + ":0" }, "port 0"},
		"addr host name":     {func(c *MDNSConfig) { c.Addr = "box.local:7946" }, "addr"},
		"addr multicast":     {func(c *MDNSConfig) { c.Addr = "224.0.0.251:7946" }, "unicast"},
		"addr with zone":     {func(c *MDNSConfig) { c.Addr = "[fe80::1%eth0]:7946" }, "zone"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			cfg := good
			cfg.Logger = testLogger(t)
			tc.change(&cfg)
			var m *MDNS
			err := h.Run(func() (err error) {
				m, err = NewMDNS(cfg)
				return err
			})
			if err == nil {
				_ = m.Close()
				t.Fatal("NewMDNS accepted the config")
			}
			if !errors.Is(err, ErrMDNSConfig) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q; want ErrMDNSConfig mentioning %q", err, tc.want)
			}
		})
	}
}

// labPeer is one MDNS on one lab host.
type labPeer struct {
	host *netns.Host
	id   string
	addr string
	m    *MDNS
}

// startPeer starts an MDNS on h inside its namespace; the test's cleanup closes it.
func startPeer(t *testing.T, h *netns.Host, id, mesh string, opts ...func(*MDNSConfig)) *labPeer {
	t.Helper()
	p := &labPeer{host: h, id: id, addr: h.IP + ":7946"}
	err := h.Run(func() error {
		ifi, err := net.InterfaceByName(h.Iface)
		if err != nil {
			return err
		}
		cfg := MDNSConfig{
			Interfaces: []net.Interface{*ifi},
			MeshID:     mesh,
			PeerID:     id,
			Addr:       p.addr,
			Version:    "0.1.0-test",
			Logger:     testLogger(t).With("peer", id),
			Refresh:    testRefresh,
			Expiry:     testExpiry,
		}
		for _, o := range opts {
			o(&cfg)
		}
		p.m, err = NewMDNS(cfg)
		return err
	})
	if err != nil {
		t.Fatalf("start mdns on %s: %v", h.Name, err)
	}
	t.Cleanup(func() { _ = p.m.Close() })
	return p
}

// addrsOf returns the addresses p's MDNS offers, sorted, checking the candidates' form.
func addrsOf(t *testing.T, p *labPeer, ids map[string]string) []string {
	t.Helper()
	cands, err := p.m.Candidates(context.Background())
	if err != nil {
		t.Fatalf("%s: Candidates: %v", p.id, err)
	}
	var out []string
	for _, c := range cands {
		if c.Source != SourceMDNS {
			t.Fatalf("%s: candidate %+v has source %q", p.id, c, c.Source)
		}
		if want, ok := ids[c.Addr]; ok && want != c.ID {
			t.Fatalf("%s: candidate %+v; want id %s for that address", p.id, c, want)
		}
		out = append(out, c.Addr)
	}
	slices.Sort(out)
	return out
}

// othersAddrs returns the sorted addresses of peers other than self.
func othersAddrs(self *labPeer, peers []*labPeer) []string {
	var out []string
	for _, p := range peers {
		if p != self {
			out = append(out, p.addr)
		}
	}
	slices.Sort(out)
	return out
}

// TestMDNSOnALAN runs peers on separate hosts of a lab: peers of one mesh find each other and
// not themselves, a peer of another mesh is ignored both ways, a late peer is found, entries
// stay while their peers announce and expire after Close, and no socket is ever opened in
// this process's own namespace.
func TestMDNSOnALAN(t *testing.T) {
	lab := netns.New(t, 5)
	rootUDP := ourUDPSocketsOnPort(t, 5353) // fails the test if any is ever seen

	start := time.Now()
	var mesh []*labPeer
	for i := range 3 {
		mesh = append(mesh, startPeer(t, lab.Hosts[i], fmt.Sprintf("peer%d", i+1), testMesh))
	}
	foreign := startPeer(t, lab.Hosts[3], "other1", foreignMesh)
	ids := map[string]string{foreign.addr: foreign.id}
	for _, p := range mesh {
		ids[p.addr] = p.id
	}

	// Every peer of the mesh finds exactly the other two.
	for _, p := range mesh {
		want := othersAddrs(p, mesh)
		testutil.WaitFor(t, 10*time.Second, p.id+" to find "+strings.Join(want, ", "), func() bool {
			return slices.Equal(addrsOf(t, p, ids), want)
		})
		t.Logf("%s found the other peers of its mesh %v after start", p.id, time.Since(start).Round(time.Millisecond))
	}

	// The control for rootUDP: the same scan inside a lab host finds that host's responder
	// (IPv4 and IPv6) and browser sockets.
	h := lab.Hosts[0]
	testutil.WaitFor(t, 10*time.Second, "our mDNS sockets to show in the lab host", func() bool {
		var n int
		if err := h.Run(func() error {
			found, err := ourUDPInodes(5353)
			n = len(found)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return n >= 3
	})
	rootUDP()

	// The foreign peer is counted, never offered, and sees nothing of ours.
	for _, p := range append(slices.Clone(mesh), foreign) {
		testutil.WaitFor(t, 10*time.Second, p.id+" to count foreign announcements", func() bool {
			return p.m.Stats().ForeignMesh > 0
		})
	}
	if got := addrsOf(t, foreign, ids); len(got) != 0 {
		t.Fatalf("the peer of another mesh offers %v", got)
	}
	if s := foreign.m.Stats(); s.Seen != 0 || s.Peers != 0 {
		t.Fatalf("the peer of another mesh accepted announcements: %+v", s)
	}

	// A peer that starts later is found by its own announcement.
	late := startPeer(t, lab.Hosts[4], "peer4", testMesh)
	lateStart := time.Now()
	ids[late.addr] = late.id
	for _, p := range mesh {
		testutil.WaitFor(t, 10*time.Second, p.id+" to find the late peer", func() bool {
			return slices.Contains(addrsOf(t, p, ids), late.addr)
		})
		t.Logf("%s found the late peer %v after it started", p.id, time.Since(lateStart).Round(time.Millisecond))
	}
	mesh = append(mesh, late)
	testutil.WaitFor(t, 10*time.Second, "the late peer to find the others", func() bool {
		return slices.Equal(addrsOf(t, late, ids), othersAddrs(late, mesh))
	})
	t.Logf("the late peer found the others %v after it started", time.Since(lateStart).Round(time.Millisecond))

	// Entries are refreshed by the re-browses: over twice the expiry, nobody loses anyone.
	steady := time.Now()
	for time.Since(steady) < 2*testExpiry {
		for _, p := range mesh {
			if got, want := addrsOf(t, p, ids), othersAddrs(p, mesh); !slices.Equal(got, want) {
				t.Fatalf("%s offers %v after %v of steady state; want %v", p.id, got, time.Since(steady), want)
			}
		}
		rootUDP()
		time.Sleep(50 * time.Millisecond) // pacing the observation, not synchronising
	}
	for _, p := range mesh {
		s := p.m.Stats()
		// Each browse answers each of three others at least once; a stuck browse would
		// leave Seen near 3.
		if s.Seen < 3*3 || s.Peers != 3 || s.Malformed != 0 {
			t.Fatalf("%s stats %+v; want Seen >= 9 from repeated browses, Peers 3, Malformed 0", p.id, s)
		}
	}

	// A closed peer no longer answers: the others drop it within the expiry.
	gone := mesh[1]
	if err := gone.m.Close(); err != nil {
		t.Fatal(err)
	}
	if err := gone.m.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if c, err := gone.m.Candidates(context.Background()); err != nil || len(c) != 0 {
		t.Fatalf("Candidates after Close = %v, %v; want nothing", c, err)
	}
	closed := time.Now()
	rest := slices.DeleteFunc(slices.Clone(mesh), func(p *labPeer) bool { return p == gone })
	for _, p := range rest {
		testutil.WaitFor(t, 3*testExpiry, p.id+" to drop the closed peer", func() bool {
			return !slices.Contains(addrsOf(t, p, ids), gone.addr)
		})
		if got, want := addrsOf(t, p, ids), othersAddrs(p, rest); !slices.Equal(got, want) {
			t.Fatalf("%s offers %v after a peer closed; want %v", p.id, got, want)
		}
	}
	t.Logf("the closed peer was dropped by all %v after Close (expiry %v)", time.Since(closed).Round(time.Millisecond), testExpiry)
	rootUDP()
}

// TestMDNSFindsLatePeerWithoutRefresh checks that a running browse picks up a peer that
// starts later by itself, not at its next refresh (an hour away): the newcomer's first query
// makes every responder answer by multicast, its own included, and its announcements follow.
func TestMDNSFindsLatePeerWithoutRefresh(t *testing.T) {
	lab := netns.New(t, 2)
	a := startPeer(t, lab.Hosts[0], "peer1", testMesh, func(c *MDNSConfig) { c.Refresh = time.Hour; c.Expiry = time.Hour })
	// Wait for a's browser: its socket joins the responder's two.
	testutil.WaitFor(t, 10*time.Second, "peer1's browse to start", func() bool {
		var n int
		if err := a.host.Run(func() error {
			found, err := ourUDPInodes(5353)
			n = len(found)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return n >= 3
	})
	started := time.Now()
	b := startPeer(t, lab.Hosts[1], "peer2", testMesh)
	ids := map[string]string{b.addr: b.id}
	testutil.WaitFor(t, 10*time.Second, "peer1 to find peer2", func() bool {
		return slices.Equal(addrsOf(t, a, ids), []string{b.addr})
	})
	t.Logf("a running peer found a new one %v after it started", time.Since(started).Round(time.Millisecond))
}

// ourUDPSocketsOnPort returns a check that fails the test if any UDP socket of this process
// bound to port lives in this process's own network namespace: mDNS sockets must all be in
// lab namespaces. TestMDNSOnALAN shows that the same scan finds them there.
func ourUDPSocketsOnPort(t *testing.T, port int) func() {
	t.Helper()
	check := func() {
		t.Helper()
		runtime.LockOSThread() // scan the namespace of the thread we are on, which is ours
		defer runtime.UnlockOSThread()
		if found, err := ourUDPInodes(port); err != nil {
			t.Fatal(err)
		} else if len(found) > 0 {
			t.Fatalf("sockets %v of this process on UDP port %d in its own namespace: mDNS escaped the lab", found, port)
		}
	}
	check()
	return check
}

// ourUDPInodes returns the inodes of this process's UDP sockets bound to port in the network
// namespace of the calling thread.
func ourUDPInodes(port int) ([]uint64, error) {
	ours, err := ownSocketInodes()
	if err != nil {
		return nil, err
	}
	var found []uint64
	for _, f := range []string{"/proc/thread-self/net/udp", "/proc/thread-self/net/udp6"} {
		inodes, err := udpInodesOnPort(f, port)
		if err != nil {
			return nil, err
		}
		for _, ino := range inodes {
			if ours[ino] {
				found = append(found, ino)
			}
		}
	}
	return found, nil
}

// ownSocketInodes returns the inodes of this process's open sockets.
func ownSocketInodes() (map[uint64]bool, error) {
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return nil, err
	}
	out := make(map[uint64]bool)
	for _, fd := range fds {
		target, err := os.Readlink(filepath.Join("/proc/self/fd", fd.Name()))
		if err != nil {
			continue // closed meanwhile
		}
		if s, ok := strings.CutPrefix(target, "socket:["); ok {
			if ino, err := strconv.ParseUint(strings.TrimSuffix(s, "]"), 10, 64); err == nil {
				out[ino] = true
			}
		}
	}
	return out, nil
}

// udpInodesOnPort reads a /proc/net/udp-style table and returns the inodes of sockets whose
// local port is port.
func udpInodesOnPort(path string, port int) ([]uint64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []uint64
	sc := bufio.NewScanner(f)
	sc.Scan() // header
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 10 {
			continue
		}
		_, hexPort, ok := strings.Cut(fields[1], ":")
		if !ok {
			continue
		}
		if p, err := strconv.ParseUint(hexPort, 16, 16); err != nil || int(p) != port {
			continue
		}
		if ino, err := strconv.ParseUint(fields[9], 10, 64); err == nil {
			out = append(out, ino)
		}
	}
	return out, sc.Err()
}

// newTestMDNS builds an MDNS without network, for the bookkeeping.
func newTestMDNS(t *testing.T) *MDNS {
	return &MDNS{
		cfg:   MDNSConfig{MeshID: testMesh, PeerID: "self", Refresh: testRefresh, Expiry: testExpiry},
		log:   testLogger(t),
		peers: make(map[string]*mdnsPeer),
		noted: make(map[string]struct{}),
	}
}

func serviceEntry(instance string, port int, txt []string, ips ...string) *zeroconf.ServiceEntry {
	se := zeroconf.NewServiceEntry(instance, MDNSService, mdnsDomain)
	se.Port, se.Text, se.TTL = port, txt, 3200
	for _, s := range ips {
		ip := net.ParseIP(s)
		if ip.To4() != nil {
			se.AddrIPv4 = append(se.AddrIPv4, ip)
		} else {
			se.AddrIPv6 = append(se.AddrIPv6, ip)
		}
	}
	return se
}

func TestMDNSObserve(t *testing.T) {
	ours := func(id string) []string { return txtRecord(mdnsEntry{PeerID: id, MeshID: testMesh, Version: "1"}) }
	tests := map[string]struct {
		entry *zeroconf.ServiceEntry
		want  []Candidate
		stats MDNSStats
	}{
		"peer of our mesh": {
			entry: serviceEntry("a", 7946, ours("a"), "10.0.0.1"),
			want:  []Candidate{{ID: "a", Addr: "10.0.0.1:7946", Source: SourceMDNS}},
			stats: MDNSStats{Seen: 1, Peers: 1},
		},
		"several addresses, repeats and unusable ones dropped": {
			entry: serviceEntry("a", 7946, ours("a"), "10.0.0.1", "10.0.0.1", "0.0.0.0", "224.0.0.251", "fe80::1", "2001:db8::1", "::ffff:10.0.0.2"),
			want: []Candidate{
				{ID: "a", Addr: "10.0.0.1:7946", Source: SourceMDNS},
				{ID: "a", Addr: "10.0.0.2:7946", Source: SourceMDNS},
				{ID: "a", Addr: "[2001:db8::1]:7946", Source: SourceMDNS},
			},
			stats: MDNSStats{Seen: 1, Peers: 1},
		},
		"loopback is kept (open mode announces on lo)": {
			entry: serviceEntry("a", 7946, ours("a"), "127.0.0.1"),
			want:  []Candidate{{ID: "a", Addr: "127.0.0.1:7946", Source: SourceMDNS}},
			stats: MDNSStats{Seen: 1, Peers: 1},
		},
		"ourselves": {
			entry: serviceEntry("self", 7946, ours("self"), "10.0.0.1"),
		},
		"another mesh": {
			entry: serviceEntry("a", 7946, txtRecord(mdnsEntry{PeerID: "a", MeshID: foreignMesh}), "10.0.0.1"),
			stats: MDNSStats{ForeignMesh: 1},
		},
		"another mesh with no address is foreign, not malformed": {
			entry: serviceEntry("a", 0, txtRecord(mdnsEntry{PeerID: "a", MeshID: foreignMesh})),
			stats: MDNSStats{ForeignMesh: 1},
		},
		"no TXT": {
			entry: serviceEntry("a", 7946, nil, "10.0.0.1"),
			stats: MDNSStats{Malformed: 1},
		},
		"bad peer id": {
			entry: serviceEntry("a", 7946, []string{"id=a/b", "mesh=" + testMesh}, "10.0.0.1"),
			stats: MDNSStats{Malformed: 1},
		},
		"port 0": {
			entry: serviceEntry("a", 0, ours("a"), "10.0.0.1"),
			stats: MDNSStats{Malformed: 1},
		},
		"port too large": {
			entry: serviceEntry("a", 70000, ours("a"), "10.0.0.1"),
			stats: MDNSStats{Malformed: 1},
		},
		"only link-local IPv6": {
			entry: serviceEntry("a", 7946, ours("a"), "fe80::1"),
			stats: MDNSStats{Malformed: 1},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			m := newTestMDNS(t)
			m.observe(tc.entry, time.Now())
			got, err := m.Candidates(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("candidates %+v; want %+v", got, tc.want)
			}
			if s := m.Stats(); s != tc.stats {
				t.Fatalf("stats %+v; want %+v", s, tc.stats)
			}
		})
	}
}

func TestMDNSEntriesExpire(t *testing.T) {
	m := newTestMDNS(t)
	now := time.Now()
	txt := func(id string) []string { return txtRecord(mdnsEntry{PeerID: id, MeshID: testMesh}) }
	m.observe(serviceEntry("old", 1, txt("old"), "10.0.0.1"), now.Add(-testExpiry-time.Millisecond))
	m.observe(serviceEntry("fresh", 2, txt("fresh"), "10.0.0.2"), now)
	shortTTL := serviceEntry("ttl", 3, txt("ttl"), "10.0.0.3")
	shortTTL.TTL = 1
	m.observe(shortTTL, now.Add(-1001*time.Millisecond))
	refreshed := serviceEntry("moved", 4, txt("moved"), "10.0.0.4")
	m.observe(refreshed, now.Add(-testExpiry-time.Millisecond))
	m.observe(serviceEntry("moved", 5, txt("moved"), "10.0.0.5"), now)

	got, err := m.Candidates(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := []Candidate{
		{ID: "fresh", Addr: "10.0.0.2:2", Source: SourceMDNS},
		{ID: "moved", Addr: "10.0.0.5:5", Source: SourceMDNS},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("candidates %+v; want %+v", got, want)
	}
}

func TestMDNSBoundsPeers(t *testing.T) {
	m := newTestMDNS(t)
	m.log = slog.New(slog.DiscardHandler) // a thousand "found peer" lines say nothing
	now := time.Now()
	for i := range maxMDNSPeers + 10 {
		id := fmt.Sprintf("p%d", i)
		m.observe(serviceEntry(id, 7946, txtRecord(mdnsEntry{PeerID: id, MeshID: testMesh}), "10.0.0.1"), now.Add(time.Duration(i)*time.Microsecond))
	}
	if s := m.Stats(); s.Peers != maxMDNSPeers {
		t.Fatalf("%d peers kept; want the bound %d", s.Peers, maxMDNSPeers)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for i := range 10 {
		if _, ok := m.peers[fmt.Sprintf("p%d", i)]; ok {
			t.Fatalf("p%d, among the least recently seen, was kept", i)
		}
	}
}

func TestAnnounceAddrs(t *testing.T) {
	tests := map[string]struct {
		addr    string
		want    []netip.Addr
		port    uint16
		wantErr string
	}{
		"ipv4":          {addr: "10.1.2.3:7946", want: []netip.Addr{netip.MustParseAddr("10.1.2.3")}, port: 7946},
		"ipv6":          {addr: "[2001:db8::1]:1", want: []netip.Addr{netip.MustParseAddr("2001:db8::1")}, port: 1},
		"mapped ipv4":   {addr: "[::ffff:10.1.2.3]:7946", want: []netip.Addr{netip.MustParseAddr("10.1.2.3")}, port: 7946},
		"loopback":      {addr: "127.0.0.1:7946", want: []netip.Addr{netip.MustParseAddr("127.0.0.1")}, port: 7946},
		"port 0":        {addr: "10.1.2.3:0", wantErr: "port 0"},
		"no port":       {addr: "10.1.2.3", wantErr: "ip:port"},
		"host name":     {addr: "localhost:7946", wantErr: "ip:port"},
		"multicast":     {addr: "239.1.1.1:7946", wantErr: "unicast"},
		"unspec, no if": {addr: "0.0.0.0:7946", wantErr: "no usable address"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, port, err := announceAddrs(tc.addr, nil)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v; want one mentioning %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || !slices.Equal(got, tc.want) || port != tc.port {
				t.Fatalf("= %v, %d, %v; want %v, %d", got, port, err, tc.want, tc.port)
			}
		})
	}
}

// TestAnnounceAddrsUnspecified checks that a wildcard bind announces the interface's address.
func TestAnnounceAddrsUnspecified(t *testing.T) {
	lab := netns.New(t, 1)
	h := lab.Hosts[0]
	var got []netip.Addr
	err := h.Run(func() error {
		ifi, err := net.InterfaceByName(h.Iface)
		if err != nil {
			return err
		}
		got, _, err = announceAddrs("0.0.0.0:7946", []net.Interface{*ifi})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := []netip.Addr{netip.MustParseAddr(h.IP)}; !slices.Equal(got, want) {
		t.Fatalf("announces %v; want %v", got, want)
	}
}
