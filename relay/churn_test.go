package relay

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/paf-mesh/paf-mesh/internal/keys"
	"github.com/paf-mesh/paf-mesh/internal/testutil"
)

// TestChurnAccounting: peers join, leave and crash while messages are
// stored and recipients come and go; at the end every message that send
// accepted was shown exactly once, and each recipient was shown its
// messages in send order. One peer goes at a time, and the next only after
// the mesh has noticed, which is the failure model store-and-forward
// promises to survive (R copies, re-replicated on every membership change).
//
// A leave (Close) is seen at once; a crash (no leave) only after failure
// detection, and messages are sent while the crashed peer is still
// suspected, when it is still ranked as a holder and cannot confirm.
func TestChurnAccounting(t *testing.T) {
	if testing.Short() {
		t.Skip("churn: skipped in -short")
	}
	for _, seed := range []uint64{1, 7, 42} {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) { churn(t, seed) })
	}
}

// What one round of churn does, besides sending.
type churnEvent int

const (
	holderLeaves churnEvent = iota
	holderCrashes
	holderJoins
	recipientLeaves  // a recipient comes, reads, and leaves
	recipientCrashes // a recipient comes, reads, and crashes
)

func (e churnEvent) String() string {
	return [...]string{"holder leaves", "holder crashes", "holder joins", "recipient leaves", "recipient crashes"}[e]
}

func churn(t *testing.T, seed uint64) {
	started := time.Now()
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
	// settle waits for the sender to see exactly the live holders: a crashed
	// one stays listed (suspect) until failure detection declares it dead.
	settle := func(after string) {
		want := len(holders) + 1
		took := testutil.WaitFor(t, 20*time.Second, "membership to settle after "+after, func() bool {
			return len(holdersFor("x", src.peer.Members(), 100)) == want
		})
		t.Logf("%s: settled in %s", after, took.Round(time.Millisecond))
	}
	settle("start")

	names := []string{"r0", "r1", "r2"}
	accepted := map[string][]string{} // recipient -> ids in send order
	sentTo := map[string]string{}     // id -> recipient
	shown := map[string][]string{}    // recipient -> ids in the order shown
	send := func(round, n int, when string) {
		for i := 0; i < n; i++ {
			to := names[rng.IntN(len(names))]
			res, err := src.relay.Send(ctx, Outgoing{From: "src", To: to, Body: fmt.Sprintf("round %d %s msg %d", round, when, i)})
			if err == nil {
				accepted[to] = append(accepted[to], res.ID)
				sentTo[res.ID] = to
			}
		}
	}
	// Each name is one user's: its sessions share an identity, as a user's restarted sessions
	// do (stored messages are sealed to it).
	idents := map[string]*keys.Identity{}
	for _, name := range names {
		idents[name] = keys.NewIdentity()
	}
	receive := func(name string, crash bool) {
		r := startNodeAs(t, idents[name], "", holder(filepath.Join(t.TempDir(), "slot")))
		if _, err := r.peer.Join(src.peer.Addr()); err != nil {
			t.Fatal(err)
		}
		c, cancel := contextWithTimeout(20 * time.Second)
		defer cancel()
		// The name's last session may have crashed: wait for its release, as
		// a restarted session does.
		testutil.Must(t, r.peer.ClaimWhenReleased(c, name))
		testutil.Must(t, r.relay.Collect(c, name))
		msgs, err := r.relay.Check(name)
		testutil.Must(t, err)
		for _, m := range msgs {
			shown[name] = append(shown[name], m.ID)
		}
		if crash {
			r.crash()
		} else {
			r.close()
		}
	}

	// Every kind of event happens in every seed, in an order of the seed's.
	schedule := []churnEvent{holderLeaves, holderCrashes, holderJoins, recipientLeaves, recipientCrashes, holderCrashes}
	rng.Shuffle(len(schedule), func(i, j int) { schedule[i], schedule[j] = schedule[j], schedule[i] })
	for round, ev := range schedule {
		send(round, 5, "before")
		switch ev {
		case holderLeaves, holderCrashes:
			k := rng.IntN(len(holders))
			if ev == holderCrashes {
				holders[k].crash()
			} else {
				holders[k].close()
			}
			holders = slices.Delete(holders, k, k+1)
		case holderJoins:
			addHolder()
		case recipientLeaves, recipientCrashes:
			receive(names[rng.IntN(len(names))], ev == recipientCrashes)
		}
		// Sent before the mesh has noticed: after a crash, the peer is still
		// ranked as a holder (or the name's owner) and does not answer.
		send(round, 5, "after")
		settle(fmt.Sprintf("round %d (%s)", round, ev))
	}
	for _, name := range names {
		receive(name, false)
	}

	if len(sentTo) == 0 {
		t.Fatal("nothing was accepted")
	}
	count := map[string]int{}
	for name, ids := range shown {
		for _, id := range ids {
			count[id]++
			if to, ok := sentTo[id]; !ok {
				t.Errorf("%s was shown a message nobody sent: %s", name, id)
			} else if to != name {
				t.Errorf("%s was shown message %s, sent to %s", name, id, to)
			}
		}
	}
	for id, to := range sentTo {
		if count[id] != 1 {
			t.Errorf("message %s for %s shown %d times, want exactly once", id, to, count[id])
		}
	}
	// Exactly once, so in order means the same sequence.
	for _, name := range names {
		if !t.Failed() && !slices.Equal(shown[name], accepted[name]) {
			t.Errorf("%s was shown %v, want the send order %v", name, shown[name], accepted[name])
		}
	}
	t.Logf("%d messages accepted, all shown exactly once and in order; %v in %s",
		len(sentTo), schedule, time.Since(started).Round(time.Millisecond))
}
