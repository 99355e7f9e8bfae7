package mesh

import (
	"log/slog"
	"testing"
	"time"

	"github.com/paf-mesh/paf-mesh/internal/testutil"
)

// Owners follow from the claims every peer sees, whatever order the members
// are looked at in: the earliest claim wins, a failed peer's reservation
// keeps its name from later claimants, except from this peer when it
// already holds the name (it learnt of the reservation after its claim).
func TestOwnerRanking(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	member := func(id string, st MemberState, claimed int64) *Member {
		return &Member{ID: id, State: st, Since: now.Add(-time.Second), Meta: Meta{Name: "x", ClaimedAt: claimed}}
	}
	for name, tc := range map[string]struct {
		self  int64 // our claim of x; 0: we hold no name
		peers []*Member
		want  string
	}{
		"ours against a reservation":               {self: 30, peers: []*Member{member("dead", MemberDead, 10)}, want: "me"},
		"an earlier live claim, and a reservation": {self: 30, peers: []*Member{member("live", MemberAlive, 20), member("dead", MemberDead, 10)}, want: "dead"},
		"others only: the reservation":             {peers: []*Member{member("live", MemberAlive, 20), member("dead", MemberDead, 10)}, want: "dead"},
		"a reservation later than our claim":       {self: 10, peers: []*Member{member("dead", MemberDead, 20)}, want: "me"},
		"live claims only":                         {self: 30, peers: []*Member{member("live", MemberAlive, 20), member("late", MemberSuspect, 40)}, want: "live"},
	} {
		t.Run(name, func(t *testing.T) {
			for range 20 { // map order varies from run to run
				p := &Peer{id: "me", cfg: Config{NameGrace: time.Minute}, log: testutil.QuietLogger(t, slog.LevelWarn),
					members: map[string]*Member{"me": {ID: "me", State: MemberAlive}}, owners: map[string]string{},
					subs: map[chan<- Event]struct{}{}, kick: make(chan struct{}, 1)}
				if tc.self != 0 {
					p.self = Meta{Name: "x", ClaimedAt: tc.self}
				}
				for _, m := range tc.peers {
					c := *m
					p.members[m.ID] = &c
				}
				p.recomputeLocked(now)
				if got := p.owners["x"]; got != tc.want {
					t.Fatalf("owner of x: %q, want %q", got, tc.want)
				}
			}
		})
	}
}

// Zero fields take DefaultLocalConfig's values; a nil Config is that
// preset; Retain is at least NameGrace; the caller's memberlist config is
// copied, not modified.
func TestConfigDefaults(t *testing.T) {
	def := DefaultLocalConfig()
	for name, tc := range map[string]struct {
		in            *Config
		grace, retain time.Duration
	}{
		"nil":               {nil, DefaultNameGrace, DefaultRetain},
		"zero":              {&Config{}, DefaultNameGrace, DefaultRetain},
		"long grace":        {&Config{NameGrace: time.Minute}, time.Minute, time.Minute},
		"LAN preset as set": {DefaultLANConfig(), DefaultLANNameGrace, DefaultLANRetain},
	} {
		t.Run(name, func(t *testing.T) {
			c := tc.in.withDefaults()
			if c.NameGrace != tc.grace || c.Retain != tc.retain || c.ForwardTTL != DefaultForwardTTL ||
				c.DiscoverInterval <= 0 || c.Logger == nil || c.ID == "" || c.Memberlist == nil {
				t.Fatalf("withDefaults: %+v", c)
			}
			if tc.in != nil && tc.in.Memberlist != nil && c.Memberlist == tc.in.Memberlist {
				t.Fatal("the memberlist config is the caller's, not a copy")
			}
			if tc.in == nil || tc.in.Memberlist == nil {
				if c.Memberlist.SuspicionMult != def.Memberlist.SuspicionMult || c.Memberlist.RetransmitMult != retransmitMult {
					t.Fatalf("memberlist defaults: %+v", c.Memberlist)
				}
			}
		})
	}
}
