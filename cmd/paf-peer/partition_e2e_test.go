package main

import (
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/paf-mesh/paf-mesh/internal/netns"
	"github.com/paf-mesh/paf-mesh/internal/testutil"
)

// The partition acceptance test of issue 17 (SPEC section 3, "No ambiguous errors"), with the
// real binary on two network namespaces: a1 streams messages to b1 with `send --json` while
// b1's link is cut and then restored. Every send that reported an error was never shown to
// b1; every accepted one (delivered, stored or queued) is shown exactly once, in send order,
// to a reader that keeps reading during the stream.
func TestLANPartitionNoAmbiguousErrors(t *testing.T) {
	netns.Require(t)
	t.Parallel()
	hosts := newLANHosts(t, "a1", "b1")
	secret := lanSecret(t)
	for _, h := range hosts {
		h.secret = secret
		h.startServe(t)
	}
	a, b := hosts[0], hosts[1]
	for _, h := range hosts {
		waitServing(t, h.serve)
	}
	testutil.WaitFor(t, lanMeshDeadline, "a1 and b1 to see each other alive", func() bool {
		return seeAlive(t, hosts, "a1", "b1")
	})

	// Few sends while cut: each waits for its answer up to the relay's DeliverTimeout.
	const total, cutAt, restoreAt = 16, 5, 9
	var accepted, refused, shown []string
	statuses := map[string]int{}
	for i := range total {
		switch i {
		case cutAt:
			if err := b.LinkDown(); err != nil {
				t.Fatal(err)
			}
		case restoreAt:
			if err := b.LinkUp(); err != nil {
				t.Fatal(err)
			}
		}
		body := fmt.Sprintf("m%02d", i)
		out, errOut, code := a.cli(t, "send", "--as", "a1", "b1", body, "--json")
		if code != 0 {
			refused = append(refused, body)
			t.Logf("send %s: exit %d: %s", body, code, errOut)
		} else {
			var r struct {
				ID, Status, Reason string
			}
			if err := json.Unmarshal([]byte(out), &r); err != nil {
				t.Fatalf("send --json: %v\n%s", err, out)
			}
			switch r.Status {
			case "delivered", "stored", "queued":
			default:
				t.Fatalf("send %s: status %q", body, r.Status)
			}
			if r.Status == "queued" && r.Reason == "" {
				t.Errorf("send %s: queued without a reason: %s", body, out)
			}
			t.Logf("send %s: %s %s", body, r.Status, r.Reason)
			statuses[r.Status]++
			accepted = append(accepted, body)
		}
		for _, m := range b.check(t) { // b1's own control socket: reachable while cut
			shown = append(shown, m.Body)
		}
	}
	testutil.WaitFor(t, 2*time.Minute, "every accepted message to reach b1", func() bool {
		for _, m := range b.check(t) {
			shown = append(shown, m.Body)
		}
		v := a.view(t)
		return len(shown) >= len(accepted) && v != nil && v.counters["queued"] == 0
	})
	for _, m := range b.check(t) { // a late duplicate would show here
		shown = append(shown, m.Body)
	}
	t.Logf("statuses %v, refused %v", statuses, refused)
	for _, r := range refused {
		if slices.Contains(shown, r) {
			t.Errorf("%s was reported as an error and shown", r)
		}
	}
	if !slices.Equal(shown, accepted) {
		t.Fatalf("b1 was shown %v; accepted, in send order: %v", shown, accepted)
	}
}
