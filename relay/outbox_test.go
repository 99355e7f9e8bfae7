package relay

import (
	"github.com/paf-mesh/paf-mesh/relay/wire"

	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/paf-mesh/paf-mesh/internal/testutil"
)

// faults is an in-process fault-injecting link in front of a peer's relay: what the network
// does to it in a partition, without network namespaces. Cut, a request is lost either on
// its way in (never handled) or on its way back (handled and stored, its answer lost), at
// random; dropAcks loses the answers of the next deliveries after they were handled.
type faults struct {
	mu       sync.Mutex
	cut      bool
	dropAcks int
	rng      *rand.Rand
	lostIn   int // requests lost before they were handled
	lostBack int // answers lost after their request was handled
}

func (f *faults) setCut(cut bool) {
	f.mu.Lock()
	f.cut = cut
	f.mu.Unlock()
}

func (f *faults) opt() nodeOpt {
	return func(c *Config) {
		c.wrapHandler = func(next wire.Handler) wire.Handler { return faultHandler{f, next} }
	}
}

type faultHandler struct {
	f    *faults
	next wire.Handler
}

func (h faultHandler) HandleRequest(from string, src netip.Addr, body []byte, respond func([]byte, error)) {
	f := h.f
	f.mu.Lock()
	deliver := len(body) >= 2 && body[1] == wire.ReqDeliver
	var lose, loseAnswer bool
	switch {
	case f.cut:
		if f.rng == nil {
			f.rng = rand.New(rand.NewPCG(1, 2))
		}
		lose = f.rng.IntN(2) == 0
		loseAnswer = !lose
	case f.dropAcks > 0 && deliver:
		f.dropAcks--
		loseAnswer = true
	}
	if lose {
		f.lostIn++
	}
	if loseAnswer {
		f.lostBack++
	}
	f.mu.Unlock()
	if lose {
		return // the requester waits for an answer until its timeout
	}
	if loseAnswer {
		respond = func([]byte, error) {}
	}
	h.next.HandleRequest(from, src, body, respond)
}

// fastRetry makes a sender give up on an unanswered request soon and retry soon.
func fastRetry(c *Config) {
	c.DeliverTimeout = 400 * time.Millisecond
	c.OutboxRetry = 50 * time.Millisecond
	c.OutboxAdopt = 50 * time.Millisecond
}

// collect reads what n's name has received until want bodies arrived (or the deadline), then
// waits for the sender's outbox to empty and reads once more, so that a late duplicate would
// show.
func collect(t *testing.T, sender, n *node, name string, want int) []string {
	t.Helper()
	var got []string
	read := func() {
		ms, err := n.relay.Check(name)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range ms {
			got = append(got, m.Body)
		}
	}
	testutil.WaitFor(t, 60*time.Second, fmt.Sprintf("%d messages for %s", want, name), func() bool {
		read()
		return len(got) >= want
	})
	testutil.WaitFor(t, 30*time.Second, "the sender's outbox to empty", func() bool { return sender.relay.Queued() == 0 })
	read()
	return got
}

// The acceptance test of SPEC section 3's "no ambiguous errors" under a partition: a sender
// streams messages while the recipient's link is cut and restored. Every send that reported
// an error was never shown, and every accepted one is shown exactly once, in send order.
func TestPartitionNoAmbiguousErrors(t *testing.T) {
	f := &faults{}
	ns := meshWith(t, []string{"alice", "bob"}, [][]nodeOpt{{fastRetry}, {f.opt()}})
	alice, bob := ns[0], ns[1]
	const total, cutAt, restoreAt = 120, 30, 45
	var accepted, refused []string
	statuses := map[string]int{}
	var shown []string
	var mu sync.Mutex
	stop := make(chan struct{})
	readerDone := make(chan struct{})
	go func() { // an agent reading while the stream goes on
		defer close(readerDone)
		for {
			ms, _ := bob.relay.Check("bob")
			mu.Lock()
			for _, m := range ms {
				shown = append(shown, m.Body)
			}
			mu.Unlock()
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	}()
	for i := range total {
		switch i {
		case cutAt:
			f.setCut(true)
		case restoreAt:
			f.setCut(false)
		}
		body := fmt.Sprintf("m%03d", i)
		res, err := alice.relay.Send(ctx, Outgoing{From: "alice", To: "bob", Body: body})
		if err != nil {
			refused = append(refused, body)
			t.Logf("send %s: error %v", body, err)
			continue
		}
		switch res.Status {
		case StatusDelivered, StatusStored, StatusQueued:
		default:
			t.Fatalf("send %s: status %q", body, res.Status)
		}
		if res.Status == StatusQueued && res.Reason == "" {
			t.Errorf("send %s: queued with no reason", body)
		}
		statuses[res.Status]++
		accepted = append(accepted, body)
	}
	testutil.WaitFor(t, 60*time.Second, "every accepted message shown", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(shown) >= len(accepted) && alice.relay.Queued() == 0
	})
	close(stop)
	<-readerDone
	ms, _ := bob.relay.Check("bob")
	for _, m := range ms {
		shown = append(shown, m.Body)
	}
	f.mu.Lock()
	t.Logf("statuses %v, refused %d; lost on the way in %d, answers lost %d", statuses, len(refused), f.lostIn, f.lostBack)
	f.mu.Unlock()
	if statuses[StatusQueued] == 0 {
		t.Fatal("nothing was queued: the cut did not bite")
	}
	for _, b := range refused {
		if slices.Contains(shown, b) {
			t.Errorf("%s was reported as an error and shown", b)
		}
	}
	if !slices.Equal(shown, accepted) {
		t.Fatalf("shown %d messages, accepted %d; not each once in order:\nshown    %v\naccepted %v", len(shown), len(accepted), shown, accepted)
	}
}

// A lost acknowledgement: the recipient stored the message, its answer never came. The
// sender's result is queued (not an error), the retry carries the same id, and the message
// is shown once; a message sent meanwhile is queued behind it and shown after it.
func TestLostAckQueuedThenShownOnce(t *testing.T) {
	f := &faults{dropAcks: 1}
	ns := meshWith(t, []string{"alice", "bob"}, [][]nodeOpt{{fastRetry}, {f.opt()}})
	alice, bob := ns[0], ns[1]
	res, err := alice.relay.Send(ctx, Outgoing{From: "alice", To: "bob", Body: "first"})
	if err != nil {
		t.Fatalf("send with its acknowledgement lost: %v; want queued, never an error", err)
	}
	if res.Status != StatusQueued || !strings.Contains(res.Reason, "not answering") || res.ID == "" {
		t.Fatalf("result %+v; want queued, saying the recipient is not answering", res)
	}
	res2, err := alice.relay.Send(ctx, Outgoing{From: "alice", To: "bob", Body: "second"})
	if err != nil || res2.Status == "" {
		t.Fatalf("second send: %+v, %v", res2, err)
	}
	got := collect(t, alice, bob, "bob", 2)
	if !slices.Equal(got, []string{"first", "second"}) {
		t.Fatalf("shown %q; want first then second, each once", got)
	}
	if f.lostBack != 1 {
		t.Fatalf("%d answers lost, want 1", f.lostBack)
	}
}

// skewedClock is a clock off by an amount that a test can change.
type skewedClock struct{ skew atomic.Int64 }

func (c *skewedClock) now() time.Time { return time.Now().Add(time.Duration(c.skew.Load())) }

// A peer whose clock is outside the recipient's window is told so by its result (queued or
// stored, with a reason naming the clock), both sides remember the skew for status, and the
// message arrives once the clock is fixed.
func TestClockSkewNamedInResult(t *testing.T) {
	clock := &skewedClock{}
	clock.skew.Store(int64(5 * time.Minute))
	holds := func(c *Config) { c.HolderDir = filepath.Join(c.StateRoot, "slot-"+c.Dir.ID()) }
	ns := meshWith(t, []string{"alice", "bob", "carol"}, [][]nodeOpt{
		{fastRetry, func(c *Config) { c.Now = clock.now }},
		{holds}, {holds},
	})
	alice, bob := ns[0], ns[1]
	res, err := alice.relay.Send(ctx, Outgoing{From: "alice", To: "bob", Body: "from the future"})
	if err != nil {
		t.Fatalf("send from a skewed clock: %v; want stored or queued naming the clock", err)
	}
	if (res.Status != StatusQueued && res.Status != StatusStored) || !strings.Contains(res.Reason, "clock") || !strings.Contains(res.Reason, "5m0s ahead") {
		t.Fatalf("result %+v; want stored or queued with a reason naming the clock and the skew", res)
	}
	if n := bob.relay.Unread("bob"); n != 0 {
		t.Fatalf("bob has %d messages from a refused clock", n)
	}
	if pc, ok := bob.relay.ClockSkews()[alice.peer.ID()]; !ok || !pc.Measured || !pc.Outside || pc.Skew < 4*time.Minute {
		t.Fatalf("bob's view of alice's clock: %+v, %v; want measured about 5m ahead, outside", pc, ok)
	}
	if pc := alice.relay.ClockSkews()[bob.peer.ID()]; !pc.Outside {
		t.Fatalf("alice's view of bob's clock: %+v; want outside", pc)
	}
	clock.skew.Store(0) // NTP fixed it
	got := collect(t, alice, bob, "bob", 1)
	if !slices.Equal(got, []string{"from the future"}) {
		t.Fatalf("shown %q after the clock was fixed; want the message once", got)
	}
}

// A queued message survives its sender's restart: the next peer of the same state dir that
// holds the sender's name takes over the outbox and delivers it, once.
func TestOutboxSurvivesRestart(t *testing.T) {
	f := &faults{}
	root := t.TempDir()
	alice := startNode(t, root, fastRetry)
	ns := meshWith(t, []string{"bob"}, [][]nodeOpt{{f.opt()}})
	bob := ns[0]
	if _, err := alice.peer.Join(bob.peer.Addr()); err != nil {
		t.Fatal(err)
	}
	if err := alice.peer.Claim(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 30*time.Second, "alice to see bob", func() bool {
		r, _ := alice.peer.Resolve("bob")
		return r.Online && MetaAddr(r.Owner.Meta) != ""
	})
	f.setCut(true)
	res, err := alice.relay.Send(ctx, Outgoing{From: "alice", To: "bob", Body: "kept"})
	if err != nil || res.Status != StatusQueued {
		t.Fatalf("send across a cut link: %+v, %v; want queued", res, err)
	}
	alice.crash()
	files, _ := filepath.Glob(filepath.Join(root, "outbox", "*.db"))
	if len(files) != 1 {
		t.Fatalf("outbox files left by the crashed sender: %v; want its one", files)
	}
	f.setCut(false)
	alice2 := startNodeAs(t, alice.peer.Identity(), root, fastRetry) // the state dir's identity
	if _, err := alice2.peer.Join(bob.peer.Addr()); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 30*time.Second, "alice's name to be free again", func() bool {
		return alice2.peer.Claim(ctx, "alice") == nil
	})
	got := collect(t, alice2, bob, "bob", 1)
	if !slices.Equal(got, []string{"kept"}) {
		t.Fatalf("shown %q; want the queued message once", got)
	}
	testutil.WaitFor(t, 10*time.Second, "the taken-over outbox file to go", func() bool {
		_, err := os.Stat(files[0])
		return os.IsNotExist(err)
	})
}

// A brief peer's Handoff: what it cannot deliver or store stays in its outbox file, and a
// long-lived peer of the same state dir that holds messages takes it over as a holder and
// hands it over once the recipient answers.
func TestHandoffLeavesOutboxForHolder(t *testing.T) {
	f := &faults{}
	root := t.TempDir()
	ns := meshWith(t, []string{"alice", "bob"}, [][]nodeOpt{{fastRetry, func(c *Config) { c.StateRoot = root }}, {f.opt()}})
	alice, bob := ns[0], ns[1]
	f.setCut(true)
	res, err := alice.relay.Send(ctx, Outgoing{From: "alice", To: "bob", Body: "handed"})
	if err != nil || res.Status != StatusQueued {
		t.Fatalf("send across a cut link: %+v, %v; want queued", res, err)
	}
	h := alice.relay.Handoff(ctx)
	if h.Left != 1 || h.File == "" || h.Delivered+h.Stored != 0 {
		t.Fatalf("handoff across a cut link: %+v; want 1 left in a file", h)
	}
	alice.close()
	f.setCut(false)
	holder := startNode(t, root, fastRetry, func(c *Config) {
		c.HolderDir = filepath.Join(root, "slot")
		c.HandoverStagger = 10 * time.Millisecond
	})
	if _, err := holder.peer.Join(bob.peer.Addr()); err != nil {
		t.Fatal(err)
	}
	got := collect(t, holder, bob, "bob", 1)
	if !slices.Equal(got, []string{"handed"}) {
		t.Fatalf("shown %q; want the handed-off message once", got)
	}
	if _, err := os.Stat(h.File); !os.IsNotExist(err) {
		t.Fatalf("the taken-over outbox file is still there: %v", err)
	}
}

// A peer that leaves an outbox behind and says goodbye wakes the holders of its state dir:
// the holder here never looks on its own timer (an hour) after its start, so only the
// departure can make it take the outbox over.
func TestOutboxAdoptedOnDeparture(t *testing.T) {
	f := &faults{}
	root := t.TempDir()
	ns := meshWith(t, []string{"bob"}, [][]nodeOpt{{f.opt()}})
	bob := ns[0]
	holder := startNode(t, root, fastRetry, func(c *Config) {
		c.HolderDir = filepath.Join(root, "slot")
		c.HandoverStagger = 10 * time.Millisecond
		c.OutboxAdopt = time.Hour
	})
	alice := startNode(t, root, fastRetry)
	for _, n := range []*node{holder, alice} {
		if _, err := n.peer.Join(bob.peer.Addr()); err != nil {
			t.Fatal(err)
		}
	}
	if err := alice.peer.Claim(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 30*time.Second, "the holder to know alice", func() bool {
		r, _ := holder.peer.Resolve("alice")
		return r.Online
	})
	f.setCut(true)
	res, err := alice.relay.Send(ctx, Outgoing{From: "alice", To: "bob", Body: "left behind"})
	if err != nil || res.Status != StatusQueued {
		t.Fatalf("send across a cut link: %+v, %v; want queued", res, err)
	}
	if h := alice.relay.Handoff(ctx); h.Left != 1 {
		t.Fatalf("handoff across a cut link: %+v; want 1 left in a file", h)
	}
	alice.close()
	f.setCut(false)
	got := collect(t, holder, bob, "bob", 1)
	if !slices.Equal(got, []string{"left behind"}) {
		t.Fatalf("shown %q; want the left-behind message once, taken over on alice's departure", got)
	}
}
