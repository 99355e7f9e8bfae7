package relay

import (
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/paf-mesh/paf-mesh/internal/keys"
	"github.com/paf-mesh/paf-mesh/internal/testutil"
	"github.com/paf-mesh/paf-mesh/mesh"
	"github.com/paf-mesh/paf-mesh/relay/wire"
)

func TestCollectFrom(t *testing.T) {
	member := func(id string, state mesh.MemberState, held int, edit func(*mesh.Meta)) mesh.Member {
		var m mesh.Meta
		SetMetaAddr(&m, "127.0.0.1:1")
		SetMetaHeld(&m, held, min(held, 1))
		if edit != nil {
			edit(&m)
		}
		return mesh.Member{ID: id, State: state, Meta: m}
	}
	var quiet []mesh.Member // peers that announce nothing held
	for _, id := range []string{"p1", "p2", "p3", "p4", "p5", "p6"} {
		quiet = append(quiet, member(id, mesh.MemberAlive, 0, nil))
	}
	ids := func(ms []mesh.Member) []string {
		var out []string
		for _, m := range ms {
			out = append(out, m.ID)
		}
		slices.Sort(out)
		return out
	}
	with := func(extra ...mesh.Member) []mesh.Member { return append(slices.Clone(quiet), extra...) }
	tests := map[string]struct {
		members []mesh.Member
		want    []string // besides bob's three holders
	}{
		"nobody announces holding: bob's holders alone": {quiet, nil},
		"a peer that announces holding":                 {with(member("h", mesh.MemberAlive, 2, nil)), []string{"h"}},
		"a suspect peer that announces holding":         {with(member("h", mesh.MemberSuspect, 2, nil)), []string{"h"}},
		"a leaving peer that announces holding":         {with(member("h", mesh.MemberAlive, 2, func(m *mesh.Meta) { m.Leaving = true })), []string{"h"}},
		"self, announcing holding (counted locally)":    {with(member("self", mesh.MemberAlive, 2, nil)), nil},
		"a dead peer that announced holding":            {with(member("h", mesh.MemberDead, 2, nil)), nil},
		"a transient peer":                              {with(member("h", mesh.MemberAlive, 2, func(m *mesh.Meta) { m.Transient = true })), nil},
		"a peer without a relay":                        {with(member("h", mesh.MemberAlive, 2, func(m *mesh.Meta) { SetMetaAddr(m, "") })), nil},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got := ids(collectFrom("bob", tc.members, "self", 3))
			// bob's holders are ranked without self, as a sender ranked them before self was
			// there.
			others := slices.DeleteFunc(slices.Clone(tc.members), func(m mesh.Member) bool { return m.ID == "self" })
			holders := ids(holdersFor("bob", others, 3))
			if len(holders) != 3 {
				t.Fatalf("bob has %d holders, want 3", len(holders))
			}
			want := slices.Clone(holders)
			for _, id := range tc.want {
				if !slices.Contains(want, id) {
					want = append(want, id)
				}
			}
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Fatalf("asks %v, want %v (bob's holders %v)", got, want, holders)
			}
		})
	}
}

// noAnnounce hides the mesh peer's SetMeta from its relay, which then never announces what
// it holds: its hint stays at what the peer announced at the start (nothing held).
type noAnnounce struct{ Directory }

func (d noAnnounce) Identity() *keys.Identity { return d.Directory.(*mesh.Peer).Identity() }

func withoutAnnounce(c *Config) { c.Dir = noAnnounce{c.Dir} }

// keptOutsideHolders starts five holders (one of them the sender "a", with opts) and a
// recipient's peer, not named yet, that sees them all; then it stores a message for name at
// a holder that is not among name's holders in the recipient's view (a copy left from an
// older membership) and returns the recipient and that holder.
func keptOutsideHolders(t *testing.T, name string, opts ...nodeOpt) (rcpt, kept *node) {
	t.Helper()
	ns := startHolders(t, []string{"a", "", "", "", ""}, opts...)
	rcpt = startNode(t, "", holder(filepath.Join(t.TempDir(), "slot")))
	if _, err := rcpt.peer.Join(ns[0].peer.Addr()); err != nil {
		t.Fatal(err)
	}
	waitRelays(t, append(ns, rcpt))
	asked := collectFrom(name, rcpt.peer.Members(), rcpt.peer.ID(), rcpt.relay.cfg.Replicas)
	for _, n := range ns[1:] {
		if !slices.ContainsFunc(asked, func(m mesh.Member) bool { return m.ID == n.peer.ID() }) {
			kept = n
			break
		}
	}
	if kept == nil {
		t.Fatalf("every one of four holders is among %s's three holders", name)
	}
	m := &Message{ID: ulid.Make().String(), From: "a", To: name, Kind: KindMessage, Body: "kept elsewhere", SentAt: time.Now().UTC().Truncate(time.Millisecond)}
	wire.SignMessage(m, ns[0].peer.Identity())
	testutil.Must(t, ns[0].relay.storeAt(ctx, kept.peer.Self(), m, true))
	return rcpt, kept
}

// A message kept by a peer whose hint says it holds nothing (stale, or never announced), and
// that is not among the name's holders, still reaches the new session, once: Collect does
// not wait for it, but the holder hands it over when it sees the name online.
func TestCollectStaleHintLosesNothing(t *testing.T) {
	rcpt, kept := keptOutsideHolders(t, "nessa", withoutAnnounce)
	asked := collectFrom("nessa", rcpt.peer.Members(), rcpt.peer.ID(), rcpt.relay.cfg.Replicas)
	if slices.ContainsFunc(asked, func(m mesh.Member) bool { return m.ID == kept.peer.ID() }) {
		t.Fatalf("the holder that announces nothing is asked: the test does not test a stale hint")
	}
	testutil.Must(t, rcpt.peer.Claim(ctx, "nessa"))
	c, cancel := contextWithTimeout(10 * time.Second)
	defer cancel()
	testutil.Must(t, rcpt.relay.Collect(c, "nessa"))
	testutil.WaitFor(t, 20*time.Second, "the holder with a stale hint to hand the message over", func() bool {
		return rcpt.relay.Unread("nessa") == 1
	})
	msgs, err := rcpt.relay.Check("nessa")
	if err != nil || len(msgs) != 1 || msgs[0].Body != "kept elsewhere" {
		t.Fatalf("nessa got %+v %v, want the kept message", msgs, err)
	}
	testutil.WaitFor(t, 10*time.Second, "the holder to drop its copy", func() bool { return kept.relay.HeldCount("nessa") == 0 })
	if msgs, _ := rcpt.relay.Check("nessa"); len(msgs) != 0 {
		t.Fatalf("shown twice: %+v", msgs)
	}
}

// A holder outside the name's holders that announces what it holds is waited for: the
// message is in the inbox when Collect returns.
func TestCollectWaitsForAnnouncedHolder(t *testing.T) {
	rcpt, kept := keptOutsideHolders(t, "nessa")
	testutil.WaitFor(t, 10*time.Second, "the recipient's peer to see the holder announce it holds", func() bool {
		m, ok := rcpt.peer.Member(kept.peer.ID())
		held, _ := MetaHeld(m.Meta)
		return ok && held == 1
	})
	testutil.Must(t, rcpt.peer.Claim(ctx, "nessa"))
	c, cancel := contextWithTimeout(20 * time.Second)
	defer cancel()
	testutil.Must(t, rcpt.relay.Collect(c, "nessa"))
	msgs, err := rcpt.relay.Check("nessa")
	if err != nil || len(msgs) != 1 || msgs[0].Body != "kept elsewhere" {
		t.Fatalf("after Collect nessa has %+v %v, want the kept message", msgs, err)
	}
	testutil.WaitFor(t, 10*time.Second, "the holder to announce it holds nothing", func() bool {
		m, _ := rcpt.peer.Member(kept.peer.ID())
		held, _ := MetaHeld(m.Meta)
		return held == 0
	})
}
