package relay

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"

	"github.com/paf-mesh/paf-mesh/internal/testutil"
)

// TestChurnAccounting: peers join and die while messages are stored and
// recipients come and go; at the end every message that send accepted was
// shown exactly once. One peer dies at a time, and the next only after the
// mesh has noticed, which is the failure model store-and-forward promises to
// survive (R copies, re-replicated on every membership change).
func TestChurnAccounting(t *testing.T) {
	if testing.Short() {
		t.Skip("churn: skipped in -short")
	}
	for _, seed := range []uint64{1, 7, 42} {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) { churn(t, seed) })
	}
}

func churn(t *testing.T, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, seed*31+1))
	src := startHolders(t, []string{"src"})[0]
	var holders []*node
	addHolder := func() {
		n := startNode(t, "", holder(filepath.Join(t.TempDir(), "slot")))
		if _, err := n.peer.Join(src.peer.Addr()); err != nil {
			t.Fatal(err)
		}
		holders = append(holders, n)
	}
	for i := 0; i < 4; i++ {
		addHolder()
	}
	settle := func() {
		want := len(holders) + 1
		testutil.WaitFor(t, 15*time.Second, "membership to settle", func() bool {
			return len(holdersFor("x", src.peer.Members(), 100)) == want
		})
	}
	settle()

	names := []string{"r0", "r1", "r2"}
	accepted := map[string]string{} // id -> recipient
	shown := map[string]int{}
	receive := func(name string) {
		r := startNode(t, "", holder(filepath.Join(t.TempDir(), "slot")))
		if _, err := r.peer.Join(src.peer.Addr()); err != nil {
			t.Fatal(err)
		}
		testutil.Must(t, r.peer.Claim(ctx, name))
		c, cancel := contextWithTimeout(20 * time.Second)
		defer cancel()
		testutil.Must(t, r.relay.Collect(c, name))
		msgs, err := r.relay.Check(name)
		testutil.Must(t, err)
		for _, m := range msgs {
			shown[m.ID]++
		}
		r.close()
	}

	deadline := time.Now().Add(40 * time.Second)
	for round := 0; round < 6 && time.Now().Before(deadline); round++ {
		for i := 0; i < 10; i++ {
			to := names[rng.IntN(len(names))]
			res, err := src.relay.Send(ctx, Outgoing{From: "src", To: to, Body: fmt.Sprintf("round %d msg %d", round, i)})
			if err == nil {
				accepted[res.ID] = to
			}
		}
		switch rng.IntN(3) {
		case 0: // a holder dies
			if len(holders) > 2 {
				k := rng.IntN(len(holders))
				holders[k].close()
				holders = append(holders[:k], holders[k+1:]...)
			}
		case 1: // a holder joins
			addHolder()
		case 2: // a recipient comes and goes
			receive(names[rng.IntN(len(names))])
		}
		settle()
	}
	for _, name := range names {
		receive(name)
	}
	if len(accepted) == 0 {
		t.Fatal("nothing was accepted")
	}
	for id, to := range accepted {
		if shown[id] != 1 {
			t.Errorf("message %s for %s shown %d times, want exactly once", id, to, shown[id])
		}
	}
	for id := range shown {
		if _, ok := accepted[id]; !ok {
			t.Errorf("shown a message nobody sent: %s", id)
		}
	}
	t.Logf("%d messages accepted, all shown exactly once", len(accepted))
}
