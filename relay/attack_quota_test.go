package relay

import (
	"github.com/paf-mesh/paf-mesh/internal/keys"
	"github.com/paf-mesh/paf-mesh/relay/store"
	"github.com/paf-mesh/paf-mesh/relay/wire"

	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
	"golang.org/x/time/rate"
)

// Security I, item 5: quotas and rates against an insider (a holder of the mesh key that
// speaks the protocol itself). These run against the base commit too (see the commit that
// added them): there, every attack below went through.

// evilClient is a bare transport with the mesh key and an identity of the attacker's own (a
// new one per client: identities cost nothing to make), no mesh membership, no name, no
// relay. label only names it in failures.
func evilClient(t *testing.T, label string) *wire.Transport {
	t.Helper()
	ident := keys.NewIdentity()
	tr, err := wire.NewTransport(wire.Config{ID: ident.NewPeerID(), Identity: ident, Key: relayKey, ListenAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	return tr
}

// evilStore asks n to hold m, signed by the attacker's own identity, as a holder's replica: a
// name nobody holds, so the signature is all a holder can check.
func evilStore(tr *wire.Transport, n *node, m *Message) error {
	wire.SignMessage(m, tr.Identity())
	_, err := tr.Request(ctx, n.peer.ID(), n.relay.Addr(), wire.AppendMessageAs(nil, wire.ReqStore, m, true))
	return err
}

func evilMessage(to string, body int) *Message {
	return &Message{ID: ulid.Make().String(), From: "mallory", To: to, Kind: KindMessage,
		Body: strings.Repeat("x", body), SentAt: time.Now().Truncate(time.Millisecond)}
}

// The finding: with the key, an attacker invented names, each under the per-name quota, and
// filled every holder (20 names × 50 messages × 256 KiB: 254 MB each, for 30 days). Scaled
// down here (16 KiB bodies under a 1 MiB total): what the holder keeps from the attacker's
// address stays within its per-source quota, below the total; later stores, to any new name,
// are refused with CodeQuota; and a legitimate sender on another machine still has its
// message for another offline name stored, because the per-source quota left room.
func TestAttackInventedNamesFlood(t *testing.T) {
	const (
		total     = 1 << 20
		perSource = total / 2
		perName   = total / 4
		body      = 16 << 10
	)
	var hs hosts
	ns := startHolders(t, []string{"alice", "", ""}, quotaLimits(total, perSource, perName, 1000), hs.opt())
	alice, target := ns[0], ns[1]
	hs.set(alice.peer.ID(), "192.0.2.10") // alice stands for a peer on another machine
	evil := evilClient(t, "mallory-evil")

	kept, refused := 0, 0
	for name := 0; name < 20; name++ {
		for i := 0; i < 50; i++ {
			err := evilStore(evil, target, evilMessage(fmt.Sprintf("ghost-%02d", name), body))
			switch {
			case err == nil:
				kept++
			case wire.CodeOf(err) == wire.CodeQuota:
				refused++
			default:
				t.Fatalf("store %d for ghost-%02d: %v, want kept or refused with CodeQuota", i, name, err)
			}
		}
	}
	held := heldBytes(t, target)
	t.Logf("the attacker had %d of %d messages kept (%d bytes), %d refused", kept, kept+refused, held, refused)
	if held > perSource || held > total {
		t.Fatalf("the holder keeps %d bytes from the attacker, over its per-source quota %d (total %d)", held, perSource, total)
	}
	if kept == 0 || refused == 0 {
		t.Fatalf("kept %d, refused %d: want some kept (the quota is not zero) and the rest refused", kept, refused)
	}
	// Inventing another name does not help: refused with CodeQuota, saying what to do.
	err := evilStore(evil, target, evilMessage("ghost-new", body))
	if wire.CodeOf(err) != wire.CodeQuota || !strings.Contains(err.Error(), "send again") {
		t.Fatalf("a store for a new invented name: %v, want CodeQuota saying what to do", err)
	}
	// A legitimate sender's message for another offline name fits, at this holder too.
	res, err := alice.relay.Send(ctx, Outgoing{From: "alice", To: "carol", Body: strings.Repeat("y", body)})
	if err != nil || res.Status != "stored" {
		t.Fatalf("a legitimate message for an offline name: %+v, %v; want stored", res, err)
	}
	if n := target.relay.HeldCount("carol"); n != 1 {
		t.Fatalf("the attacked holder keeps %d of the legitimate message, want 1", n)
	}
}

// The finding: the rate limit was keyed on the peer id the sender declares, so with a new id
// per message 6,000 of 6,000 went through. Limits are now keyed on the identity the handshake
// proves, and on the address. One identity gets its burst; from one address, with a new
// identity per message (each a new connection: identities cost nothing to make), only the
// address's burst (AddrFactor identities' worth) goes through, to an online name (a system
// notice, which needs no sender name) and to a holder; the rest is refused with
// CodeRateLimited; and a peer on another machine is not limited by it.
func TestAttackRotatingPeerIDs(t *testing.T) {
	const burst, attempts = 5, 40 // attempts > AddrFactor*burst
	tests := map[string]struct {
		send func(tr *wire.Transport, target *node) error
		kept func(target *node) int
	}{
		"deliver": {
			send: func(tr *wire.Transport, target *node) error {
				m := evilMessage("bob", 100)
				m.From, m.Kind = "bob", KindSystem
				wire.SignMessage(m, tr.Identity())
				_, err := tr.Request(ctx, target.peer.ID(), target.relay.Addr(), wire.AppendMessage(nil, m))
				return err
			},
			kept: func(target *node) int { return target.relay.Unread("bob") },
		},
		"store": {
			send: func(tr *wire.Transport, target *node) error { return evilStore(tr, target, evilMessage("ghost", 100)) },
			kept: func(target *node) int { return target.relay.HeldCount("ghost") },
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			var hs hosts
			ns := startHolders(t, []string{"alice", "bob"}, hs.opt(), func(c *Config) {
				c.Rate, c.Burst = rate.Every(time.Hour), burst
			})
			alice, target := ns[0], ns[1]
			hs.set(alice.peer.ID(), "192.0.2.10")
			// One identity, many requests: its own burst.
			one := evilClient(t, "one")
			passedOne := 0
			for i := 0; i < 2*burst; i++ {
				err := tc.send(one, target)
				switch {
				case err == nil:
					passedOne++
				case wire.CodeOf(err) != wire.CodeRateLimited:
					t.Fatalf("attempt %d of one identity: %v, want accepted or refused with CodeRateLimited", i, err)
				}
			}
			if passedOne != burst {
				t.Fatalf("one identity had %d of %d accepted, want its burst of %d", passedOne, 2*burst, burst)
			}
			// A new identity per request, from the same address: the address's burst, less
			// what the first identity used of it.
			passed := passedOne
			for i := 0; i < attempts; i++ {
				err := tc.send(evilClient(t, fmt.Sprintf("rotating-%03d", i)), target)
				switch {
				case err == nil:
					passed++
				case wire.CodeOf(err) != wire.CodeRateLimited:
					t.Fatalf("attempt %d: %v, want accepted or refused with CodeRateLimited", i, err)
				}
			}
			if passed != AddrFactor*burst || tc.kept(target) != AddrFactor*burst {
				t.Fatalf("%d of %d went through (%d kept) with rotating identities, want the address's burst of %d", passed, attempts+2*burst, tc.kept(target), AddrFactor*burst)
			}
			if want := uint64(attempts + 2*burst - AddrFactor*burst); target.relay.Stats().RateLimited != want {
				t.Errorf("rate-limited count %d, want %d", target.relay.Stats().RateLimited, want)
			}
			// Another machine's peer has its own bucket.
			if _, err := alice.relay.Send(ctx, Outgoing{From: "alice", To: "bob", Body: "still welcome"}); err != nil {
				t.Fatalf("a peer on another machine after the flood: %v", err)
			}
		})
	}
}

// Store quotas are keyed on the sender's identity (SPEC section 7), within its address's: an
// identity that filled its own quota is refused, another identity from the same address is
// not, and an insider minting identities on one address stops at the address's quota.
func TestQuotaPerSenderIdentity(t *testing.T) {
	probe := evilMessage("gh-00", 1000)
	signer := keys.NewIdentity()
	wire.SignMessage(probe, signer)
	size, err := store.HeldSize(probe, time.Now(), DefaultStoreTTL, store.IdentityPrefix+signer.Fingerprint()+" 127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	slack := size / 4 // records differ by a few bytes (their times); never a whole record
	h := startHolders(t, []string{""}, func(c *Config) {
		c.SenderHeldBytes, c.SourceHeldBytes = 2*size+slack, 3*size+slack
	})[0]
	a, b := evilClient(t, "a"), evilClient(t, "b")
	for i := 0; i < 2; i++ {
		if err := evilStore(a, h, evilMessage(fmt.Sprintf("gh-%02d", i), 1000)); err != nil {
			t.Fatalf("store %d of identity a, within its quota: %v", i, err)
		}
	}
	err = evilStore(a, h, evilMessage("gh-02", 1000))
	if wire.CodeOf(err) != wire.CodeQuota || !strings.Contains(err.Error(), "for one sender") || !strings.Contains(err.Error(), a.Identity().Fingerprint()) {
		t.Fatalf("identity a past its quota: %v, want CodeQuota naming its identity", err)
	}
	if err := evilStore(b, h, evilMessage("gh-03", 1000)); err != nil {
		t.Fatalf("identity b from the same address, with room left at the address: %v", err)
	}
	err = evilStore(evilClient(t, "c"), h, evilMessage("gh-04", 1000))
	if wire.CodeOf(err) != wire.CodeQuota || !strings.Contains(err.Error(), "one sending address") {
		t.Fatalf("a new identity past the address's quota: %v, want CodeQuota for the address", err)
	}
	if h.relay.Stats().OverQuota != 2 {
		t.Errorf("over-quota count %d, want 2", h.relay.Stats().OverQuota)
	}
}
