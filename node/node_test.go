package node

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/paf-mesh/paf-mesh/internal/testutil"
	"github.com/paf-mesh/paf-mesh/mesh"
	"github.com/paf-mesh/paf-mesh/node/control"
)

// Three peers meet through the run dir; status (built here, and fetched over
// the control socket in the SPEC's JSON shape) lists them; a peer that
// closes leaves gracefully, its entry and socket gone, and its name is free
// at once. (Was TestE2EMeshAcceptance's in-process part and TestE2EServeName.)
func TestMeshStatusAndLeave(t *testing.T) {
	m := newTestMesh(t)
	a := m.start("a", "a")
	b := m.start("b", "b", func(c *Config) { c.Description = "the b peer" })
	c := m.start("c", "c")
	all := []*Node{a, b, c}
	waitNames(t, all, "a", "b", "c")

	st, err := FetchStatus(ctxT(t, 10*time.Second), m.config("x"))
	if err != nil {
		t.Fatal(err)
	}
	if st.Self == nil || st.Mode != "open" || len(st.Forwards) != 0 || st.Message != "" || len(st.Peers) != 3 {
		t.Fatalf("status: %+v; want a self, open mode, 3 peers, no forwards, no message", st)
	}
	for _, p := range st.Peers {
		host, port, err := net.SplitHostPort(p.Addr)
		if err != nil || host != "127.0.0.1" || port == "0" || p.Host == "" || p.State != "alive" || p.Mode != "open" || p.Version != "test" {
			t.Errorf("peer %+v: want 127.0.0.1:<port>, a host, alive, open, version test", p)
		}
		if want := map[string]string{"b": "the b peer"}[p.Name]; p.Description != want {
			t.Errorf("peer %s description %q, want %q", p.Name, p.Description, want)
		}
	}
	if st.Counters == nil {
		t.Error("status has no counters")
	}

	// The raw JSON over the socket has the SPEC's keys.
	resp, err := control.Call(ctxT(t, 5*time.Second), a.ControlPath(), control.Request{Op: control.OpStatus})
	if err != nil {
		t.Fatal(err)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(resp.Status, &raw); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"self", "mode", "peers", "forwards"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("status JSON lacks %q: %s", k, resp.Status)
		}
	}

	bID, sock := b.ID(), b.ControlPath()
	b.Close()
	b.Close() // idempotent
	for _, f := range []string{bID + ".json", sock} {
		if !filepath.IsAbs(f) {
			f = filepath.Join(m.runDir, f)
		}
		if _, err := os.Lstat(f); !os.IsNotExist(err) {
			t.Errorf("%s still there after Close (err %v)", f, err)
		}
	}
	testutil.WaitFor(t, meshDeadline, "a and c to see b left", func() bool {
		for _, n := range []*Node{a, c} {
			mb, ok := n.Member(bID)
			if !ok || mb.State != mesh.MemberLeft {
				return false
			}
		}
		return true
	})
	b2 := m.start("b2", "b") // free at once
	if b2.Name() != "b" {
		t.Fatalf("new peer holds %q, want b", b2.Name())
	}
}

// A name held by a live peer is refused at once, in any case; the holder
// keeps it. (Was TestE2EServeNameTaken.)
func TestNameTaken(t *testing.T) {
	m := newTestMesh(t)
	holder := m.start("h", "alice")
	for _, ask := range []string{"alice", "ALICE"} {
		_, err := m.tryStart("t-"+ask, ask)
		if !errors.Is(err, mesh.ErrNameTaken) || !strings.Contains(err.Error(), holder.ID()) {
			t.Fatalf("claim %q while alice is held: %v, want ErrNameTaken naming %s", ask, err, holder.ID())
		}
	}
	if holder.Name() != "alice" {
		t.Fatalf("holder now holds %q", holder.Name())
	}
}

// A seed that does not answer is warned about, and the peer runs alone.
// (Was TestE2EServeJoinClosedPort.)
func TestJoinClosedPort(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	seed := ln.Addr().String()
	ln.Close()
	m := newTestMesh(t)
	var logs testutil.SyncBuffer
	n := m.start("j", "joiner", func(c *Config) {
		c.Join = []string{seed}
		c.Logger = slogTo(&logs)
	})
	if n.Name() != "joiner" || !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), seed) {
		t.Fatalf("want a running joiner and a warning naming %s:\n%s", seed, logs.String())
	}
}

// A rendezvous entry that is not a peer's (garbage, or the entry of a peer
// that does not answer) is skipped with a log line; peers still meet and
// status still works. (Was TestE2ECorruptRendezvousEntry.)
func TestCorruptRendezvousEntry(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()
	tests := map[string]struct {
		file    string
		content string
		locked  bool   // held by a live process, as a peer holds its entry
		wantLog string // what a peer logs about it
	}{
		"garbage, no live writer": {file: "deadbeef.json", content: "\x00\xffnot json{{", wantLog: "deadbeef.json"},
		"garbage, live writer":    {file: "deadbeef.json", content: `{"id": "deadbeef", "addr": `, locked: true, wantLog: "deadbeef.json"},
		// Sorts before real (random hex) ids, so status asks it first.
		"peer that does not answer": {
			file:    "00000000deadbeef.json",
			content: `{"id":"00000000deadbeef","addr":"` + closed + `","control":"/nonexistent/paf.sock","pid":1,"host":"x","started":"2024-01-01T00:00:00Z","v":1}`,
			locked:  true, wantLog: closed,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			m := newTestMesh(t)
			if err := os.MkdirAll(m.runDir, 0o700); err != nil {
				t.Fatal(err)
			}
			f, err := os.OpenFile(filepath.Join(m.runDir, tc.file), os.O_CREATE|os.O_WRONLY, 0o600)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { f.Close() })
			if _, err := f.WriteString(tc.content); err != nil {
				t.Fatal(err)
			}
			if tc.locked {
				if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
					t.Fatal(err)
				}
			}
			var logs testutil.SyncBuffer
			log := func(c *Config) { c.Logger = slogTo(&logs) }
			a, b := m.start("a", "a", log), m.start("b", "b", log)
			waitNames(t, []*Node{a, b}, "a", "b")
			st, err := FetchStatus(ctxT(t, 20*time.Second), m.config("x"))
			if err != nil || st.Self == nil {
				t.Fatalf("status: %+v, %v", st, err)
			}
			if !strings.Contains(logs.String(), tc.wantLog) {
				t.Errorf("neither peer logged the bad entry (%q):\n%s", tc.wantLog, logs.String())
			}
		})
	}
}

// FetchStatus with no peer running says so and how to start one; with
// peers advertised but none answering, it fails.
func TestFetchStatusNoPeer(t *testing.T) {
	m := newTestMesh(t)
	st, err := FetchStatus(ctxT(t, 5*time.Second), m.config("x"))
	if err != nil || st.Self != nil || len(st.Peers) != 0 || st.Mode != "open" ||
		!strings.Contains(st.Message, "no paf-peer is running") || !strings.Contains(st.Message, m.runDir) {
		t.Fatalf("no peer: %+v, %v", st, err)
	}
}

// Zero fields take the defaults, the bind address by mode; New needs dirs.
func TestConfigDefaults(t *testing.T) {
	tests := map[string]struct {
		in       Config
		wantBind string
		wantMode string
	}{
		"open":   {in: Config{}, wantBind: DefaultOpenBind, wantMode: "open"},
		"secure": {in: Config{Keys: testKeys(t)}, wantBind: DefaultSecureBind, wantMode: "secure"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			c := tc.in.withDefaults()
			if c.Bind.String() != tc.wantBind || c.Mode() != tc.wantMode {
				t.Fatalf("bind %s mode %s, want %s %s", c.Bind, c.Mode(), tc.wantBind, tc.wantMode)
			}
			d := DefaultConfig()
			if c.MaxBody != d.MaxBody || c.FileOver != d.FileOver || c.ForwardTTL != d.ForwardTTL || c.StoreTTL != d.StoreTTL ||
				c.Replicas != d.Replicas || c.Rate != d.Rate || c.ConversationIdle != d.ConversationIdle || c.Logger == nil {
				t.Fatalf("zero fields not defaulted: %+v", c)
			}
		})
	}
	if _, err := New(context.Background(), Config{}); err == nil {
		t.Fatal("New without dirs succeeded")
	}
	// A given value is kept.
	c := Config{MaxBody: 5000, Replicas: 1}.withDefaults()
	if c.MaxBody != 5000 || c.Replicas != 1 {
		t.Fatalf("given values replaced: %+v", c)
	}
}

// A state dir that cannot be created fails the start with a message saying
// how to choose another; nothing is left running.
func TestStartFailures(t *testing.T) {
	m := newTestMesh(t)
	file := filepath.Join(m.root, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	tests := map[string]struct {
		mut  func(*Config)
		want string
	}{
		"state dir is a file":       {mut: func(c *Config) { c.StateDir = file }, want: "state"},
		"brief, state dir is file":  {mut: func(c *Config) { c.StateDir, c.Brief = filepath.Join(file, "x"), true }, want: "--state-dir"},
		"run dir is a file":         {mut: func(c *Config) { c.RunDir = file }, want: "--run-dir"},
		"run dir too long for sock": {mut: func(c *Config) { c.RunDir = filepath.Join(m.root, strings.Repeat("r", 100)) }, want: "107 bytes"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := m.tryStart(strings.ReplaceAll(name, " ", "-"), "", tc.mut)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("start: %v, want an error saying %q", err, tc.want)
			}
		})
	}
}

// advertisable replaces an unspecified listen IP with the gossip IP.
func TestAdvertisable(t *testing.T) {
	tests := map[string]struct{ listen, gossip, want string }{
		"unspecified": {"0.0.0.0:5000", "10.0.0.2:7946", "10.0.0.2:5000"},
		"specific":    {"127.0.0.1:5000", "10.0.0.2:7946", "127.0.0.1:5000"},
		"bad listen":  {"nonsense", "10.0.0.2:7946", "nonsense"},
		"bad gossip":  {"0.0.0.0:5000", "nonsense", "0.0.0.0:5000"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := advertisable(tc.listen, tc.gossip); got != tc.want {
				t.Fatalf("advertisable(%q, %q) = %q, want %q", tc.listen, tc.gossip, got, tc.want)
			}
		})
	}
}

// Stale control sockets of dead peers are removed at start, young ones
// (a peer between listening and advertising) are spared.
func TestRemoveStaleSockets(t *testing.T) {
	m := newTestMesh(t)
	if err := os.MkdirAll(m.runDir, 0o700); err != nil {
		t.Fatal(err)
	}
	old := filepath.Join(m.runDir, "0ld.sock")
	young := filepath.Join(m.runDir, "y0ung.sock")
	for _, p := range []string{old, young} {
		if err := os.WriteFile(p, nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	long := time.Now().Add(-2 * time.Minute)
	if err := os.Chtimes(old, long, long); err != nil {
		t.Fatal(err)
	}
	n := m.start("a", "")
	socks, _ := filepath.Glob(filepath.Join(m.runDir, "*.sock"))
	slices.Sort(socks)
	want := []string{n.ControlPath(), young}
	slices.Sort(want)
	if !slices.Equal(socks, want) {
		t.Fatalf("sockets %v, want %v", socks, want)
	}
}

// mdnsInterfaces never picks loopback, and for a specific bind address only
// the interface that has it.
func TestMDNSInterfaces(t *testing.T) {
	ifs, err := mdnsInterfaces(mustAddr("127.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	if len(ifs) != 0 {
		t.Fatalf("loopback bind picked %v", ifs)
	}
	all, err := mdnsInterfaces(mustAddr("0.0.0.0"))
	if err != nil {
		t.Fatal(err)
	}
	for _, ifc := range all {
		if ifc.Flags&net.FlagLoopback != 0 {
			t.Fatalf("picked loopback %s", ifc.Name)
		}
	}
}

// The bind address keeps the IP form memberlist needs.
func TestParseBind(t *testing.T) {
	tests := map[string]struct {
		in   string
		want netip.AddrPort
		bad  bool
	}{
		"loopback":      {in: "127.0.0.1:0", want: netip.MustParseAddrPort("127.0.0.1:0")},
		"localhost":     {in: "localhost:7946", want: netip.MustParseAddrPort("127.0.0.1:7946")},
		"ipv6":          {in: "[::1]:5", want: netip.MustParseAddrPort("[::1]:5")},
		"v4-mapped":     {in: "[::ffff:127.0.0.1]:5", want: netip.MustParseAddrPort("127.0.0.1:5")},
		"no port":       {in: "127.0.0.1", bad: true},
		"port too big":  {in: "127.0.0.1:65536", bad: true},
		"named host":    {in: "example.com:1", bad: true},
		"empty":         {in: "", bad: true},
		"negative port": {in: "127.0.0.1:-1", bad: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := ParseBind(tc.in)
			if tc.bad {
				if err == nil {
					t.Fatalf("ParseBind(%q) = %v, want an error", tc.in, got)
				}
				if !strings.Contains(err.Error(), tc.in) {
					t.Errorf("error %q does not name the input %q", err, tc.in)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("ParseBind(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
			}
		})
	}
}
