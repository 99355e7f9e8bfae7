package netns

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/paf-mesh/paf-mesh/internal/testutil"
)

// fakeTB records what Require asked for instead of stopping the goroutine.
type fakeTB struct {
	testing.TB
	skipped, failed bool
	msg             string
}

func (f *fakeTB) Helper() {}
func (f *fakeTB) Skipf(format string, args ...any) {
	f.skipped, f.msg = true, fmt.Sprintf(format, args...)
}
func (f *fakeTB) Fatalf(format string, args ...any) {
	f.failed, f.msg = true, fmt.Sprintf(format, args...)
}

func TestRequireDecision(t *testing.T) {
	unavailable := fmt.Errorf("%w: needs root", ErrUnavailable)
	tests := map[string]struct {
		err          error
		env          string
		skip, failed bool
	}{
		"available":              {err: nil, env: ""},
		"available, required":    {err: nil, env: "1"},
		"unavailable":            {err: unavailable, env: "", skip: true},
		"unavailable, required":  {err: unavailable, env: "1", failed: true},
		"unavailable, env not 1": {err: unavailable, env: "yes", skip: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Setenv(RequireEnv, tc.env)
			f := &fakeTB{TB: t}
			require(f, tc.err)
			if f.skipped != tc.skip || f.failed != tc.failed {
				t.Fatalf("skipped=%v failed=%v (%q); want skipped=%v failed=%v", f.skipped, f.failed, f.msg, tc.skip, tc.failed)
			}
			if tc.err != nil && !strings.Contains(f.msg, "needs root") {
				t.Fatalf("message %q does not say why", f.msg)
			}
		})
	}
}

func TestBuildRejectsBadSize(t *testing.T) {
	for _, n := range []int{-1, 0, MaxHosts + 1} {
		if lab, err := Build(n); err == nil {
			_ = lab.Close()
			t.Fatalf("Build(%d) succeeded", n)
		}
	}
}

// listen starts a TCP echo-less acceptor on h and returns its address; it stops at cleanup.
func listen(t *testing.T, h *Host) string {
	t.Helper()
	var ln net.Listener
	if err := h.Run(func() (err error) {
		ln, err = net.Listen("tcp4", net.JoinHostPort(h.IP, "0"))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_, _ = io.WriteString(c, h.Name)
			_ = c.Close()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		<-done
	})
	return ln.Addr().String()
}

// dial connects from h to addr and returns the name the acceptor sent.
func dial(h *Host, addr string, timeout time.Duration) (string, error) {
	var got []byte
	err := h.Run(func() error {
		c, err := net.DialTimeout("tcp4", addr, timeout)
		if err != nil {
			return err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(timeout))
		got, err = io.ReadAll(c)
		return err
	})
	return string(got), err
}

func TestHostsReachEachOtherAndPartition(t *testing.T) {
	lab := New(t, 2)
	a, b := lab.Hosts[0], lab.Hosts[1]
	addr := listen(t, b)
	if !strings.HasPrefix(addr, b.IP+":") {
		t.Fatalf("listener on %s, want %s", addr, b.IP)
	}

	if got, err := dial(a, addr, 2*time.Second); err != nil || got != b.Name {
		t.Fatalf("dial %s from %s = %q, %v; want %q", addr, a.Name, got, err, b.Name)
	}

	if err := b.LinkDown(); err != nil {
		t.Fatal(err)
	}
	if got, err := dial(a, addr, 300*time.Millisecond); err == nil {
		t.Fatalf("dial across a downed link succeeded (%q)", got)
	}

	if err := b.LinkUp(); err != nil {
		t.Fatal(err)
	}
	testutil.WaitForEvery(t, waitPoll, 10*time.Second, "the link to come back", func() bool {
		got, err := dial(a, addr, 300*time.Millisecond)
		return err == nil && got == b.Name
	})
}

// TestMulticastCrossesTheBridge checks what mDNS needs: a datagram to a multicast group sent
// on one host reaches a listener on another. It runs entirely inside the lab.
func TestMulticastCrossesTheBridge(t *testing.T) {
	lab := New(t, 2)
	a, b := lab.Hosts[0], lab.Hosts[1]
	group := &net.UDPAddr{IP: net.IPv4(239, 77, 77, 77), Port: 47777}

	var rx *net.UDPConn
	if err := b.Run(func() error {
		ifi, err := net.InterfaceByName(b.Iface)
		if err != nil {
			return err
		}
		rx, err = net.ListenMulticastUDP("udp4", ifi, group)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer rx.Close()

	var tx *net.UDPConn
	if err := a.Run(func() (err error) {
		tx, err = net.DialUDP("udp4", nil, group)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer tx.Close()

	// Datagrams may be lost while the link settles, so send until one arrives.
	got := make(chan string, 1)
	go func() {
		buf := make([]byte, 64)
		_ = rx.SetReadDeadline(time.Now().Add(10 * time.Second))
		n, src, err := rx.ReadFromUDP(buf)
		if err != nil {
			got <- err.Error()
			return
		}
		got <- src.IP.String() + " " + string(buf[:n])
	}()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		if _, err := tx.Write([]byte("hello")); err != nil {
			t.Fatalf("send: %v", err)
		}
		select {
		case s := <-got:
			if want := a.IP + " hello"; s != want {
				t.Fatalf("received %q; want %q", s, want)
			}
			return
		case <-tick.C:
		}
	}
}

func TestCommandRunsInHost(t *testing.T) {
	lab := New(t, 1)
	h := lab.Hosts[0]
	out, err := h.Command(context.Background(), "ip", "-4", "-o", "addr", "show", "dev", h.Iface).CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if !strings.Contains(string(out), " "+h.IP+"/24 ") {
		t.Fatalf("host %s shows %q; want address %s", h.Name, out, h.IP)
	}
}

// nsIno identifies the network namespace of the calling thread.
func nsIno() (uint64, error) {
	var st unix.Stat_t
	if err := unix.Stat("/proc/thread-self/ns/net", &st); err != nil {
		return 0, err
	}
	return st.Ino, nil
}

func TestRunSwitchesAndRestores(t *testing.T) {
	lab := New(t, 1)
	h := lab.Hosts[0]
	outer, err := nsIno()
	if err != nil {
		t.Fatal(err)
	}
	var inner uint64
	err = h.Run(func() (err error) {
		if inner, err = nsIno(); err != nil {
			return err
		}
		ifi, err := net.InterfaceByName(h.Iface)
		if err != nil {
			return err
		}
		addrs, err := ifi.Addrs()
		if err != nil {
			return err
		}
		for _, a := range addrs {
			if strings.HasPrefix(a.String(), h.IP+"/") {
				return nil
			}
		}
		return fmt.Errorf("%s has %v, not %s", h.Iface, addrs, h.IP)
	})
	if err != nil {
		t.Fatal(err)
	}
	if inner == outer {
		t.Fatalf("fn ran in the caller's namespace (%d)", inner)
	}
	// Run many times: a thread returned to the pool in the wrong namespace would show up in
	// some later reading from an unlocked goroutine.
	for range 20 {
		if err := h.Run(func() error { return nil }); err != nil {
			t.Fatal(err)
		}
		if got, err := nsIno(); err != nil || got != outer {
			t.Fatalf("caller's namespace is %d (%v), was %d", got, err, outer)
		}
	}

	sentinel := errors.New("from fn")
	if err := h.Run(func() error { return sentinel }); !errors.Is(err, sentinel) {
		t.Fatalf("Run = %v; want fn's error", err)
	}

	defer func() {
		if p := recover(); p != "boom" {
			t.Fatalf("recovered %v; want fn's panic", p)
		}
	}()
	_ = h.Run(func() error { panic("boom") })
	t.Fatal("Run returned after fn panicked")
}

// TestCloseRemovesEverything checks that Close deletes the lab's namespaces, kills processes
// left running in them, and can be called again.
func TestCloseRemovesEverything(t *testing.T) {
	Require(t)
	lab, err := Build(2)
	if err != nil {
		t.Fatal(err)
	}
	names := lab.Namespaces()
	if len(names) != 3 {
		_ = lab.Close()
		t.Fatalf("namespaces %q; want a bridge and 2 hosts", names)
	}
	sleeper := lab.Hosts[1].Command(context.Background(), "sleep", "600")
	if err := sleeper.Start(); err != nil {
		_ = lab.Close()
		t.Fatal(err)
	}
	testutil.WaitForEvery(t, waitPoll, 5*time.Second, "sleep to enter the namespace", func() bool {
		out, _ := exec.Command("ip", "netns", "pids", lab.Hosts[1].Name).Output()
		return strings.Contains(" "+strings.Join(strings.Fields(string(out)), " ")+" ", fmt.Sprintf(" %d ", sleeper.Process.Pid))
	})

	if err := lab.Close(); err != nil {
		t.Fatal(err)
	}
	if err := sleeper.Wait(); err == nil {
		t.Fatal("process left in the lab was not killed")
	}
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		for _, line := range strings.Split(string(out), "\n") {
			if f := strings.Fields(line); len(f) > 0 && f[0] == n {
				t.Errorf("namespace %s still listed after Close", n)
			}
		}
		if _, err := os.Stat(runDir + "/" + n); err == nil {
			t.Errorf("namespace file %s/%s still exists", runDir, n)
		}
	}
	if err := lab.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}
