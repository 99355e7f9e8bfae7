package node

import (
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/paf-mesh/paf-mesh/internal/testutil"
)

// restartArrival bounds how long a stored message takes to reach its
// recipient after a total restart (issue 17 item 7: "within 5 s").
const restartArrival = 5 * time.Second

// A total restart on one machine (issue 17 item 7): three peers sharing one
// state dir hold a message for omega; all three stop at once, and while they
// may still be leaving a new peer and omega start on the same state dir, in
// every order. The message reaches omega every time, once. It was lost about
// one run in five: peers leaving together each copied their copy to another
// (still answering, itself leaving) and dropped their own, and the slots of
// peers that finished leaving after the new ones started were adopted only a
// minute later.
func TestTotalRestartWhileLeaving(t *testing.T) {
	runs := 30
	if testing.Short() {
		runs = 6
	}
	orders := []string{"omega first", "omega second", "together"}
	for i := range runs {
		order := orders[i%len(orders)]
		// Start the new peers 0 to 1.5 s after the old ones were told to
		// stop: a graceful leave takes about a second, so most runs overlap.
		gap := time.Duration(i%6) * 300 * time.Millisecond
		t.Run(fmt.Sprintf("%02d %s after %v", i, order, gap), func(t *testing.T) {
			totalRestart(t, order, gap)
		})
		if t.Failed() {
			return
		}
	}
}

func totalRestart(t *testing.T, order string, gap time.Duration) {
	m := newTestMesh(t)
	shared := func(c *Config) { c.StateDir = filepath.Join(m.root, "state") }
	old := make([]*Node, 3)
	var wg sync.WaitGroup
	for i := range old {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n, err := m.tryStart(fmt.Sprint("p", i+1), fmt.Sprint("p", i+1), shared)
			if err != nil {
				t.Error(err)
			}
			old[i] = n
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	waitNames(t, old, "p1", "p2", "p3")
	res, err := old[0].relay.Send(ctxT(t, 10*time.Second), relayOutgoing("p1", "omega", "are you back?"))
	if err != nil || res.Status != "stored" || res.Holders != 3 {
		t.Fatalf("send to omega: %+v, %v; want stored by 3", res, err)
	}

	// All three stop at once, as on SIGTERM to each.
	closed := make(chan struct{})
	go func() {
		var wg sync.WaitGroup
		for _, n := range old {
			wg.Add(1)
			go func() { defer wg.Done(); n.Close() }()
		}
		wg.Wait()
		close(closed)
	}()
	t.Cleanup(func() { <-closed })
	time.Sleep(gap) // not synchronisation: the scenario's delay before the restart

	var omega *Node
	startOmega := func() {
		n, err := m.tryStart("omega", "omega", shared)
		if err != nil {
			t.Error(err)
		}
		omega = n
	}
	startFresh := func() {
		if _, err := m.tryStart("fresh", "fresh", shared); err != nil {
			t.Error(err)
		}
	}
	switch order {
	case "omega first":
		startOmega()
		startFresh()
	case "omega second":
		startFresh()
		startOmega()
	default:
		var wg sync.WaitGroup
		wg.Add(2)
		go func() { defer wg.Done(); startOmega() }()
		go func() { defer wg.Done(); startFresh() }()
		wg.Wait()
	}
	if t.Failed() {
		t.FailNow()
	}
	since := time.Now()
	testutil.WaitFor(t, restartArrival, "the stored message to reach omega", func() bool {
		ms, err := omega.relay.Peek("omega")
		return err == nil && len(ms) > 0
	})
	<-closed
	// Once: the inbox keeps one copy of an id, so a duplicate would show as
	// a second message only if it came with another id; nothing else for
	// omega is pending anywhere.
	ms, err := omega.relay.Peek("omega")
	if err != nil || len(ms) != 1 || ms[0].ID != res.ID {
		t.Fatalf("omega's inbox: %+v, %v; want exactly message %s", ms, err, res.ID)
	}
	t.Logf("arrived %v after the restart", time.Since(since).Round(time.Millisecond))
}
