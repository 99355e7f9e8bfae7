//go:build replayhole

package main

// The open hole of issue 15, "replayed gossip takes a live name": memberlist's gossip is
// encrypted with a key from the secret but has no replay protection, and a peer that has
// forgotten a departed member (memberlist drops it GossipToTheDeadTime, 30 s on a LAN, after
// it left) takes that member's captured alive message or push/pull state as news. This test
// performs the attack a passive attacker can (replay, from a host without the secret, what it
// captured of a peer's gossip) at any time after the peer left, and asserts what SPEC section 7
// promises: the replay takes no name and brings nobody back.
//
// It passes since Security II (a departed peer is never brought back: mesh's departed list;
// and a live holder yields only to a claimant that proves itself live over the relay): 90 s
// on 2026-12-06. It stays behind the build tag `replayhole` because it must outlast
// memberlist's GossipToTheDeadTime (30 s on a LAN) several times, which CI's time budget does
// not allow; in-process, TestDepartedPeerDoesNotComeBack (mesh) performs the same replay past
// a short Retain, and TestLANPassiveAttacker replays captured traffic in the suite. What it
// showed on the code before those fixes (in each of two runs, on a loaded
// 2-core machine): alice left gracefully; a new session of another identity took her name on
// the same host 2 s later; the attacker (host eve, no secret) replayed to bob, every 3 s, the
// gossip alice had sent bob while she held the name (datagrams and her join's push/pull, not
// her goodbye). Rounds up to 28-31 s after her leave changed nothing: bob's memberlist still
// knew her as left with a higher incarnation. The round at 31 s (34 s in the other run), just
// past memberlist's LAN GossipToTheDeadTime (30 s, after which it forgets a departed member),
// made bob take the departed peer as a new member, alive, holding the name with its older claim
// time: bob's status listed both peers alive under the name (and resolved it to the ghost in
// one run), bob logged name-claimed for it, and the live holder logged "lost a concurrent claim of our name"
// and then "lost our name to another peer that claimed it at the same time" (in an earlier run,
// where the replay also carried alice's goodbye, the same happened only at 65 s, and the live
// holder exited with code 1). The mesh layer does not stop it: a member it lists as left comes
// back alive on any alive news memberlist passes on (mesh/delegate.go, update).
//
//	go test -race -count=1 -p 1 -tags replayhole -run TestLANReplayedGossipLater ./cmd/paf-peer/
//
// It stops at the first round that shows the hole (41-46 s here); when none does, it takes
// 90-100 s: the replays go on, every few seconds, well past the time the victim forgets the
// departed peer.

import (
	"testing"
	"time"

	"github.com/paf-mesh/paf-mesh/internal/netns"
	"github.com/paf-mesh/paf-mesh/internal/testutil"
)

const (
	// replayEvery is the attacker's pace, not synchronisation: each round is one more replay
	// "at a later time".
	replayEvery = 3 * time.Second
	// replayFor is how long the attacker keeps at it: past memberlist's LAN
	// GossipToTheDeadTime (30 s) and the mesh's Retain (60 s on a LAN), when the victim has
	// forgotten alice.
	replayFor = 80 * time.Second
)

func TestLANReplayedGossipLater(t *testing.T) {
	netns.Require(t)
	start := time.Now()
	l := newPassiveLab(t)
	bob, alice := l.bob, l.alice
	bobGossip := addrPort(t, "bob's gossip address", bob.status(t).Self.Addr)
	// What alice sent bob while she held her name, without her goodbye (see
	// TestLANPassiveAttacker).
	dgrams, streams := l.capturedGossip(t, bobGossip)
	l.stopAlice(t)
	left := time.Now()

	// alice's user comes back with a new session, on the same host with a state dir of its
	// own (another identity): the live holder of the name that the replay must not take.
	again := &lanHost{Host: alice.Host, name: alice.name, runDir: alice.runDir + "2", stateDir: alice.stateDir + "2", secret: alice.secret}
	warmKeyCache(t, again.secret, bob, again)
	again.startServe(t, "--join", bobGossip.String())
	newID := waitServing(t, again.serve)
	testutil.WaitFor(t, lanMeshDeadline, "bob to see the new holder of alice's name", func() bool {
		v := bob.view(t)
		if v == nil {
			return false
		}
		p := v.peerNamed(alice.name, "alive")
		return p != nil && p.ID == newID
	})

	var round int
	var back *jsonPeer
	var lost bool
	testutil.WaitForEvery(t, replayEvery, replayFor+time.Minute, "the attacker to finish", func() bool {
		round++
		answered := l.replayGossip(t, dgrams, streams, bobGossip)
		v := bob.view(t)
		if v == nil {
			t.Fatalf("bob does not answer status after replay round %d:\n%s", round, bob.serve.stderr())
		}
		if p := v.peerID(l.ids[alice.name]); p != nil && (p.State == "alive" || p.State == "suspect") {
			back = p
		}
		if p := v.peerNamed(alice.name, "alive"); p == nil || p.ID != newID {
			lost = true
		}
		if back != nil || lost || again.serve.exited() {
			t.Logf("replay round %d, %s after alice left (bob answered %d bytes): old alice back at bob: %v; name held at bob by %+v; new holder exited: %v; bob lists %+v",
				round, time.Since(left).Round(time.Millisecond), answered, back, v.peerNamed(alice.name, "alive"), again.serve.exited(), v.Peers)
			return true
		}
		return time.Since(left) > replayFor
	})
	t.Logf("%d replay rounds over %s after alice left; test took %s", round, time.Since(left).Round(time.Second), time.Since(start).Round(time.Second))
	if back != nil {
		t.Errorf("replayed gossip brought alice's departed peer back at bob: %+v", *back)
	}
	if lost {
		t.Errorf("after the replay bob no longer lists the new holder %s of %s", newID, alice.name)
	}
	if again.serve.exited() {
		t.Errorf("the new holder of %s exited (code %d) after the replay:\n%s", alice.name, again.serve.code, again.serve.stderr())
	}
}
