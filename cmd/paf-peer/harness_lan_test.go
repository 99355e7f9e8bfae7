package main

// The harness's lab hosts (their processes come from spawn, in
// harness_test.go): the real paf-peer binary on the hosts of an
// internal/netns lab, each host a network namespace on a private bridge. Namespaces share
// the file system, so every host gets run and state dirs of its own: a shared
// run dir would let peers meet through it instead of over the network, and
// the tests would prove nothing about mDNS.
//
// The helpers take the *testing.T to fail explicitly rather than using
// proc.t: processes belong to the top-level test (so they outlive its
// subtests), and a subtest must not call FailNow on its parent.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/paf-mesh/paf-mesh/discovery"
	"github.com/paf-mesh/paf-mesh/internal/netns"
)

// lanHost is one host of a lab with the directories and secret of the peer
// it runs.
type lanHost struct {
	*netns.Host
	name     string // the name its serve claims, also its label in logs
	runDir   string
	stateDir string
	secret   string // PAF_SECRET; "" is open mode
	serve    *proc  // its `paf-peer serve`, once started
}

// newLANHosts builds a lab with one host per name (skipping or failing as
// netns.Require does) and gives each its own run and state dirs.
func newLANHosts(t testing.TB, names ...string) []*lanHost {
	t.Helper()
	lab := netns.New(t, len(names))
	// Not t.TempDir(): its long path would push the control sockets past the
	// 107-byte limit on Unix socket paths. Removed after the processes stop
	// (cleanups run last-in first-out, and processes register theirs later).
	root, err := os.MkdirTemp("", "paf")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	hosts := make([]*lanHost, len(names))
	for i, n := range names {
		hosts[i] = &lanHost{
			Host:     lab.Hosts[i],
			name:     n,
			runDir:   filepath.Join(root, n, "run"),
			stateDir: filepath.Join(root, n, "state"),
		}
	}
	return hosts
}

// lanSecret returns a fresh random secret, well over the 16-character minimum.
func lanSecret(t testing.TB) string {
	t.Helper()
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b[:])
}

// env is the configuration every command on h runs with: its own dirs and
// its secret, nothing else.
func (h *lanHost) env() map[string]string {
	env := map[string]string{"PAF_RUN_DIR": h.runDir, "PAF_STATE_DIR": h.stateDir}
	if h.secret != "" {
		env["PAF_SECRET"] = h.secret
	}
	return env
}

// startServe starts `paf-peer serve --name <h.name>` plus args on h, owned
// by t (its cleanup stops it).
func (h *lanHost) startServe(t testing.TB, args ...string) *proc {
	t.Helper()
	h.serve = spawn(t, h.Host, h.env(), nil, append([]string{"serve", "--name", h.name}, args...)...)
	return h.serve
}

// cli runs one paf-peer command on h with h's environment.
func (h *lanHost) cli(t testing.TB, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	return runCLIOn(t, h.Host, h.env(), args...)
}

// waitServing waits until p serves (see proc.serving) and returns its peer
// id; p exiting first fails t.
func waitServing(t testing.TB, p *proc) string {
	t.Helper()
	if !p.serving() {
		t.Fatalf("paf-peer %s%s exited with %d before serving:\n%s", p, p.where(), p.code, p.stderr())
	}
	return p.id
}

// lanView is a status report with what jsonStatus leaves out: the relay
// address and the counters.
type lanView struct {
	*jsonStatus
	relay    string            // self's relay address
	counters map[string]uint64 // "counters" of status --json
}

// decodeLANView checks out as status --json (decodeStatus) and decodes it.
func decodeLANView(t testing.TB, out string) *lanView {
	t.Helper()
	st := decodeStatus(t, out)
	var extra struct {
		Self *struct {
			Relay string `json:"relay"`
		} `json:"self"`
		Counters map[string]uint64 `json:"counters"`
	}
	if err := json.Unmarshal([]byte(out), &extra); err != nil {
		t.Fatalf("status --json: %v\n%s", err, out)
	}
	v := &lanView{jsonStatus: st, counters: extra.Counters}
	if extra.Self != nil {
		v.relay = extra.Self.Relay
	}
	return v
}

// view asks h's serve for its view of the mesh straight over its control
// socket (cheap enough to poll; the socket is a path, so it is reachable
// from any namespace). It returns nil while no peer in h's run dir answers.
func (h *lanHost) view(t testing.TB) *lanView {
	t.Helper()
	l, err := discovery.NewLocal(h.runDir, nil)
	if err != nil {
		t.Fatal(err)
	}
	entries, err := l.Entries()
	if err != nil {
		return nil
	}
	for _, e := range entries {
		if e.Control == "" {
			continue
		}
		if raw, err := askStatus(e.Control); err == nil {
			return decodeLANView(t, string(raw))
		}
	}
	return nil
}

// status runs `paf-peer status --json` on h, in h's namespace with h's run
// dir, as a user would; it must succeed and report a peer.
func (h *lanHost) status(t testing.TB) *lanView {
	t.Helper()
	out, errOut, code := h.cli(t, "status", "--json")
	if code != 0 {
		t.Fatalf("status --json on %s: exit %d\nstderr: %s", h.name, code, errOut)
	}
	v := decodeLANView(t, out)
	if v.Self == nil {
		t.Fatalf("status --json on %s: no peer answered:\n%s", h.name, out)
	}
	return v
}

// seeAlive reports whether every one of hosts answers and lists each of
// names alive.
func seeAlive(t testing.TB, hosts []*lanHost, names ...string) bool {
	t.Helper()
	for _, h := range hosts {
		v := h.view(t)
		if v == nil {
			return false
		}
		for _, n := range names {
			if v.peerNamed(n, "alive") == nil {
				return false
			}
		}
	}
	return true
}

// lanSend is the output of send --json.
type lanSend struct {
	ID      string `json:"id"`
	Status  string `json:"status"`
	Holders int    `json:"holders"`
}

// send runs `send --as <h.name> to body --json` on h.
func (h *lanHost) send(t testing.TB, to, body string) lanSend {
	t.Helper()
	out, errOut, code := h.cli(t, "send", "--as", h.name, to, body, "--json")
	if code != 0 {
		t.Fatalf("send --as %s %s on %s: exit %d\nstderr: %s", h.name, to, h.name, code, errOut)
	}
	var r lanSend
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("send --json: %v\n%s", err, out)
	}
	return r
}

// lanMessage is one message of check --json.
type lanMessage struct {
	ID   string `json:"id"`
	From string `json:"from"`
	To   string `json:"to"`
	Body string `json:"body"`
}

// check runs `check --as <h.name> --json` on h: the unread messages, now
// marked read.
func (h *lanHost) check(t testing.TB) []lanMessage {
	t.Helper()
	out, errOut, code := h.cli(t, "check", "--as", h.name, "--json")
	if code != 0 {
		t.Fatalf("check --as %s on %s: exit %d\nstderr: %s", h.name, h.name, code, errOut)
	}
	var r struct {
		Messages []lanMessage `json:"messages"`
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("check --json: %v\n%s", err, out)
	}
	return r.Messages
}

// dialFrom tries a TCP connection to addr from inside h's namespace and
// returns the dial's error (nil: something accepted it).
func dialFrom(t testing.TB, h *netns.Host, addr string) error {
	t.Helper()
	var dialErr error
	err := h.Run(func() error {
		c, err := net.DialTimeout("tcp", addr, 3*time.Second)
		if err == nil {
			_ = c.Close()
		}
		dialErr = err
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return dialErr
}

// listenIn opens a TCP listener in h's namespace on addr, closed when t ends.
func listenIn(t testing.TB, h *netns.Host, addr string) net.Listener {
	t.Helper()
	var ln net.Listener
	err := h.Run(func() (err error) {
		ln, err = net.Listen("tcp", addr)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	return ln
}

// lanSocket is one socket `ss` lists.
type lanSocket struct {
	netid string // tcp or udp
	local string // local address:port
	users string // the process column, e.g. users:(("paf-peer",pid=42,fd=7))
}

// socketsIn lists the listening TCP and the unconnected UDP sockets of h's
// namespace, with their owners, as `ss -H -l -t -u -n -p` run there sees them.
func socketsIn(t testing.TB, h *netns.Host) []lanSocket {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cliTimeout)
	defer cancel()
	out, err := h.Command(ctx, "ss", "-H", "-l", "-t", "-u", "-n", "-p").Output()
	if err != nil {
		t.Fatalf("ss in %s: %v", h.Name, err)
	}
	var socks []lanSocket
	for _, l := range lines(string(out)) {
		// Netid State Recv-Q Send-Q Local Peer [Process]
		f := strings.Fields(l)
		if len(f) < 6 {
			t.Fatalf("ss in %s: unexpected line %q", h.Name, l)
		}
		s := lanSocket{netid: f[0], local: f[4]}
		if len(f) > 6 {
			s.users = strings.Join(f[6:], " ")
		}
		socks = append(socks, s)
	}
	return socks
}

// ownedBy reports whether process pid holds s.
func (s lanSocket) ownedBy(pid int) bool {
	return strings.Contains(s.users, "pid="+strconv.Itoa(pid)+",")
}

// hostOf returns the host part of a host:port address, failing t when addr
// is not one.
func hostOf(t testing.TB, what, addr string) string {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	if err != nil || port == "" || port == "0" {
		t.Fatalf("%s %q: want host:port with a bound port", what, addr)
	}
	return host
}

// portOf returns the port of a host:port address.
func portOf(t testing.TB, what, addr string) string {
	t.Helper()
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("%s %q: want host:port", what, addr)
	}
	return port
}
