package node

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/paf-mesh/paf-mesh/internal/testutil"
	"github.com/paf-mesh/paf-mesh/mesh"
	"github.com/paf-mesh/paf-mesh/relay"
)

// A long-lived peer started together with a shell command acting as its
// name (`serve --name bob` and `check --as bob`) holds the name every time,
// and the command still does its work (issue 17 item 2: serve used to exit
// "name taken", or lose a concurrent claim and run with no name).
func TestLongLivedClaimWinsOverBrief(t *testing.T) {
	m := newTestMesh(t)
	h := m.start("h", "holder") // a peer already running, as on a real machine
	waitNames(t, []*Node{h}, "holder")
	for try := range 10 {
		var wg sync.WaitGroup
		var serve *Node
		var serveErr, checkErr error
		wg.Add(2)
		go func() {
			defer wg.Done()
			serve, serveErr = m.tryStart(fmt.Sprint("serve", try), "bob")
		}()
		go func() {
			defer wg.Done()
			a, err := ActAs(ctxT(t, startTimeout), m.config(fmt.Sprint("cli", try)), "bob")
			if err != nil {
				checkErr = err
				return
			}
			defer a.Close()
			ms, err := a.Messages(ctxT(t, 20*time.Second), false, 0)
			if err == nil {
				err = a.Ack(ctxT(t, 5*time.Second), ms)
			}
			checkErr = err
		}()
		wg.Wait()
		if serveErr != nil {
			t.Fatalf("try %d: the long-lived peer did not start: %v", try, serveErr)
		}
		if checkErr != nil {
			t.Errorf("try %d: the check failed: %v", try, checkErr)
		}
		testutil.WaitFor(t, meshDeadline, "the long-lived peer to hold bob, seen by the other peer too", func() bool {
			o, ok := h.peer.Owner("bob")
			return serve.Name() == "bob" && ok && o.ID == serve.ID()
		})
		select {
		case e := <-serve.Lost():
			t.Fatalf("try %d: the long-lived peer reported its name lost: %v", try, e)
		default:
		}
		serve.Close()
		testutil.WaitFor(t, meshDeadline, "bob to be free again", func() bool {
			_, ok := h.peer.Owner("bob")
			return !ok
		})
	}
}

// A listen through a brief peer with no timeout (it would hold the name for
// ever) gives the name up when a long-lived peer wants it, and goes on
// waiting through that peer: a message sent to bob then reaches it.
func TestBriefListenYieldsToLongLived(t *testing.T) {
	m := newTestMesh(t)
	alice := m.start("a", "alice")
	waitNames(t, []*Node{alice}, "alice")
	l := m.actAs("bob")
	if !l.Brief() {
		t.Fatal("no peer holds bob: want a brief peer")
	}
	got := make(chan []relay.JSONMessage, 1)
	go func() {
		ms, err := l.Messages(ctxT(t, 60*time.Second), true, 0)
		if err != nil {
			t.Error(err)
		}
		got <- ms
	}()
	waitNames(t, []*Node{alice}, "bob")
	serve := m.start("serve", "bob")
	if serve.Name() != "bob" {
		t.Fatalf("serve holds %q", serve.Name())
	}
	waitNames(t, []*Node{alice}, "bob")
	if r, err := alice.relay.Send(ctxT(t, 10*time.Second), relayOutgoing("alice", "bob", "still there?")); err != nil || r.Status != "delivered" {
		t.Fatalf("send: %+v %v", r, err)
	}
	select {
	case ms := <-got:
		if len(ms) != 1 || ms[0].Body != "still there?" {
			t.Fatalf("listen: %+v", ms)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the listen did not return")
	}
}

// A long-lived peer takes back by itself a name a brief peer (a shell command) won in a
// concurrent claim, so its MCP session is not told "lost its name" (it would register another
// name and lose the one it had); a loss it cannot take back is shown, and so is a failure to
// take it back.
func TestSessionNotToldOfReclaimedName(t *testing.T) {
	m := newTestMesh(t)
	serve := m.start("serve", "bob")
	brief := m.start("cli", "", func(c *Config) { c.Brief = true })
	other := m.start("other", "zed")
	testutil.WaitFor(t, meshDeadline, "the long-lived peer to see the brief one", func() bool {
		b, ok := serve.peer.Member(brief.ID())
		o, ok2 := serve.peer.Member(other.ID())
		return ok && b.Meta.Transient && ok2 && !o.Meta.Transient
	})
	in, out, done := make(chan mesh.Event, 4), make(chan mesh.Event, 4), make(chan struct{})
	defer close(done)
	go serve.sessionEvents(in, out, done)
	in <- mesh.Event{Type: mesh.EventNameLost, Name: "bob", PeerID: brief.ID()} // taken back
	in <- mesh.Event{Type: mesh.EventNameLost, Name: "bob", PeerID: other.ID()} // lost
	select {
	case e := <-out:
		if e.PeerID != other.ID() {
			t.Fatalf("the session was shown %+v: a loss to a brief peer, which the node takes back", e)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a loss to a long-lived peer was not shown")
	}
	b := &Backend{n: serve}
	ch := make(chan mesh.Event, 1)
	cancel := b.Subscribe(ch)
	defer cancel()
	serve.reportLost(mesh.Event{Type: mesh.EventNameLost, Name: "bob", PeerID: brief.ID()}) // taking it back failed
	select {
	case e := <-ch:
		if e.Type != mesh.EventNameLost || e.Name != "bob" {
			t.Fatalf("subscriber got %+v", e)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a failure to take the name back was not shown to the session")
	}
}
