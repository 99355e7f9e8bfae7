package relay

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/paf-mesh/paf-mesh/mesh"
	"github.com/paf-mesh/paf-mesh/relay/wire"
)

// Collect waits until no live holder keeps messages for name (they hand them
// over as soon as the name is online), or ctx ends. A session calls it right after
// taking its name, and a brief peer (`paf-peer check --as NAME`) before reading the
// inbox, so that their first look at the inbox shows what was kept for them.
//
// It asks only the peers that may keep something for name (collectFrom): those whose
// metadata says they hold messages (TagHeld, which each holder announces itself, see
// announceHeld) and the name's holders in this peer's view. Asking every live peer was a
// Noise handshake with each, for every session that starts: 50 sessions starting together
// made 1,225 of them (a tenth of their CPU), to learn that nobody held anything (issue 18).
//
// What a stale hint can cost: a peer that began to keep messages for name moments ago
// (its new TagHeld has not reached this peer yet) and that is not among the name's holders
// here (a copy left from an older membership) is not waited for, so that first look may
// miss its messages. None is lost or shown twice: that holder hands them over as soon as it
// sees the name online (holdLoop), as it does for every message stored after Collect
// returns, and drops its copy only on the recipient's acknowledgement; they show at the
// next check. The peers asked are asked all at once (at most collectParallel in flight).
func (r *Relay) Collect(ctx context.Context, name string) error {
	req := appendNameList(nil, wire.ReqCount, name, nil)
	for {
		pending := r.heldFor(name, r.cfg.Identity.Fingerprint())
		var mu sync.Mutex
		var wg sync.WaitGroup
		sem := make(chan struct{}, collectParallel)
		for _, m := range collectFrom(name, r.dir.Members(), r.dir.ID(), r.cfg.Replicas) {
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				cctx, cancel := context.WithTimeout(ctx, time.Second)
				resp, err := r.tr.Request(cctx, m.ID, MetaAddr(m.Meta), req)
				cancel()
				if err == nil {
					n, _ := strconv.Atoi(string(resp))
					mu.Lock()
					pending += n
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if pending == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("relay: %d stored messages for %q not handed over yet: %w", pending, name, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// collectFrom is the peers other than self that Collect asks about name: of the live ones
// with a relay that may hold (not transient), those that announce holding messages
// (MetaHeld) and those that rank among name's replicas holders without self, as a sender
// ranked them before this peer was there (holdersFor). The holders are asked whatever they
// announce: a message stored on them a moment ago is waited for even before their
// announcement arrives, at the cost of replicas requests, whatever the size of the mesh.
func collectFrom(name string, members []mesh.Member, self string, replicas int) []mesh.Member {
	var others []mesh.Member
	for _, m := range members {
		if m.ID == self || m.Meta.Transient || MetaAddr(m.Meta) == "" || (m.State != mesh.MemberAlive && m.State != mesh.MemberSuspect) {
			continue
		}
		others = append(others, m)
	}
	ask := holdersFor(name, others, replicas)
	for _, m := range others {
		if held, _ := MetaHeld(m.Meta); held > 0 && !slices.ContainsFunc(ask, func(h mesh.Member) bool { return h.ID == m.ID }) {
			ask = append(ask, m)
		}
	}
	return ask
}

// collectParallel bounds the count requests Collect has in flight.
const collectParallel = 8
