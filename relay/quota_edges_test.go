package relay

import (
	"github.com/paf-mesh/paf-mesh/internal/keys"
	"github.com/paf-mesh/paf-mesh/relay/store"
	"github.com/paf-mesh/paf-mesh/relay/wire"

	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// Each store quota over the wire, at its edge and one past: a holder with a limit of three
// messages' worth takes the third (usage exactly at the limit) and refuses the fourth with
// CodeQuota; what the limit does not cover (another name, another machine) is still taken;
// and with the limit one byte (one message) lower, the third is refused. The holder's clock
// is fixed, so that every message is charged the same (store.HeldSize).
func TestQuotaEdgesOverTheWire(t *testing.T) {
	t0 := time.Now().Truncate(time.Second)
	msg := func(to string) *Message {
		m := evilMessage(to, 1000)
		m.SentAt = t0
		return m
	}
	// Every address below is written in 9 bytes, as 127.0.0.1 is, and every identity's key in
	// 19, so each record is the same size (signed: evilStore signs, and a signature is the same
	// size whoever makes it).
	sized := msg("gh-00")
	signer := keys.NewIdentity()
	wire.SignMessage(sized, signer)
	size, err := store.HeldSize(sized, t0, DefaultStoreTTL, store.IdentityPrefix+signer.Fingerprint()+" 127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	type put struct{ to, host string } // host "" is the real one, 127.0.0.1
	tests := map[string]struct {
		limits      func(slack int64) nodeOpt
		fill        [3]put
		next        put
		other       *put
		wantInText  string
		perNameMsgs bool
	}{
		"messages per name": {
			limits: func(s int64) nodeOpt { return quotaLimits(-1, -1, -1, 3+int(s)) },
			fill:   [3]put{{"gh-00", ""}, {"gh-00", "192.0.2.1"}, {"gh-00", "192.0.2.2"}},
			next:   put{"gh-00", "192.0.2.3"}, other: &put{"gh-01", ""},
			wantInText: "messages are already waiting",
		},
		"bytes per name": {
			limits: func(s int64) nodeOpt { return quotaLimits(-1, -1, 3*size+s, -1) },
			fill:   [3]put{{"gh-00", ""}, {"gh-00", "192.0.2.1"}, {"gh-00", "192.0.2.2"}},
			next:   put{"gh-00", "192.0.2.3"}, other: &put{"gh-01", ""},
			wantInText: "for one name",
		},
		"bytes per source": {
			limits: func(s int64) nodeOpt { return quotaLimits(-1, 3*size+s, -1, -1) },
			fill:   [3]put{{"gh-00", ""}, {"gh-01", ""}, {"gh-02", ""}},
			next:   put{"gh-03", ""}, other: &put{"gh-03", "192.0.2.1"},
			wantInText: "for one sending address",
		},
		"bytes in total": {
			limits:     func(s int64) nodeOpt { return quotaLimits(3*size+s, -1, -1, -1) },
			fill:       [3]put{{"gh-00", ""}, {"gh-01", "192.0.2.1"}, {"gh-02", "192.0.2.2"}},
			next:       put{"gh-03", "192.0.2.3"},
			wantInText: "its total",
		},
	}
	for name, tc := range tests {
		for _, slack := range []int64{0, -1} {
			t.Run(fmt.Sprintf("%s/slack %d", name, slack), func(t *testing.T) {
				var hs hosts
				h := startHolders(t, []string{""}, tc.limits(slack), hs.opt(), func(c *Config) {
					c.Now = func() time.Time { return t0 }
				})[0]
				clients := map[string]*wire.Transport{}
				client := func(host string) *wire.Transport {
					if clients[host] == nil {
						clients[host] = evilClient(t, "evil-"+host)
						if host != "" {
							hs.set(clients[host].ID(), host)
						}
					}
					return clients[host]
				}
				store := func(p put) error { return evilStore(client(p.host), h, msg(p.to)) }
				fits := 3
				if slack < 0 {
					fits = 2
				}
				for i, p := range tc.fill[:fits] {
					if err := store(p); err != nil {
						t.Fatalf("store %d of %d, within the limit: %v", i+1, fits, err)
					}
				}
				next := tc.next
				if slack < 0 {
					next = tc.fill[2]
				}
				err := store(next)
				if wire.CodeOf(err) != wire.CodeQuota || !strings.Contains(err.Error(), tc.wantInText) {
					t.Fatalf("one past the limit: %v, want CodeQuota saying %q", err, tc.wantInText)
				}
				if got := heldBytes(t, h); got != int64(fits)*size {
					t.Fatalf("held %d bytes, want %d", got, int64(fits)*size)
				}
				if tc.other != nil {
					if err := store(*tc.other); err != nil {
						t.Fatalf("a message the limit does not cover: %v", err)
					}
				}
				if h.relay.Stats().OverQuota != 1 {
					t.Errorf("over-quota count %d, want 1", h.relay.Stats().OverQuota)
				}
			})
		}
	}
}

// A message no holder takes is an error that says why, never "stored": the holders' totals
// are full (an attacker on another machine filled them), so the sender, itself one of them, is
// told with ErrQuota, and nothing is held.
func TestSendNoHolderTakesIt(t *testing.T) {
	const total = 64 << 10
	var hs hosts
	ns := startHolders(t, []string{"alice", ""}, quotaLimits(total, -1, -1, -1), hs.opt())
	evil := evilClient(t, "evil")
	hs.set(evil.ID(), "192.0.2.66") // not alice's machine: her own quota is untouched
	for _, h := range ns {
		for i := 0; ; i++ {
			err := evilStore(evil, h, evilMessage(fmt.Sprintf("gh-%02d", i), 4<<10))
			if wire.CodeOf(err) == wire.CodeQuota {
				break
			}
			if err != nil || i > total/(4<<10) {
				t.Fatalf("filling a holder, store %d: %v", i, err)
			}
		}
	}
	res, err := ns[0].relay.Send(ctx, Outgoing{From: "alice", To: "carol", Body: strings.Repeat("y", 8<<10)})
	if !errors.Is(err, ErrQuota) || res.Status != "" || !strings.Contains(err.Error(), "nothing was stored") || !strings.Contains(err.Error(), "its total") {
		t.Fatalf("send with every holder full: %+v, %v; want ErrQuota saying nothing was stored and why", res, err)
	}
	for _, h := range ns {
		if n := h.relay.HeldCount("carol"); n != 0 {
			t.Fatalf("a holder keeps %d messages for carol after refusing", n)
		}
	}
}

// What a sender is told, from its holders' answers.
func TestStoreResult(t *testing.T) {
	quota := wire.WithCode(wire.CodeQuota, fmt.Errorf("%w: this holder already keeps 9 bytes for offline names, and this message (2) would pass its total of 10; send again later", store.ErrQuota))
	limited := &wire.RemoteError{Code: wire.CodeRateLimited, Msg: errRateLimited.Error()}
	other := errors.New("disk full")
	unreachable := fmt.Errorf("%w: connection reset", wire.ErrUnreachable)
	skewed := &wire.RemoteError{Code: wire.CodeClockSkew, Msg: "the sending peer's clock is 5m0s ahead"}
	tests := map[string]struct {
		errs      []error
		wantN     int
		wantIs    error
		wantInErr []string
	}{
		"one took it":        {errs: []error{quota, nil, limited}, wantN: 1},
		"all took it":        {errs: []error{nil, nil, nil}, wantN: 3},
		"all full":           {errs: []error{quota, quota, quota}, wantIs: ErrQuota, wantInErr: []string{"nothing was stored", "3 of its 3", "send again later"}},
		"full and limited":   {errs: []error{quota, limited, other}, wantIs: ErrQuota, wantInErr: []string{"nothing was stored", "1 of its 3", "1 more refuse"}},
		"all rate-limited":   {errs: []error{limited, limited}, wantIs: ErrRateLimited, wantInErr: []string{"nothing was stored", "wait a few seconds"}},
		"limited and failed": {errs: []error{limited, other}, wantIs: ErrRateLimited, wantInErr: []string{"nothing was stored"}},
		"all failed":         {errs: []error{other}, wantIs: ErrNoHolders, wantInErr: []string{"disk full"}},
		// A holder that did not answer may have kept it: never a refusal (the sender queues).
		"full and unanswered": {errs: []error{quota, unreachable, limited}, wantIs: wire.ErrUnreachable, wantInErr: []string{"no holder confirmed it"}},
		"skewed":              {errs: []error{skewed, skewed, other}, wantIs: ErrClockSkew, wantInErr: []string{"2 of the 3", "5m0s ahead"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			n, err := storeResult("carol", tc.errs)
			if n != tc.wantN || !errors.Is(err, tc.wantIs) || (tc.wantIs == nil) != (err == nil) {
				t.Fatalf("storeResult = %d, %v; want %d, %v", n, err, tc.wantN, tc.wantIs)
			}
			// Only a failure that may have kept it, or a clock, is queued rather than refused.
			wantQueued := errors.Is(tc.wantIs, wire.ErrUnreachable) || errors.Is(tc.wantIs, ErrClockSkew)
			if err != nil && queueable(err) != wantQueued {
				t.Errorf("queueable(%v) = %v, want %v", err, !wantQueued, wantQueued)
			}
			for _, s := range tc.wantInErr {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not say %q", err, s)
				}
			}
		})
	}
}

// Zero is the default, negative none, and the per-name and per-source byte quotas are at
// most the total.
func TestQuotaConfig(t *testing.T) {
	tests := map[string]struct {
		cfg  Config
		want store.HeldLimits
	}{
		"defaults": {Config{}, store.HeldLimits{Bytes: DefaultHeldBytes, NameBytes: DefaultNameHeldBytes, NameMessages: DefaultQuota, SenderBytes: DefaultSenderHeldBytes, AddrBytes: DefaultSourceHeldBytes}},
		"none":     {Config{HeldBytes: -1, NameHeldBytes: -1, SenderHeldBytes: -1, SourceHeldBytes: -1, Quota: -1}, store.HeldLimits{}},
		"lowered":  {Config{HeldBytes: 100, NameHeldBytes: 200, SourceHeldBytes: -1, Quota: 5}, store.HeldLimits{Bytes: 100, NameBytes: 100, NameMessages: 5, SenderBytes: 100, AddrBytes: 100}},
		"set":      {Config{HeldBytes: 100, NameHeldBytes: 20, SenderHeldBytes: 30, SourceHeldBytes: 50, Quota: 5}, store.HeldLimits{Bytes: 100, NameBytes: 20, NameMessages: 5, SenderBytes: 30, AddrBytes: 50}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := tc.cfg.limits(); got != tc.want {
				t.Fatalf("limits() = %+v, want %+v", got, tc.want)
			}
		})
	}
	if DefaultSourceHeldBytes >= DefaultHeldBytes || DefaultNameHeldBytes >= DefaultHeldBytes || DefaultSenderHeldBytes >= DefaultSourceHeldBytes {
		t.Fatal("the per-source and per-name defaults must be below the total, or one host or one name could take it all")
	}
}

func TestSourceOf(t *testing.T) {
	tests := map[string]struct{ addr, want string }{
		"ipv4":           {"192.0.2.7", "192.0.2.7"},
		"ipv4-mapped":    {"::ffff:192.0.2.7", "192.0.2.7"},
		"ipv6 is a /64":  {"2001:db8:1:2:aaaa:bbbb:cccc:dddd", "2001:db8:1:2::/64"},
		"same /64":       {"2001:db8:1:2::1", "2001:db8:1:2::/64"},
		"link-local":     {"fe80::1%eth0", "fe80::1"},
		"loopback":       {"127.0.0.1", "127.0.0.1"},
		"ipv6 loopback":  {"::1", "::/64"},
		"not an address": {"", "unknown"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			var a netip.Addr
			if tc.addr != "" {
				a = netip.MustParseAddr(tc.addr)
			}
			if got := sourceOf(a); got != tc.want {
				t.Fatalf("sourceOf(%s) = %q, want %q", tc.addr, got, tc.want)
			}
		})
	}
}
