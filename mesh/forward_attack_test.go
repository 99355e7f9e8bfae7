package mesh_test

import (
	"testing"
	"time"

	"github.com/paf-mesh/paf-mesh/internal/keys"
	"github.com/paf-mesh/paf-mesh/internal/testutil"
	"github.com/paf-mesh/paf-mesh/mesh"
	"github.com/paf-mesh/paf-mesh/mesh/meshtest"
)

// Security II: forwards (renames) are signed by the identity of the peer that writes them and
// bounded in stamp and expiry; a peer holding the mesh secret cannot install a forward for a
// name another identity holds, nor one that outlives or out-ranks every later entry. Before,
// an insider could redirect a live name's mail with a forward stamped MaxInt64 that expired in
// 100 years, and it kept winning after the owner claimed its name again.
func TestForwardsFromOthersAreChecked(t *testing.T) {
	alice := newPeer(t, meshtest.Config(t))
	observer := newPeer(t, meshtest.Config(t))
	if _, err := observer.Join(alice.Addr()); err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	if err := alice.Claim(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 10*time.Second, "the observer to see alice's claim", func() bool { return ownerID(observer, "alice") == alice.ID() })

	mallory := keys.NewIdentity()
	malloryID := mallory.NewPeerID()
	now := time.Now()
	signed := func(f mesh.Forward) mesh.Forward {
		mesh.SignForward(&f, mallory)
		return f
	}
	base := mesh.Forward{From: "alice", To: "mallory", Expires: now.Add(time.Hour), Stamp: now.UnixNano(), Origin: malloryID}
	tests := map[string]mesh.Forward{
		"unsigned":                          base,
		"for a name another identity holds": signed(base),
		"signed by another identity than its origin": func() mesh.Forward {
			f := base
			f.From, f.Origin = "ghost", alice.ID()
			return signed(f)
		}(),
		"stamped far ahead": func() mesh.Forward {
			f := base
			f.From, f.Stamp = "ghost", 1<<63-1
			return signed(f)
		}(),
		"expiring in 100 years": func() mesh.Forward {
			f := base
			f.From, f.Expires = "ghost", now.Add(100*365*24*time.Hour)
			return signed(f)
		}(),
		"altered after signing": func() mesh.Forward {
			f := base
			f.From = "ghost"
			f = signed(f)
			f.To = "carol"
			return f
		}(),
	}
	for name, f := range tests {
		t.Run(name, func(t *testing.T) {
			before := observer.Stats().RejectedForwards
			mesh.DeliverForward(observer, f)
			if got := observer.Stats().RejectedForwards; got != before+1 {
				t.Fatalf("rejected forwards %d -> %d, want one more", before, got)
			}
			for _, fw := range observer.Forwards() {
				if fw.From == f.From {
					t.Fatalf("the observer took the forward %+v", fw)
				}
			}
		})
	}
	// Alice still gets her mail: her name resolves to her.
	if r, err := observer.Resolve("alice"); err != nil || !r.Online || r.Owner.ID != alice.ID() || len(r.Via) != 0 {
		t.Fatalf("alice resolves to %+v, %v", r, err)
	}
	// A forward signed by its origin, in bounds, for a name nobody holds, is taken.
	ok := mesh.Forward{From: "ghost", To: "mallory", Expires: now.Add(time.Hour), Stamp: now.UnixNano(), Origin: malloryID}
	mesh.SignForward(&ok, mallory)
	mesh.DeliverForward(observer, ok)
	taken := false
	for _, fw := range observer.Forwards() {
		taken = taken || (fw.From == "ghost" && fw.To == "mallory")
	}
	if !taken {
		t.Fatal("a valid forward was not taken")
	}
}
