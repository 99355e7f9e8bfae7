package relay

import (
	"github.com/paf-mesh/paf-mesh/relay/wire"

	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/paf-mesh/paf-mesh/internal/keys"
	"github.com/paf-mesh/paf-mesh/internal/testutil"
)

// holder gives a node a state slot of its own, so it holds messages.
func holder(dir string) nodeOpt {
	return func(c *Config) { c.HolderDir = dir }
}

// startHolders starts n joined peers that hold messages, named as given
// ("" for none), and returns them once every peer sees every other.
func startHolders(t *testing.T, names []string, opts ...nodeOpt) []*node {
	t.Helper()
	ns := make([]*node, len(names))
	for i := range names {
		o := append([]nodeOpt{holder(filepath.Join(t.TempDir(), "slot"))}, opts...)
		ns[i] = startNode(t, "", o...)
		if i > 0 {
			if _, err := ns[i].peer.Join(ns[0].peer.Addr()); err != nil {
				t.Fatal(err)
			}
		}
		if names[i] != "" {
			if err := ns[i].peer.Claim(ctx, names[i]); err != nil {
				t.Fatal(err)
			}
		}
	}
	// A generous deadline: under -race on a loaded 2-core CI machine a peer can be suspected
	// and take a few probe rounds to be seen alive again (10 s was too short twice). What each
	// peer saw last is logged if it does not settle.
	var views []int
	t.Cleanup(func() {
		if t.Failed() && views != nil {
			t.Logf("relay-bearing members each peer saw last: %v (want %d each)", views, len(ns))
		}
	})
	took := testutil.WaitFor(t, 30*time.Second, "every peer to see every other with its relay", func() bool {
		views = views[:0]
		settled := true
		for _, n := range ns {
			count := 0
			for _, m := range n.peer.Members() {
				if MetaAddr(m.Meta) != "" {
					count++
				}
			}
			views = append(views, count)
			settled = settled && count == len(ns)
		}
		return settled
	})
	t.Logf("%d holders settled in %v", len(ns), took.Round(time.Millisecond))
	return ns
}

// recipient starts a peer that joins ns and claims name.
func recipient(t *testing.T, ns []*node, name string, opts ...nodeOpt) *node {
	t.Helper()
	return recipientAs(t, ns, nil, name, opts...)
}

// recipientAs is recipient with the identity id (nil: a new one): a session of that user,
// restarted or new.
func recipientAs(t *testing.T, ns []*node, id *keys.Identity, name string, opts ...nodeOpt) *node {
	t.Helper()
	r := startNodeAs(t, id, "", append([]nodeOpt{holder(filepath.Join(t.TempDir(), "slot"))}, opts...)...)
	if _, err := r.peer.Join(ns[0].peer.Addr()); err != nil {
		t.Fatal(err)
	}
	if err := r.peer.Claim(ctx, name); err != nil {
		t.Fatal(err)
	}
	return r
}

func TestFutureMessage(t *testing.T) {
	ns := startHolders(t, []string{"a", "b", "c"})
	res, err := ns[0].relay.Send(ctx, Outgoing{From: "a", To: "nessa", Body: "welcome"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != "stored" || res.Holders != 3 {
		t.Fatalf("result %+v, want stored by 3 holders", res)
	}
	total := 0
	for _, n := range ns {
		total += n.relay.HeldCount("nessa")
	}
	if total != 3 {
		t.Fatalf("%d copies held, want 3", total)
	}
	nessa := recipient(t, ns, "nessa")
	c, cancel := contextWithTimeout(10 * time.Second)
	defer cancel()
	if err := nessa.relay.Collect(c, "nessa"); err != nil {
		t.Fatal(err)
	}
	msgs, _ := nessa.relay.Check("nessa")
	if len(msgs) != 1 || msgs[0].Body != "welcome" || msgs[0].From != "a" {
		t.Fatalf("nessa got %+v", msgs)
	}
	testutil.WaitFor(t, 10*time.Second, "every holder to drop its copy", func() bool {
		for _, n := range ns {
			if n.relay.HeldCount("nessa") != 0 {
				return false
			}
		}
		return true
	})
	if msgs, _ := nessa.relay.Check("nessa"); len(msgs) != 0 {
		t.Fatalf("shown twice: %+v", msgs)
	}
}

func TestHolderLoss(t *testing.T) {
	ns := startHolders(t, []string{"a", "", "", "", ""})
	const n = 100
	for i := 0; i < n; i++ {
		if res, err := ns[0].relay.Send(ctx, Outgoing{From: "a", To: "late", Body: fmt.Sprint(i)}); err != nil || res.Status != "stored" {
			t.Fatalf("send %d: %+v %v", i, res, err)
		}
	}
	// Kill two of the holders (never the sender, so the test can go on).
	killed := 0
	for _, nd := range ns[1:] {
		if nd.relay.HeldCount("late") > 0 && killed < 2 {
			nd.close()
			killed++
		}
	}
	if killed < 1 {
		t.Fatalf("no holder among the non-senders")
	}
	rest := []*node{ns[0]}
	for _, nd := range ns[1:] {
		if nd.relay.held != nil && !nd.relay.closed {
			rest = append(rest, nd)
		}
	}
	late := recipient(t, rest, "late")
	c, cancel := contextWithTimeout(20 * time.Second)
	defer cancel()
	if err := late.relay.Collect(c, "late"); err != nil {
		t.Fatal(err)
	}
	msgs, _ := late.relay.Check("late")
	if len(msgs) != n {
		t.Fatalf("got %d of %d", len(msgs), n)
	}
	for i, m := range msgs {
		if m.Body != fmt.Sprint(i) {
			t.Fatalf("message %d is %q: out of order or duplicated", i, m.Body)
		}
	}
}

func TestTotalRestart(t *testing.T) {
	slots := []string{filepath.Join(t.TempDir(), "s0"), filepath.Join(t.TempDir(), "s1")}
	a := startNode(t, "", holder(slots[0]))
	b := startNode(t, "", holder(slots[1]))
	if _, err := b.peer.Join(a.peer.Addr()); err != nil {
		t.Fatal(err)
	}
	testutil.Must(t, a.peer.Claim(ctx, "a"))
	testutil.WaitFor(t, 5*time.Second, "both see both relays", func() bool {
		return len(holdersFor("x", a.peer.Members(), 3)) == 2
	})
	for i := 0; i < 5; i++ {
		if res, err := a.relay.Send(ctx, Outgoing{From: "a", To: "sleeper", Body: fmt.Sprint(i)}); err != nil || res.Holders != 2 {
			t.Fatalf("send: %+v %v", res, err)
		}
	}
	a.close()
	b.close()
	// Days later: one new peer, on the state one of them left, then the recipient.
	c := startNode(t, "", holder(slots[1]))
	if got := c.relay.HeldCount("sleeper"); got != 5 {
		t.Fatalf("restarted peer holds %d, want 5", got)
	}
	s := recipient(t, []*node{c}, "sleeper")
	cc, cancel := contextWithTimeout(10 * time.Second)
	defer cancel()
	testutil.Must(t, s.relay.Collect(cc, "sleeper"))
	msgs, _ := s.relay.Check("sleeper")
	if len(msgs) != 5 || msgs[0].Body != "0" || msgs[4].Body != "4" {
		t.Fatalf("after total restart: %+v", msgs)
	}
}

func TestExpiryTellsSender(t *testing.T) {
	ns := startHolders(t, []string{"a", "b"}, func(c *Config) {
		c.StoreTTL = 200 * time.Millisecond
		c.ExpiryInterval = 50 * time.Millisecond
	})
	if _, err := ns[0].relay.Send(ctx, Outgoing{From: "a", To: "never", Body: "are you there?"}); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 10*time.Second, "the sender to be told", func() bool { return ns[0].relay.Unread("a") > 0 })
	msgs, _ := ns[0].relay.Check("a")
	if len(msgs) != 1 || msgs[0].Kind != KindSystem || !strings.Contains(msgs[0].Body, "expired") || !strings.Contains(msgs[0].Body, "never") {
		t.Fatalf("notice %+v, want one system notice about the expiry", msgs)
	}
	testutil.WaitFor(t, 10*time.Second, "every holder to drop and count the expired message", func() bool {
		for _, n := range ns {
			if n.relay.HeldCount("never") != 0 || n.relay.Stats().Expired == 0 {
				return false
			}
		}
		return true
	})
	if msgs, _ := ns[0].relay.Check("a"); len(msgs) != 0 {
		t.Fatalf("the sender was told more than once: %+v", msgs)
	}
}

func TestQuota(t *testing.T) {
	ns := startHolders(t, []string{"a", "b"}, func(c *Config) { c.Quota = 2 })
	for i := 0; i < 2; i++ {
		if _, err := ns[0].relay.Send(ctx, Outgoing{From: "a", To: "busy", Body: "x"}); err != nil {
			t.Fatalf("within quota: %v", err)
		}
	}
	_, err := ns[0].relay.Send(ctx, Outgoing{From: "a", To: "busy", Body: "one too many"})
	if !errors.Is(err, ErrQuota) || !strings.Contains(err.Error(), "busy") {
		t.Fatalf("past the quota: %v, want ErrQuota naming the recipient", err)
	}
}

func TestRenameHandsOverToNewName(t *testing.T) {
	ns := startHolders(t, []string{"a", ""})
	if _, err := ns[0].relay.Send(ctx, Outgoing{From: "a", To: "bob", Body: "for bob"}); err != nil {
		t.Fatal(err)
	}
	// bob renamed while away (a forward bob -> robert exists) and robert
	// comes online: the stored message follows the forward.
	b := recipient(t, ns, "bob")
	testutil.Must(t, b.peer.Rename(ctx, "robert"))
	testutil.Must(t, b.relay.MoveInbox("bob", "robert")) // what a peer does after renaming
	c, cancel := contextWithTimeout(10 * time.Second)
	defer cancel()
	testutil.Must(t, b.relay.Collect(c, "bob"))
	testutil.Must(t, b.relay.MoveInbox("bob", "robert")) // in case it arrived before the rename
	msgs, _ := b.relay.Check("robert")
	if len(msgs) != 1 || msgs[0].Body != "for bob" {
		t.Fatalf("robert got %+v", msgs)
	}
}

// A stored message larger than its recipient's peer accepts (a lower
// MaxBody, e.g. `--max-body`) is refused at handover: it must not hold up
// the messages after it, its holders drop it, and its sender is told at once
// rather than when it would have expired.
func TestHandoverTooLargeForRecipient(t *testing.T) {
	ns := startHolders(t, []string{"a", "b"})
	big := strings.Repeat("x", 3000)
	for _, body := range []string{"before", big, "after"} {
		if res, err := ns[0].relay.Send(ctx, Outgoing{From: "a", To: "nessa", Body: body}); err != nil || res.Status != "stored" {
			t.Fatalf("store %d bytes: %+v, %v", len(body), res, err)
		}
	}
	nessa := recipient(t, ns, "nessa", func(c *Config) { c.MaxBody = 2048 })
	c, cancel := contextWithTimeout(15 * time.Second)
	defer cancel()
	testutil.Must(t, nessa.relay.Collect(c, "nessa"))
	msgs, _ := nessa.relay.Check("nessa")
	if len(msgs) != 2 || msgs[0].Body != "before" || msgs[1].Body != "after" {
		t.Fatalf("nessa got %d messages %+v, want before and after", len(msgs), msgs)
	}
	testutil.WaitFor(t, 10*time.Second, "the sender to be told", func() bool { return ns[0].relay.Unread("a") > 0 })
	notice, _ := ns[0].relay.Check("a")
	if len(notice) != 1 || notice[0].Kind != KindSystem || !strings.Contains(notice[0].Body, "larger than nessa's peer accepts") {
		t.Fatalf("the sender's notice: %+v, want one system notice that it was too large", notice)
	}
	testutil.WaitFor(t, 10*time.Second, "every holder to drop all three", func() bool {
		for _, n := range ns {
			if n.relay.HeldCount("nessa") != 0 {
				return false
			}
		}
		return true
	})
	var tooLarge uint64
	for _, n := range ns {
		tooLarge += n.relay.Stats().TooLarge
	}
	if tooLarge == 0 {
		t.Fatal("no holder counted the refused message")
	}
}

// A recipient's peer that stops answering while the mesh still counts it
// alive (its process is dying): after a moment the sender stores the
// message with holders rather than waiting, perhaps past its deadline, for
// the mesh to declare the peer failed; the name's next session gets it.
func TestSendStoresWhenRecipientDoesNotAnswer(t *testing.T) {
	ns := startHolders(t, []string{"a", "", ""})
	bob := recipient(t, ns, "bob")
	testutil.WaitFor(t, 10*time.Second, "everyone to see bob online", func() bool {
		for _, n := range ns {
			if r, _ := n.peer.Resolve("bob"); !r.Online || MetaAddr(r.Owner.Meta) == "" {
				return false
			}
		}
		return true
	})
	bob.relay.Close() // no more connections; its mesh peer lives on
	res, err := ns[0].relay.Send(ctx, Outgoing{From: "a", To: "bob", Body: "are you there?"})
	if err != nil || res.Status != "stored" || !res.Unanswered || res.Holders < 1 {
		t.Fatalf("send to a peer that does not answer: %+v, %v; want stored, marked unanswered", res, err)
	}
	if r, _ := ns[0].peer.Resolve("bob"); !r.Online {
		t.Fatalf("bob's peer is no longer counted online: the test no longer shows storing before the mesh gives up on it")
	}

	testutil.Must(t, bob.peer.Close())
	testutil.WaitFor(t, 10*time.Second, "bob's name released everywhere", func() bool {
		for _, n := range ns {
			if r, _ := n.peer.Resolve("bob"); r.Online {
				return false
			}
		}
		return true
	})
	bob2 := recipientAs(t, ns, bob.peer.Identity(), "bob") // the same user's new session
	testutil.WaitFor(t, 10*time.Second, "the stored message to reach bob's new session", func() bool {
		return bob2.relay.Unread("bob") > 0
	})
	msgs, err := bob2.relay.Check("bob")
	if err != nil || len(msgs) != 1 || msgs[0].Body != "are you there?" {
		t.Fatalf("bob's new session got %+v (%v), want the message once", msgs, err)
	}
}

// A copy of a stored message that reaches a holder after the message was
// handed over (a re-replication in flight when its name came online) is not
// kept: a later session of the name, with another inbox, would be shown it
// again. Copies of other messages still are.
func TestLateCopyOfHandedOverMessageNotKept(t *testing.T) {
	ns := startHolders(t, []string{"a", ""})
	h := ns[1]
	msg := func(id string) *Message {
		m := &Message{ID: id, From: "a", To: "bob", Kind: KindMessage, Body: "hi " + id, SentAt: time.Now().UTC().Truncate(time.Millisecond)}
		wire.SignMessage(m, ns[0].peer.Identity())
		return m
	}
	early, late, other := "01TESTEARXY000000000000000", "01TESTXATE0000000000000000", "01TESTATHER000000000000000"
	// Held, then handed over by another holder: dropped (as before).
	testutil.Must(t, h.relay.handleStore(ns[0].peer.ID(), "127.0.0.1", wire.AppendMessageAs(nil, wire.ReqStore, msg(early), true)))
	testutil.Must(t, h.relay.applyDrop("bob", []string{early, late})) // as a verified drop list does
	// Its copy arrives after the drop: not kept.
	testutil.Must(t, h.relay.handleStore(ns[0].peer.ID(), "127.0.0.1", wire.AppendMessageAs(nil, wire.ReqStore, msg(late), true)))
	testutil.Must(t, h.relay.handleStore(ns[0].peer.ID(), "127.0.0.1", wire.AppendMessageAs(nil, wire.ReqStore, msg(early), true)))
	if n := h.relay.HeldCount("bob"); n != 0 {
		t.Fatalf("holder keeps %d copies of messages already handed over, want 0", n)
	}
	testutil.Must(t, h.relay.handleStore(ns[0].peer.ID(), "127.0.0.1", wire.AppendMessageAs(nil, wire.ReqStore, msg(other), true)))
	if n := h.relay.HeldCount("bob"); n != 1 {
		t.Fatalf("holder keeps %d messages after a new one, want 1", n)
	}
}
