package node

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/paf-mesh/paf-mesh/internal/testutil"
	"github.com/paf-mesh/paf-mesh/relay"
)

// checkAll reads and acknowledges a's unread messages.
func checkAll(t *testing.T, a *Actor) []relay.JSONMessage {
	t.Helper()
	ms, err := a.Messages(ctxT(t, 20*time.Second), false, 0)
	if err != nil {
		t.Fatalf("check as %s: %v", a.Name(), err)
	}
	if err := a.Ack(ctxT(t, 5*time.Second), ms); err != nil {
		t.Fatalf("ack as %s: %v", a.Name(), err)
	}
	return ms
}

// send, check and listen as a name held by a live local peer go through its
// control socket: check returns without marking read, ack marks read.
// (Was TestE2ESendCheck and TestE2EListen.)
func TestActorThroughLivePeer(t *testing.T) {
	m := newTestMesh(t)
	alice, bob := m.start("a", "alice"), m.start("b", "bob")
	waitNames(t, []*Node{alice, bob}, "alice", "bob")
	asAlice, asBob := m.actAs("alice"), m.actAs("bob")
	if asAlice.Brief() || asBob.Brief() {
		t.Fatal("acted as a name held on this machine through a brief peer, want its control socket")
	}
	r, err := asAlice.Send(ctxT(t, 10*time.Second), "bob", "hi")
	if err != nil || r.Status != "delivered" || r.ID == "" {
		t.Fatalf("send: %+v %v", r, err)
	}
	ms, err := asBob.Messages(ctxT(t, 10*time.Second), false, 0)
	if err != nil || len(ms) != 1 || ms[0].Body != "hi" || ms[0].From != "alice" || ms[0].ID != r.ID {
		t.Fatalf("check: %+v %v", ms, err)
	}
	if again := checkAll(t, asBob); len(again) != 1 {
		t.Fatalf("a check without ack marked the message read: %+v", again)
	}
	if again := checkAll(t, asBob); len(again) != 0 {
		t.Fatalf("after ack: %d messages", len(again))
	}

	// listen: returns when a message arrives.
	got := make(chan []relay.JSONMessage, 1)
	go func() {
		ms, err := asBob.Messages(ctxT(t, 20*time.Second), true, 20*time.Second)
		if err != nil {
			t.Error(err)
		}
		got <- ms
	}()
	if _, err := asAlice.Send(ctxT(t, 10*time.Second), "bob", "are you there?"); err != nil {
		t.Fatal(err)
	}
	select {
	case ms := <-got:
		if len(ms) != 1 || ms[0].Body != "are you there?" {
			t.Fatalf("listen: %+v", ms)
		}
		if err := asBob.Ack(ctxT(t, 5*time.Second), ms); err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("listen did not return")
	}
	// listen with a timeout and nothing: no messages, no error.
	ms, err = asBob.Messages(ctxT(t, 10*time.Second), true, 300*time.Millisecond)
	if err != nil || len(ms) != 0 {
		t.Fatalf("listen timeout: %+v %v", ms, err)
	}
}

// With no local holder, a name is acted as by a brief peer that joins the
// mesh, collects what holders kept for it, and leaves; a send from a brief
// peer with nobody else online fails with ErrNoHolders, and with one holder
// online it is stored by that one. (Was TestE2EFutureMessageNeedsAHolder.)
func TestActorBrief(t *testing.T) {
	m := newTestMesh(t)
	lone := m.actAs("alice")
	if !lone.Brief() {
		t.Fatal("no peer holds alice, yet the actor did not run a brief peer")
	}
	if _, err := lone.Send(ctxT(t, 10*time.Second), "bob", "hello"); !errors.Is(err, relay.ErrNoHolders) {
		t.Fatalf("send with nobody to keep it: %v, want ErrNoHolders", err)
	}
	lone.Close()

	h := m.start("h", "holder")
	waitNames(t, []*Node{h}, "holder")
	a := m.actAs("alice")
	r, err := a.Send(ctxT(t, 10*time.Second), "bob", "hello")
	if err != nil || r.Status != "stored" || r.Holders != 1 {
		t.Fatalf("send with one holder running: %+v %v", r, err)
	}
	a.Close()
	b := m.actAs("bob")
	if !b.Brief() {
		t.Fatal("bob is held nowhere: want a brief peer")
	}
	var got []relay.JSONMessage
	testutil.WaitFor(t, 20*time.Second, "bob's brief peer to collect the message", func() bool {
		got = append(got, checkAll(t, b)...)
		return len(got) > 0
	})
	if len(got) != 1 || got[0].Body != "hello" || got[0].From != "alice" {
		t.Fatalf("bob got %+v", got)
	}
	ms, err := b.Messages(ctxT(t, 10*time.Second), true, 200*time.Millisecond)
	if err != nil || len(ms) != 0 {
		t.Fatalf("brief listen with nothing: %+v %v", ms, err)
	}
}

// A name held by a peer elsewhere cannot be acted as from here: the error
// says where to act from.
func TestActorNameHeldElsewhere(t *testing.T) {
	m := newTestMesh(t)
	// Secure mode on loopback, so that a second run dir (the holder is then
	// not "on this machine" for the actor) still shares the mesh's keys.
	k := testKeys(t)
	secure := func(c *Config) { c.Keys, c.Bind = k, mustAddrPort("127.0.0.1:0") }
	n := m.start("a", "alice", secure)
	other := m.config("cli")
	secure(&other)
	other.RunDir = m.runDir + "-other"
	other.Join = []string{n.Addr()}
	_, err := ActAs(ctxT(t, startTimeout), other, "alice")
	if err == nil || !strings.Contains(err.Error(), "from that peer's machine") {
		t.Fatalf("act as a name held elsewhere: %v", err)
	}
	_ = os.RemoveAll(other.RunDir)
}

// A thousand sends through the live peer arrive in order, once each. (Was
// TestE2EThousandInOrder, which started one process per send.)
func TestThousandInOrder(t *testing.T) {
	m := newTestMesh(t)
	alice, bob := m.start("a", "alice"), m.start("b", "bob")
	waitNames(t, []*Node{alice, bob}, "alice", "bob")
	asAlice, asBob := m.actAs("alice"), m.actAs("bob")
	const n = 1000
	for i := range n {
		if _, err := asAlice.Send(ctxT(t, 10*time.Second), "bob", fmt.Sprint("m", i)); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
	}
	got := checkAll(t, asBob)
	if len(got) != n {
		t.Fatalf("got %d messages, want %d", len(got), n)
	}
	ids := map[string]bool{}
	for i, msg := range got {
		if msg.Body != fmt.Sprint("m", i) || ids[msg.ID] {
			t.Fatalf("message %d is %q (id %s): out of order or duplicated", i, msg.Body, msg.ID)
		}
		ids[msg.ID] = true
	}
}

// A 5 MiB body is saved to a file, shown as a preview naming it; one over
// the limit is refused and nothing arrives. (Was TestE2ELargeMessage.)
func TestLargeMessage(t *testing.T) {
	m := newTestMesh(t)
	alice, bob := m.start("a", "alice"), m.start("b", "bob")
	waitNames(t, []*Node{alice, bob}, "alice", "bob")
	asAlice, asBob := m.actAs("alice"), m.actAs("bob")
	big := strings.Repeat("paf-mesh large body ", 5<<20/20)
	if r, err := asAlice.Send(ctxT(t, 30*time.Second), "bob", big); err != nil || r.Status != "delivered" {
		t.Fatalf("send 5 MiB: %+v %v", r, err)
	}
	got := checkAll(t, asBob)
	if len(got) != 1 || got[0].File == "" {
		t.Fatalf("want one message saved to a file: %+v", len(got))
	}
	data, err := os.ReadFile(got[0].File)
	if err != nil {
		t.Fatal(err)
	}
	if sha256.Sum256(data) != sha256.Sum256([]byte(big)) {
		t.Fatal("the saved file differs from what was sent")
	}
	if !strings.Contains(got[0].Body, got[0].File) || len(got[0].Body) > 2000 {
		t.Fatal("the body should be a preview naming the file")
	}
	if _, err := asAlice.Send(ctxT(t, 30*time.Second), "bob", strings.Repeat("x", DefaultMaxBody+1)); err == nil || !strings.Contains(err.Error(), "too large") {
		t.Fatalf("over the limit: %v, want too large", err)
	}
	if again := checkAll(t, asBob); len(again) != 0 {
		t.Fatal("an oversize message arrived")
	}
}

// A message to a name nobody holds is stored by DefaultReplicas peers and
// handed over when the name comes online, once. (Was TestE2EFutureMessage.)
func TestFutureMessage(t *testing.T) {
	m := newTestMesh(t)
	ns := []*Node{m.start("a", "a"), m.start("b", "b"), m.start("c", "c")}
	waitNames(t, ns, "a", "b", "c")
	r, err := m.actAs("a").Send(ctxT(t, 10*time.Second), "nessa", "welcome")
	if err != nil || r.Status != "stored" || r.Holders != DefaultReplicas {
		t.Fatalf("send to a future name: %+v %v, want stored by %d", r, err, DefaultReplicas)
	}
	nessa := m.start("n", "nessa")
	waitNames(t, append(ns, nessa), "nessa")
	as := m.actAs("nessa")
	var got []relay.JSONMessage
	testutil.WaitFor(t, 15*time.Second, "nessa to have the message", func() bool {
		got = append(got, checkAll(t, as)...)
		return len(got) > 0
	})
	if len(got) != 1 || got[0].Body != "welcome" {
		t.Fatalf("nessa got %+v", got)
	}
	if again := checkAll(t, as); len(again) != 0 {
		t.Fatal("shown twice")
	}
}

// The configurable limits reach the relay: a receiver's MaxBody refuses a
// larger body, its FileOver saves smaller ones to a file, a sender's
// Replicas sets how many keep a future message. (Was TestE2ETuning.)
func TestTuning(t *testing.T) {
	m := newTestMesh(t)
	bob := m.start("bob", "bob", func(c *Config) { c.MaxBody, c.FileOver = 2<<10, 1<<10 })
	alice := m.start("alice", "alice", func(c *Config) { c.Replicas = 1 })
	carol := m.start("c", "carol")
	waitNames(t, []*Node{bob, alice, carol}, "bob", "alice", "carol")
	asAlice, asBob := m.actAs("alice"), m.actAs("bob")
	_, err := asAlice.Send(ctxT(t, 10*time.Second), "bob", strings.Repeat("x", 3000))
	if err == nil || !strings.Contains(err.Error(), "too large") || !strings.Contains(err.Error(), "at most 2048") {
		t.Fatalf("3000 bytes to a peer that takes 2KiB: %v", err)
	}
	if r, err := asAlice.Send(ctxT(t, 10*time.Second), "bob", strings.Repeat("y", 1500)); err != nil || r.Status != "delivered" {
		t.Fatalf("1500 bytes to bob: %+v %v", r, err)
	}
	got := checkAll(t, asBob)
	if len(got) != 1 || got[0].File == "" || len(got[0].Body) >= 1500 {
		t.Fatalf("bob should have one message saved to a file with a preview, got %+v", got)
	}
	if r, err := asAlice.Send(ctxT(t, 10*time.Second), "dora", "for later"); err != nil || r.Status != "stored" || r.Holders != 1 {
		t.Fatalf("a future message from a peer with Replicas 1: %+v %v", r, err)
	}
}

// Every peer closes; days later one peer starts on the same state dir and
// adopts what the others held, and the recipient gets it. (Was
// TestE2ETotalRestart.)
func TestTotalRestartAdoptsOrphans(t *testing.T) {
	m := newTestMesh(t)
	a, b := m.start("a", "a"), m.start("b", "b")
	waitNames(t, []*Node{a, b}, "a", "b")
	asA := m.actAs("a")
	for i := range 3 {
		if r, err := asA.Send(ctxT(t, 10*time.Second), "sleeper", fmt.Sprint("zz", i)); err != nil || r.Status != "stored" {
			t.Fatalf("send: %+v %v", r, err)
		}
	}
	asA.Close()
	a.Close()
	b.Close()
	// a and b had a state dir each: a new peer on each finds the closed
	// peer's slot unlocked and adopts what it held.
	b2 := m.start("b", "")
	a2 := m.start("a", "")
	s := m.start("s", "sleeper")
	waitNames(t, []*Node{a2, b2, s}, "sleeper")
	as := m.actAs("sleeper")
	var got []relay.JSONMessage
	testutil.WaitFor(t, 20*time.Second, "the stored messages to arrive", func() bool {
		got = append(got, checkAll(t, as)...)
		return len(got) >= 3
	})
	if len(got) != 3 || got[0].Body != "zz0" || got[2].Body != "zz2" {
		t.Fatalf("after a total restart: %+v", got)
	}
}

// Control operations as a name this peer does not hold are refused.
func TestControlAsOtherName(t *testing.T) {
	m := newTestMesh(t)
	n := m.start("a", "alice")
	h := (*controlHandler)(n)
	ctx := ctxT(t, 5*time.Second)
	if _, err := h.Send(ctx, "mallory", "bob", "x"); err == nil || !strings.Contains(err.Error(), `holds "alice", not "mallory"`) {
		t.Fatalf("send as another name: %v", err)
	}
	if err := h.Wait(ctx, ""); err == nil {
		t.Fatal("wait as no name succeeded")
	}
	if _, err := h.Peek("mallory"); err == nil {
		t.Fatal("peek as another name succeeded")
	}
	if err := h.Ack("mallory", []string{"x"}); err == nil {
		t.Fatal("ack as another name succeeded")
	}
}

// PeerStartedBy finds the named local peer started by the hook's client: the
// hook's parent, or that parent's parent when the client ran the hook through a
// shell (dash does not exec). Here the peers run in this test process, so
// their parent is the process that started this test.
func TestPeerStartedBy(t *testing.T) {
	m := newTestMesh(t)
	n := m.start("a", "ann")
	m.start("b", "") // no name: never the answer
	name, ctl := PeerStartedBy(m.runDir, os.Getppid())
	if name != "ann" || ctl != n.ControlPath() {
		t.Fatalf("PeerStartedBy(the client) = %q, %q; want ann, %s", name, ctl, n.ControlPath())
	}
	// The hook's parent is a shell (this process stands for it) whose parent is the client.
	if name, ctl := PeerStartedBy(m.runDir, os.Getpid()); name != "ann" || ctl != n.ControlPath() {
		t.Fatalf("PeerStartedBy(a shell of the client) = %q, %q; want ann", name, ctl)
	}
	// A process whose parent and grandparent started no peer: nothing.
	other := exec.Command("sleep", "30")
	if err := other.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = other.Process.Kill(); _ = other.Wait() })
	if name, ctl := PeerStartedBy(m.runDir, other.Process.Pid); name != "" || ctl != "" {
		t.Fatalf("PeerStartedBy(a process whose line started none) = %q, %q", name, ctl)
	}
	if got := parentOf(-1); got != -1 {
		t.Fatalf("parentOf(-1) = %d", got)
	}
	if LocalHolder(m.runDir, "ann") != n.ControlPath() || LocalHolder(m.runDir+"-none", "ann") != "" {
		t.Fatal("LocalHolder does not find ann's peer, or finds one in a run dir that does not exist")
	}
}
