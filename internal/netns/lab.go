package netns

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// ErrUnavailable is wrapped by the errors of [Available]: the harness cannot run here.
var ErrUnavailable = errors.New("netns: harness unavailable")

const (
	// RequireEnv, set to "1", turns [Require]'s skip into a failure (CI sets it, so that a
	// broken environment cannot silently skip the LAN tests).
	RequireEnv = "PAF_REQUIRE_NETNS"

	// HostIface is the name of every host's interface into the bridge.
	HostIface = "eth0"

	// MaxHosts bounds a Lab: hosts take addresses .1 to .MaxHosts of one /24.
	MaxHosts = 250

	// bridgeName is the bridge inside the bridge namespace.
	bridgeName = "br0"
	// ipTimeout bounds one `ip` invocation, so a wedged tool fails the test instead of hanging.
	ipTimeout = 30 * time.Second
	// runDir is where `ip netns add` mounts named namespaces (/var/run is a link to it).
	runDir = "/run/netns"
)

// Lab is a set of host namespaces joined by a bridge. Create it with [New] (tests) or [Build].
type Lab struct {
	// Hosts are the lab's hosts, Hosts[i] having address 10.77.<k>.<i+1>.
	Hosts []*Host

	prefix string // "paf-<random>-", the start of every name this lab creates
	bridge string // name of the bridge namespace
	subnet string // "10.77.<k>"

	mu      sync.Mutex
	created []string // namespaces created so far, in order; nil once closed
	closed  bool
}

// Host is one namespace of a Lab, acting as a machine on the lab's LAN.
type Host struct {
	Name  string // network namespace name, as `ip netns` knows it
	IP    string // IPv4 address on Iface, e.g. "10.77.42.1"
	Iface string // the host's interface into the bridge (HostIface)

	lab  *Lab
	port string // the bridge-side end of the host's veth pair, in the bridge namespace
}

var (
	availOnce sync.Once
	availErr  error
)

// Available reports whether the harness can run here: Linux, root, `ip` present, and network
// namespaces that can be created and entered. The answer is probed once and remembered.
func Available() error {
	availOnce.Do(func() { availErr = probe() })
	return availErr
}

func probe() error {
	if runtime.GOOS != "linux" {
		return fmt.Errorf("%w: network namespaces need Linux, this is %s", ErrUnavailable, runtime.GOOS)
	}
	if os.Geteuid() != 0 {
		return fmt.Errorf("%w: creating network namespaces needs root", ErrUnavailable)
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return fmt.Errorf("%w: iproute2's ip: %v", ErrUnavailable, err)
	}
	prefix, err := randomPrefix()
	if err != nil {
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	name := prefix + "probe"
	if err := ip("netns", "add", name); err != nil {
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	defer func() { _ = ip("netns", "del", name) }()
	if err := runIn(name, func() error { return nil }); err != nil {
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	return nil
}

// Require skips t when the harness is not [Available], or fails it when the environment
// variable PAF_REQUIRE_NETNS is "1".
func Require(t testing.TB) {
	t.Helper()
	require(t, Available())
}

// require is Require's decision, given Available's answer.
func require(t testing.TB, err error) {
	t.Helper()
	if err == nil {
		return
	}
	if os.Getenv(RequireEnv) == "1" {
		t.Fatalf("%v (%s=1 requires it)", err, RequireEnv)
		return
	}
	t.Skipf("skipping: %v", err)
}

// New builds a Lab of n hosts for t, or skips t as [Require] does. t.Cleanup tears the lab
// down, whether the test passes or fails.
func New(t testing.TB, n int) *Lab {
	t.Helper()
	Require(t)
	lab, err := Build(n)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := lab.Close(); err != nil {
			t.Errorf("netns: tear down lab: %v", err)
		}
	})
	return lab
}

// Build creates a Lab of n hosts (1 to MaxHosts) outside of a test; the caller must Close it.
// On error, whatever was created is removed again.
func Build(n int) (_ *Lab, err error) {
	if n < 1 || n > MaxHosts {
		return nil, fmt.Errorf("netns: %d hosts; want 1 to %d", n, MaxHosts)
	}
	if err := Available(); err != nil {
		return nil, err
	}
	prefix, err := randomPrefix()
	if err != nil {
		return nil, err
	}
	var k [1]byte
	if _, err := rand.Read(k[:]); err != nil {
		return nil, fmt.Errorf("netns: random subnet: %w", err)
	}
	l := &Lab{
		prefix: prefix,
		bridge: prefix + "br",
		// 1-254: the subnet only has to differ between labs for readable traces; labs live
		// in separate namespaces and could not collide anyway.
		subnet: fmt.Sprintf("10.77.%d", 1+int(k[0])%254),
	}
	defer func() {
		if err != nil {
			_ = l.Close()
		}
	}()
	if err := l.addNamespace(l.bridge); err != nil {
		return nil, err
	}
	// Multicast snooping off: the bridge floods every group, as a dumb LAN switch does, so
	// tests do not depend on IGMP timing.
	if err := ip("-n", l.bridge, "link", "add", bridgeName, "type", "bridge", "mcast_snooping", "0"); err != nil {
		return nil, err
	}
	if err := ip("-n", l.bridge, "link", "set", bridgeName, "up"); err != nil {
		return nil, err
	}
	for i := 1; i <= n; i++ {
		h, err := l.addHost(i)
		if err != nil {
			return nil, err
		}
		l.Hosts = append(l.Hosts, h)
	}
	return l, nil
}

// addHost creates host i: namespace, veth pair into the bridge, address, multicast route.
func (l *Lab) addHost(i int) (*Host, error) {
	h := &Host{
		Name:  fmt.Sprintf("%sh%d", l.prefix, i),
		IP:    fmt.Sprintf("%s.%d", l.subnet, i),
		Iface: HostIface,
		lab:   l,
		port:  fmt.Sprintf("p%d", i),
	}
	if err := l.addNamespace(h.Name); err != nil {
		return nil, err
	}
	// The pair is created inside the host namespace with its peer moved straight into the
	// bridge namespace, so no interface ever exists in the caller's namespace.
	steps := [][]string{
		{"-n", h.Name, "link", "add", h.Iface, "type", "veth", "peer", "name", h.port, "netns", l.bridge},
		{"-n", l.bridge, "link", "set", h.port, "master", bridgeName},
		{"-n", l.bridge, "link", "set", h.port, "up"},
		{"-n", h.Name, "addr", "add", h.IP + "/24", "dev", h.Iface},
		{"-n", h.Name, "link", "set", h.Iface, "multicast", "on", "up"},
		// Multicast would follow the connected route anyway once it exists; an explicit
		// route says where it goes even before, and without a default route.
		{"-n", h.Name, "route", "add", "224.0.0.0/4", "dev", h.Iface},
	}
	for _, args := range steps {
		if err := ip(args...); err != nil {
			return nil, err
		}
	}
	return h, nil
}

// addNamespace creates a namespace with its loopback up and records it for Close.
func (l *Lab) addNamespace(name string) error {
	if err := ip("netns", "add", name); err != nil {
		return err
	}
	l.mu.Lock()
	l.created = append(l.created, name)
	l.mu.Unlock()
	return ip("-n", name, "link", "set", "lo", "up")
}

// Close tears the lab down: it kills, by PID, the processes still running in the lab's
// namespaces (never this process), then deletes the namespaces, which takes their interfaces
// with them. It is idempotent and returns the problems it met, having tried everything.
func (l *Lab) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	l.closed = true
	var errs []error
	for i := len(l.created) - 1; i >= 0; i-- {
		name := l.created[i]
		if err := killProcesses(name); err != nil {
			errs = append(errs, err)
		}
		if err := ip("netns", "del", name); err != nil {
			errs = append(errs, err)
		}
	}
	l.created = nil
	return errors.Join(errs...)
}

// Subnet returns the lab's network, e.g. "10.77.42.0/24".
func (l *Lab) Subnet() string { return l.subnet + ".0/24" }

// Namespaces returns the names of the namespaces the lab created and has not deleted yet:
// the bridge namespace and one per host.
func (l *Lab) Namespaces() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.created...)
}

// killProcesses sends SIGKILL to every process whose network namespace is the named one,
// except this process (whose threads may visit it through Run).
func killProcesses(name string) error {
	out, err := ipOutput("netns", "pids", name)
	if err != nil {
		return err
	}
	var errs []error
	for _, f := range strings.Fields(string(out)) {
		pid, err := strconv.Atoi(f)
		if err != nil || pid <= 1 || pid == os.Getpid() {
			continue
		}
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
			errs = append(errs, fmt.Errorf("netns: kill %d in %s: %w", pid, name, err))
		}
	}
	return errors.Join(errs...)
}

// Command returns a command that runs name with args on the host (`ip netns exec`). The
// caller starts it and must wait for it; [Lab.Close] kills whatever is left running.
func (h *Host) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", h.Name, name}, args...)...)
}

// Lab returns the lab the host belongs to.
func (h *Host) Lab() *Lab { return h.lab }

// LinkDown cuts the host off the LAN by taking its port on the bridge down, as pulling the
// cable would. The host's own interface, addresses and routes are left as they are.
func (h *Host) LinkDown() error {
	return ip("-n", h.lab.bridge, "link", "set", h.port, "down")
}

// LinkUp reconnects a host cut off by [Host.LinkDown].
func (h *Host) LinkUp() error {
	return ip("-n", h.lab.bridge, "link", "set", h.port, "up")
}

// Run calls fn on an OS thread switched into the host's network namespace and waits for it.
// Sockets fn creates stay in the namespace for their whole life; goroutines fn starts do not
// run in it (but may use those sockets). fn runs on another goroutine, so it must report
// failure by returning an error, not with t.Fatal; a panic in fn is re-raised in the caller.
func (h *Host) Run(fn func() error) error {
	if err := runIn(h.Name, fn); err != nil {
		return fmt.Errorf("netns: run in %s: %w", h.Name, err)
	}
	return nil
}

// randomPrefix returns "paf-<8 hex>-".
func randomPrefix() (string, error) {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("netns: random name: %w", err)
	}
	return "paf-" + hex.EncodeToString(b[:]) + "-", nil
}

func ip(args ...string) error {
	_, err := ipOutput(args...)
	return err
}

// ipOutput runs ip with args and returns its stdout; errors carry the command and its stderr.
func ipOutput(args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), ipTimeout)
	defer cancel()
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "ip", args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("netns: ip %s: %w: %s", strings.Join(args, " "), err, bytes.TrimSpace(stderr.Bytes()))
	}
	return out, nil
}
