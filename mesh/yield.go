package mesh

import (
	"context"
	"slices"
	"time"

	"github.com/paf-mesh/paf-mesh/internal/keys"
)

// Who may take a name that another peer holds or reserves (SPEC section 7, "Names are bound
// to identities"): the rules recomputeLocked applies to the claims it ranks.

// claimRecheck is how long a claimant that could not prove itself live is not asked again: a
// real peer whose relay was briefly unreachable gets another chance.
const claimRecheck = 30 * time.Second

// claimVerdict is what this peer concluded about a claimant that ranks before our own claim.
type claimVerdict struct {
	asking bool      // ConfirmClaim is being asked
	ok     bool      // proven: we yield to it
	at     time.Time // when the verdict was reached
}

// claimantLocked returns the member id if it is live and claims name (this peer included),
// else nil.
func (p *Peer) claimantLocked(id, name string) *Member {
	if id == p.id {
		if p.self.Name != name {
			return nil
		}
		return &Member{ID: p.id, State: MemberAlive, Meta: p.self}
	}
	m := p.members[id]
	if m == nil || m.Meta.Name != name || (m.State != MemberAlive && m.State != MemberSuspect) {
		return nil
	}
	return m
}

// reservedOwnerLocked decides who has a name that r, a failed peer in its grace period,
// reserves: r, or one of claims, the live claims of the name (first the one that ranks first).
// SPEC section 7, "Names are bound to identities": a reserved name can be taken only by the
// same identity.
//
//   - A reservation never takes a name from a live holder: not from this peer, and not from
//     the peer that owns it in this view already (a reservation learnt later, such as one
//     forged into push/pull state, or a holder that came back).
//   - A live claimant of r's identity (its restarted session) takes the name at once, once it
//     has proven itself a live peer of that identity (mayYieldLocked): the first such claim
//     that is proven, whatever other identities claim.
//   - A claimant of any other identity waits for the grace period to end, whatever claim time
//     it announces. (Two sides of a partition that merge with the name held on one side by a
//     peer that has failed since: the other side's holder has it once the grace has passed.)
func (p *Peer) reservedOwnerLocked(r, first *Member, claims []*Member, now time.Time) *Member {
	if first != nil && (first.ID == p.id || p.owners[r.Meta.Name] == first.ID) {
		return first
	}
	var kin []*Member
	for _, c := range claims {
		if sameIdentity(r.ID, c.ID) {
			kin = append(kin, c)
		}
	}
	slices.SortFunc(kin, func(a, b *Member) int {
		if a.claimsBefore(b) {
			return -1
		}
		return 1
	})
	for _, c := range kin {
		if c.ID == p.id || p.mayYieldLocked(r, c, now) {
			return c
		}
	}
	for _, c := range claims {
		if key := [2]string{c.ID, r.Meta.Name}; c.ID != p.id && !sameIdentity(r.ID, c.ID) && !p.refusedReserved[key] {
			if p.refusedReserved == nil || len(p.refusedReserved) >= 1024 {
				p.refusedReserved = make(map[[2]string]bool) // bounded; a claim counted again is harmless
			}
			p.refusedReserved[key] = true
			p.stats.RefusedClaims++
			p.log.Warn("refusing a claim of a name reserved for a failed peer of another identity (only its own identity may take it during the grace period)",
				"name", r.Meta.Name, "reserved_for", r.ID, "claimant", c.ID)
		}
	}
	return r
}

// sameIdentity reports whether peer ids a and b are bound to one identity (keys.NewPeerID).
func sameIdentity(a, b string) bool {
	fa, ok := keys.PeerIDFingerprint(a)
	fb, ok2 := keys.PeerIDFingerprint(b)
	return ok && ok2 && fa == fb
}

// mayYieldLocked reports whether the name that cur holds (in this peer's view) may go to w,
// whose claim ranks first (SPEC section 7, "Names are bound to identities"). It may not when
// w's claim time is earlier than cur's although w was unknown here when cur claimed (an
// insider announcing a claim time of 1 ms: a time that cannot have been observed), nor until
// ConfirmClaim has proven w a live peer of its identity (replayed gossip of a departed peer
// cannot answer). The proof is asked in the background (again after claimRecheck if it
// failed); its answer recomputes the owners. Every peer applies it, to every name, so the
// holder and the others keep the same owner while a claim is unproven.
//
// The price: two partitions that each gave one name to a different peer, and then merge, keep
// each side's holder (in each side's view) until one of them releases it.
func (p *Peer) mayYieldLocked(cur, w *Member, now time.Time) bool {
	if w == nil || w.ID == cur.ID {
		return true
	}
	ours := cur.ID == p.id
	v := p.claimants[w.ID]
	if w.Meta.ClaimedAt < cur.Meta.ClaimedAt {
		if seen, ok := p.firstSeen[w.ID]; ok && seen.UnixMilli() > cur.Meta.ClaimedAt+maxClaimClockSkew.Milliseconds() {
			if v == nil {
				p.claimants[w.ID] = &claimVerdict{at: now}
				p.stats.RefusedClaims++
				p.log.Warn("refusing a claim time that cannot have been observed: the claimant was not in the mesh when the holder claimed the name",
					"name", cur.Meta.Name, "holder", cur.ID, "ours", ours, "claimant", w.ID,
					"claimed_at", time.UnixMilli(w.Meta.ClaimedAt).UTC(), "first_seen", seen.UTC())
			}
			return false
		}
	}
	if p.cfg.ConfirmClaim == nil {
		return true
	}
	switch {
	case v != nil && v.asking:
		return false
	case v != nil && (v.ok || now.Sub(v.at) < claimRecheck):
		return v.ok
	}
	select {
	case <-p.stop:
		return false // closing: keep what we have
	default:
	}
	p.claimants[w.ID] = &claimVerdict{asking: true}
	m := *w
	p.wg.Add(1)
	go p.confirmClaimant(m, cur.Meta.Name)
	return false
}

// confirmClaimant asks ConfirmClaim about m, a claimant of name, and recomputes the owners
// with its answer.
func (p *Peer) confirmClaimant(m Member, name string) {
	defer p.wg.Done()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	go func() {
		select {
		case <-p.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	ok := p.cfg.ConfirmClaim(ctx, m)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.claimants[m.ID] = &claimVerdict{ok: ok, at: p.now()}
	if !ok {
		p.stats.RefusedClaims++
		p.log.Warn("refusing a claim: the claimant could not prove it is a live peer of its identity (replayed gossip of a peer that is gone?)",
			"name", name, "claimant", m.ID)
	}
	p.recomputeLocked(p.now())
}
