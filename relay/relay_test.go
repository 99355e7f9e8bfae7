package relay

import (
	"cmp"

	"github.com/oklog/ulid/v2"
	"github.com/paf-mesh/paf-mesh/relay/wire"

	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/paf-mesh/paf-mesh/internal/keys"
	"github.com/paf-mesh/paf-mesh/internal/testutil"
	"github.com/paf-mesh/paf-mesh/mesh"
	"github.com/paf-mesh/paf-mesh/mesh/meshtest"
)

var relayKey = bytes.Repeat([]byte{7}, 32)

// node is one in-process peer: membership plus relay.
type node struct {
	peer  *mesh.Peer
	relay *Relay
	root  string
}

type nodeOpt func(*Config)

func startNode(t testing.TB, root string, opts ...nodeOpt) *node {
	t.Helper()
	return startNodeAs(t, nil, root, opts...)
}

// startNodeAs is startNode with the identity id (nil: a new one), as a peer restarted on the
// same state dir has.
func startNodeAs(t testing.TB, id *keys.Identity, root string, opts ...nodeOpt) *node {
	t.Helper()
	mc := meshtest.Config(t)
	mc.Identity = id
	p, err := mesh.New(mc)
	if err != nil {
		t.Fatal(err)
	}
	if root == "" {
		root = t.TempDir()
	}
	cfg := DefaultConfig()
	cfg.Dir, cfg.Key, cfg.StateRoot, cfg.Logger = p, relayKey, root, testutil.QuietLogger(t, meshtest.LogLevel())
	cfg.DeliverTimeout = 5 * time.Second
	cfg.HandoverStagger = 300 * time.Millisecond
	for _, o := range opts {
		o(&cfg)
	}
	r, err := New(cfg)
	if err != nil {
		p.Close()
		t.Fatal(err)
	}
	if err := p.SetMeta(context.Background(), func(m *mesh.Meta) { r.Announce(m, r.Addr()) }); err != nil {
		t.Fatal(err)
	}
	n := &node{peer: p, relay: r, root: root}
	t.Cleanup(n.close)
	return n
}

func (n *node) close() {
	n.relay.Close()
	n.peer.Close()
}

// crash stops n the way SIGKILL would stop its process: the relay's
// connections drop and the mesh peer stops without a leave, so the others
// see it suspected, then dead, after failure detection. (Relay.Close says
// goodbye to no one: it is already what a crash does to the relay.) The
// cleanup's close is then a no-op.
func (n *node) crash() {
	n.relay.Close()
	meshtest.Crash(n.peer)
}

// meshOf starts peers named names, joined, each seeing every name.
func meshOf(t testing.TB, names ...string) []*node {
	t.Helper()
	return meshWith(t, names, nil)
}

// meshWith is meshOf with options per peer: opts[i] for names[i] (opts may be shorter).
func meshWith(t testing.TB, names []string, opts [][]nodeOpt) []*node {
	t.Helper()
	ns := make([]*node, len(names))
	for i, name := range names {
		var o []nodeOpt
		if i < len(opts) {
			o = opts[i]
		}
		ns[i] = startNode(t, "", o...)
		if i > 0 {
			if _, err := ns[i].peer.Join(ns[0].peer.Addr()); err != nil {
				t.Fatal(err)
			}
		}
		if name != "" {
			if err := ns[i].peer.Claim(context.Background(), name); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Generous, as startHolders': on a loaded CI machine under -race, a suspected peer takes a
	// few probe rounds to be seen alive again.
	testutil.WaitFor(t, 30*time.Second, "every peer to see every name", func() bool {
		for _, n := range ns {
			for _, name := range names {
				if name == "" {
					continue
				}
				if r, _ := n.peer.Resolve(name); !r.Online || MetaAddr(r.Owner.Meta) == "" {
					return false
				}
			}
		}
		return true
	})
	return ns
}

var ctx = context.Background()

func TestSendCheckOnce(t *testing.T) {
	ns := meshOf(t, "alice", "bob")
	res, err := ns[0].relay.Send(ctx, Outgoing{From: "alice", To: "Bob", Body: "hi"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != "delivered" || res.ID == "" || res.To != "bob" {
		t.Fatalf("result %+v", res)
	}
	if n := ns[1].relay.Unread("bob"); n != 1 {
		t.Fatalf("unread = %d, want 1", n)
	}
	msgs, err := ns[1].relay.Check("bob")
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 1 || msgs[0].Body != "hi" || msgs[0].From != "alice" || msgs[0].ID != res.ID || msgs[0].Kind != KindMessage {
		t.Fatalf("check = %+v", msgs)
	}
	if msgs, _ := ns[1].relay.Check("bob"); len(msgs) != 0 {
		t.Fatalf("second check returned %d messages", len(msgs))
	}
	// Only the holder of a name reads its inbox.
	if _, err := ns[0].relay.Check("bob"); !errors.Is(err, mesh.ErrNoName) {
		t.Errorf("alice reading bob's inbox: %v", err)
	}
}

func TestThousandInOrderNoDuplicates(t *testing.T) {
	ns := meshOf(t, "alice", "bob")
	const n = 1000
	// Pipelined: many sends in flight at once, issued in order by one
	// goroutine each waiting for its predecessor to be queued... the simplest
	// honest check of ordering is sequential sends; concurrency is covered
	// by the transport's tests.
	for i := 0; i < n; i++ {
		if _, err := ns[0].relay.Send(ctx, Outgoing{From: "alice", To: "bob", Body: fmt.Sprint(i)}); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
	}
	msgs, err := ns[1].relay.Check("bob")
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != n {
		t.Fatalf("got %d messages, want %d", len(msgs), n)
	}
	seen := map[string]bool{}
	for i, m := range msgs {
		if m.Body != fmt.Sprint(i) {
			t.Fatalf("message %d has body %q: out of order", i, m.Body)
		}
		if seen[m.ID] {
			t.Fatalf("duplicate id %s", m.ID)
		}
		seen[m.ID] = true
	}
}

func TestLargeBodySavedToFile(t *testing.T) {
	ns := meshOf(t, "alice", "bob")
	big := strings.Repeat("0123456789abcdef", 5<<20/16) // 5 MiB
	if _, err := ns[0].relay.Send(ctx, Outgoing{From: "alice", To: "bob", Body: big}); err != nil {
		t.Fatal(err)
	}
	msgs, err := ns[1].relay.Check("bob")
	if err != nil || len(msgs) != 1 {
		t.Fatalf("check: %v %d", err, len(msgs))
	}
	m := msgs[0]
	if m.File == "" || !strings.Contains(m.Body, m.File) || len(m.Body) > 2000 {
		t.Fatalf("want a preview naming the file, got file=%q body of %d bytes", m.File, len(m.Body))
	}
	data, err := os.ReadFile(m.File)
	if err != nil {
		t.Fatal(err)
	}
	if sha256.Sum256(data) != sha256.Sum256([]byte(big)) {
		t.Fatalf("file content differs from what was sent")
	}
	st, _ := os.Stat(m.File)
	if st.Mode().Perm() != 0o600 {
		t.Errorf("file mode %v, want 0600", st.Mode().Perm())
	}
	if !strings.HasPrefix(m.File, ns[1].root) {
		t.Errorf("file %s is not under the receiver's state dir %s", m.File, ns[1].root)
	}

	// At the limit: accepted; one byte over: refused before anything is sent.
	for name, tc := range map[string]struct {
		size int
		ok   bool
	}{"small limit exact": {1024, true}, "small limit over": {1025, false}} {
		t.Run(name, func(t *testing.T) {
			ns := meshOf(t, "carol", "dave")
			ns[0].relay.cfg.MaxBody = 1024
			ns[1].relay.cfg.MaxBody = 1024
			_, err := ns[0].relay.Send(ctx, Outgoing{From: "carol", To: "dave", Body: strings.Repeat("x", tc.size)})
			if tc.ok && err != nil {
				t.Fatalf("at the limit: %v", err)
			}
			if !tc.ok {
				if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "1024") {
					t.Fatalf("over the limit: %v, want ErrTooLarge naming the limit", err)
				}
				if ns[1].relay.Unread("dave") != 0 {
					t.Fatalf("an oversize message arrived")
				}
			}
		})
	}
}

func TestRefusals(t *testing.T) {
	ns := meshOf(t, "alice", "bob")
	for name, tc := range map[string]struct {
		o    Outgoing
		want error
	}{
		"to self":         {Outgoing{From: "alice", To: "alice", Body: "x"}, ErrToSelf},
		"nobody can hold": {Outgoing{From: "alice", To: "nobody", Body: "x"}, ErrNoHolders},
		"bad utf8":        {Outgoing{From: "alice", To: "bob", Body: "a\xffb"}, ErrBadText},
		"bad name":        {Outgoing{From: "alice", To: "b b", Body: "x"}, mesh.ErrInvalidName},
		"not our name":    {Outgoing{From: "bob", To: "alice", Body: "x"}, nil},
		"unclaimed alias": {Outgoing{From: "", To: "bob", Body: "x"}, nil},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := ns[0].relay.Send(ctx, tc.o)
			if err == nil {
				t.Fatal("accepted")
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
	if n := ns[1].relay.Unread("bob"); n != 0 {
		t.Fatalf("refused messages arrived: %d", n)
	}
}

func TestRetryAfterLostAckShownOnce(t *testing.T) {
	ns := meshOf(t, "alice", "bob")
	m, err := ns[0].relay.prepare(Outgoing{From: "alice", To: "bob", Body: "once"})
	if err != nil {
		t.Fatal(err)
	}
	// Deliver the same message three times, as a sender that never saw the
	// acknowledgement would.
	for i := 0; i < 3; i++ {
		if _, err := ns[0].relay.deliver(ctx, m, false); err != nil {
			t.Fatal(err)
		}
	}
	msgs, _ := ns[1].relay.Check("bob")
	if len(msgs) != 1 {
		t.Fatalf("shown %d times", len(msgs))
	}
	// Even after it was read, a late retry is still recognised.
	if _, err := ns[0].relay.deliver(ctx, m, false); err != nil {
		t.Fatal(err)
	}
	if msgs, _ := ns[1].relay.Check("bob"); len(msgs) != 0 {
		t.Fatalf("late retry shown again")
	}
}

func TestUnreadSurvivesRestart(t *testing.T) {
	ns := meshOf(t, "alice", "bob")
	for i := 0; i < 3; i++ {
		if _, err := ns[0].relay.Send(ctx, Outgoing{From: "alice", To: "bob", Body: fmt.Sprint("m", i)}); err != nil {
			t.Fatal(err)
		}
	}
	root := ns[1].root
	ns[1].close()
	testutil.WaitFor(t, 10*time.Second, "bob to be released", func() bool {
		r, _ := ns[0].peer.Resolve("bob")
		return !r.Online
	})
	// A new process, same state dir, claims bob again.
	b := startNode(t, root)
	if _, err := b.peer.Join(ns[0].peer.Addr()); err != nil {
		t.Fatal(err)
	}
	if err := b.peer.Claim(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	msgs, err := b.relay.Check("bob")
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 3 || msgs[0].Body != "m0" || msgs[2].Body != "m2" {
		t.Fatalf("after restart: %+v", msgs)
	}
}

func TestRenameForwards(t *testing.T) {
	ns := meshOf(t, "alice", "bob")
	if err := ns[1].peer.Rename(ctx, "robert"); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 5*time.Second, "alice to see the forward", func() bool {
		r, _ := ns[0].peer.Resolve("bob")
		return r.Name == "robert" && r.Online
	})
	res, err := ns[0].relay.Send(ctx, Outgoing{From: "alice", To: "bob", Body: "still there?"})
	if err != nil {
		t.Fatal(err)
	}
	if res.To != "robert" || res.ForwardedFrom != "bob" {
		t.Fatalf("result %+v", res)
	}
	msgs, _ := ns[1].relay.Check("robert")
	if len(msgs) != 1 || msgs[0].ForwardedFrom != "bob" || msgs[0].To != "robert" {
		t.Fatalf("check = %+v", msgs)
	}
}

func TestSenderMustHoldItsName(t *testing.T) {
	ns := meshOf(t, "alice", "bob", "")
	// The third peer holds no name and forges a message from alice.
	forger := ns[2]
	route, _ := forger.peer.Resolve("bob")
	alice := ns[0].peer.Identity()
	refused := uint64(0)
	for name, tc := range map[string]struct {
		sign     func(m *Message) // nil: unsigned
		handover bool             // the holder's flag, which once spared the sender check
		kind     Kind
		want     wire.Code
	}{
		"its own signature":                {sign: func(m *Message) { wire.SignMessage(m, forger.peer.Identity()) }, want: wire.CodeUnknownSender},
		"its own signature, as a handover": {sign: func(m *Message) { wire.SignMessage(m, forger.peer.Identity()) }, handover: true, want: wire.CodeUnknownSender},
		"unsigned":                         {want: wire.CodeMalformed},
		"unsigned, as a handover":          {handover: true, want: wire.CodeMalformed},
		"alice's signature of another message": {sign: func(m *Message) {
			c := *m
			c.Body = "hello"
			wire.SignMessage(&c, alice)
			m.SenderKey, m.Sig = c.SenderKey, c.Sig
		}, handover: true, want: wire.CodeMalformed},
		"alice's key, its own signature":         {sign: func(m *Message) { wire.SignMessage(m, forger.peer.Identity()); m.SenderKey = wire.Raw(alice.Public()) }, handover: true, want: wire.CodeMalformed},
		"its own signature, kind system, direct": {sign: func(m *Message) { wire.SignMessage(m, alice) }, kind: KindSystem, want: wire.CodeUnknownSender},
	} {
		t.Run(name, func(t *testing.T) {
			m := &Message{ID: ulid.Make().String(), From: "alice", To: "bob", Kind: cmp.Or(tc.kind, KindMessage), Body: "trust me", SentAt: time.Now().Truncate(time.Millisecond)}
			if tc.sign != nil {
				tc.sign(m)
			}
			_, err := forger.relay.tr.Request(ctx, route.Owner.ID, MetaAddr(route.Owner.Meta), wire.AppendMessageAs(nil, wire.ReqDeliver, m, tc.handover))
			var re *wire.RemoteError
			if !errors.As(err, &re) || re.Code != tc.want {
				t.Fatalf("forged sender: %v, want a refusal with %v", err, tc.want)
			}
			if ns[1].relay.Unread("bob") != 0 {
				t.Fatalf("forged message arrived")
			}
			if r := ns[1].relay.Stats().Refused; r <= refused {
				t.Errorf("refusal not counted")
			} else {
				refused = r
			}
		})
	}
	// Bob still hears from alice.
	if res, err := ns[0].relay.Send(ctx, Outgoing{From: "alice", To: "bob", Body: "the real alice"}); err != nil || res.Status != "delivered" {
		t.Fatalf("alice after the forgeries: %+v %v", res, err)
	}
}

// The peer that holds a name, over its own authenticated connection, still cannot deliver a
// message its signature does not cover: the recipient's inbox verifies the signature beside
// the write (Inbox.Add with verify) and refuses it, unshown and uncounted as received, and the
// sender hears why.
func TestDirectMessageSignatureVerified(t *testing.T) {
	ns := meshOf(t, "alice", "bob")
	route, _ := ns[0].peer.Resolve("bob")
	alice := ns[0].peer.Identity()
	for name, body := range map[string]string{"1 KiB": strings.Repeat("a", 1<<10), "a large body, in its own file": strings.Repeat("b", 64<<10)} {
		t.Run(name, func(t *testing.T) {
			m := &Message{ID: ulid.Make().String(), From: "alice", To: "bob", Kind: KindMessage, Body: body, SentAt: time.Now().Truncate(time.Millisecond)}
			wire.SignMessage(m, alice)
			m.Body = "not what alice signed"
			refused := ns[1].relay.Stats().Refused
			_, err := ns[0].relay.tr.Request(ctx, route.Owner.ID, MetaAddr(route.Owner.Meta), wire.AppendMessageAs(nil, wire.ReqDeliver, m, false))
			var re *wire.RemoteError
			if !errors.As(err, &re) || re.Code != wire.CodeMalformed {
				t.Fatalf("a message its signature does not cover: %v, want a refusal with %v", err, wire.CodeMalformed)
			}
			if ns[1].relay.Unread("bob") != 0 {
				t.Fatalf("the altered message arrived")
			}
			if ns[1].relay.Stats().Refused <= refused {
				t.Errorf("refusal not counted")
			}
		})
	}
	if res, err := ns[0].relay.Send(ctx, Outgoing{From: "alice", To: "bob", Body: "the real alice"}); err != nil || res.Status != "delivered" {
		t.Fatalf("alice after the altered message: %+v %v", res, err)
	}
	if ns[1].relay.Unread("bob") != 1 {
		t.Fatalf("unread %d, want 1", ns[1].relay.Unread("bob"))
	}
}

func TestRateLimitPerSendingPeer(t *testing.T) {
	a := startNode(t, "")
	b := startNode(t, "", func(c *Config) { c.Rate, c.Burst = rate.Every(time.Hour), 5 })
	if _, err := b.peer.Join(a.peer.Addr()); err != nil {
		t.Fatal(err)
	}
	if err := a.peer.Claim(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if err := b.peer.Claim(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 5*time.Second, "names", func() bool {
		r, _ := a.peer.Resolve("bob")
		r2, _ := b.peer.Resolve("alice")
		return r.Online && MetaAddr(r.Owner.Meta) != "" && r2.Online
	})
	for i := 0; i < 5; i++ {
		if _, err := a.relay.Send(ctx, Outgoing{From: "alice", To: "bob", Body: "x"}); err != nil {
			t.Fatalf("send %d within the burst: %v", i, err)
		}
	}
	_, err := a.relay.Send(ctx, Outgoing{From: "alice", To: "bob", Body: "one too many"})
	if !errors.Is(err, ErrRateLimited) || !strings.Contains(err.Error(), "retry") {
		t.Fatalf("past the burst: %v, want ErrRateLimited saying what to do", err)
	}
	if got := b.relay.Unread("bob"); got != 5 {
		t.Fatalf("bob has %d, want exactly the 5 within the limit", got)
	}
}

func TestBroadcastReachesEveryoneOnline(t *testing.T) {
	ns := meshOf(t, "alice", "bob", "carol", "")
	res, err := ns[0].relay.Broadcast(ctx, "alice", "standup in 5")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(res.Delivered, ",") != "bob,carol" || len(res.Failed) != 0 {
		t.Fatalf("broadcast result %+v", res)
	}
	for i, name := range []string{"bob", "carol"} {
		msgs, _ := ns[i+1].relay.Check(name)
		if len(msgs) != 1 || !msgs[0].Broadcast || msgs[0].Body != "standup in 5" {
			t.Fatalf("%s got %+v", name, msgs)
		}
	}
	if ns[0].relay.Unread("alice") != 0 {
		t.Errorf("the sender got its own broadcast")
	}
}

func TestWaitWakesOnArrival(t *testing.T) {
	ns := meshOf(t, "alice", "bob")
	done := make(chan error, 1)
	go func() {
		c, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		done <- ns[1].relay.Wait(c, "bob")
	}()
	if _, err := ns[0].relay.Send(ctx, Outgoing{From: "alice", To: "bob", Body: "wake up"}); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("wait: %v", err)
	}
	c, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := ns[1].relay.Check("bob"); err != nil {
		t.Fatal(err)
	}
	if err := ns[1].relay.Wait(c, "bob"); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled wait on an empty inbox: %v", err)
	}
}

func contextWithTimeout(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}

// A message or reply with no text is refused before anything is sent; the
// notices the product writes itself (an end) may be empty.
func TestEmptyMessageRefused(t *testing.T) {
	ns := meshOf(t, "alice", "bob")
	for _, o := range []Outgoing{
		{From: "alice", To: "bob", Body: ""},
		{From: "alice", To: "bob", Body: " \n\t", Kind: KindReply},
	} {
		if _, err := ns[0].relay.Send(ctx, o); !errors.Is(err, ErrEmpty) || !strings.Contains(err.Error(), "nothing was sent") {
			t.Errorf("send %+v: %v, want ErrEmpty saying nothing was sent", o, err)
		}
	}
	if _, err := ns[0].relay.Broadcast(ctx, "alice", "  "); !errors.Is(err, ErrEmpty) {
		t.Errorf("empty broadcast: %v, want ErrEmpty", err)
	}
	if n := ns[1].relay.Unread("bob"); n != 0 {
		t.Fatalf("bob has %d unread after refused sends", n)
	}
	if _, err := ns[0].relay.Send(ctx, Outgoing{From: "alice", To: "bob", Kind: KindEnd}); err != nil {
		t.Fatalf("an empty end notice: %v", err)
	}
}
