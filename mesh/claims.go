package mesh

// Taking, releasing and renaming this peer's name.

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/paf-mesh/paf-mesh/internal/keys"
)

// Claim makes this peer the holder of name, releasing any name it held
// before (without forwarding: use Rename for that). It fails with
// ErrNameTaken, naming the holder, when another live peer holds it.
//
// Two peers that claim one name at once may both succeed here; gossip then
// settles on one owner everywhere within a gossip round or two, and the
// other peer gets EventNameLost.
func (p *Peer) Claim(ctx context.Context, name string) error {
	n, err := NormalizeName(name)
	if err != nil {
		return err
	}
	p.mu.Lock()
	if p.self.Name == n {
		p.mu.Unlock()
		return nil
	}
	if err := p.takenLocked(n); err != nil {
		p.mu.Unlock()
		return err
	}
	now := p.now()
	p.self.Name, p.self.ClaimedAt = n, now.UnixMilli()
	var bcast []Forward
	if f, ok := p.forwards[n]; ok && f.To != "" {
		// The name is in use again: its old forward would steal its mail.
		bcast = append(bcast, p.tombstoneLocked(n, now))
	}
	p.recomputeLocked(now)
	p.mu.Unlock()
	p.broadcastForwards(bcast)
	err = p.announce(ctx)
	p.spreadClaim()
	return err
}

// ClaimWhenReleased is Claim for a peer that starts under a name a process
// that just stopped may still hold: a session restarted after a crash. When
// the holder has failed (the name is in its grace period), is suspected of
// failing, or is alive in the mesh's view but does not answer a ping, it
// waits for the mesh to release the name and claims it then. It fails at
// once, as Claim does, when a holder that answers has the name, and with the
// last NameTakenError when ctx ends first: bound ctx by what the caller can
// wait (a crashed holder is released within a few seconds: failure detection
// and NameGrace).
func (p *Peer) ClaimWhenReleased(ctx context.Context, name string) error {
	waiting := false
	for {
		err := p.Claim(ctx, name)
		var nte *NameTakenError
		if !errors.As(err, &nte) {
			return err
		}
		if nte.State == MemberAlive {
			if p.answers(nte.Holder) {
				return err
			}
			nte.Silent = true
		}
		if !waiting {
			waiting = true
			p.log.Warn("name held by a peer that is not answering; waiting for the mesh to release it",
				"name", nte.Name, "holder", nte.Holder, "state", nte.State.String(), "within", nte.releasedWithin.Round(time.Second))
		}
		wait := 100 * time.Millisecond
		if nte.ReleasedIn > 0 {
			wait = min(max(nte.ReleasedIn, wait), time.Second)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-p.stop:
			t.Stop()
			return ErrClosed
		case <-t.C:
		}
	}
}

// answers reports whether peer id answers a ping within the probe timeout.
func (p *Peer) answers(id string) bool {
	p.mu.Lock()
	m := p.members[id]
	var addr string
	if m != nil {
		addr = m.Addr
	}
	p.mu.Unlock()
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return true // nothing to ask: take the mesh's word that it is alive
	}
	_, err = p.ml.Ping(id, ua)
	return err == nil
}

// Release gives up the name this peer holds, if any.
func (p *Peer) Release(ctx context.Context) error {
	p.mu.Lock()
	if p.self.Name == "" {
		p.mu.Unlock()
		return nil
	}
	p.self.Name, p.self.ClaimedAt = "", 0
	p.recomputeLocked(p.now())
	p.mu.Unlock()
	return p.announce(ctx)
}

// Rename moves this peer's name to newName; the old name forwards to the new
// one for Config.ForwardTTL.
func (p *Peer) Rename(ctx context.Context, newName string) error {
	n, err := NormalizeName(newName)
	if err != nil {
		return err
	}
	p.mu.Lock()
	old := p.self.Name
	switch {
	case old == "":
		p.mu.Unlock()
		return fmt.Errorf("mesh: rename to %q: %w; claim a name first", n, ErrNoName)
	case old == n:
		p.mu.Unlock()
		return nil
	}
	if err := p.takenLocked(n); err != nil {
		p.mu.Unlock()
		return err
	}
	now := p.now()
	p.self.Name, p.self.ClaimedAt = n, now.UnixMilli()
	fwd := Forward{From: old, To: n, Expires: now.Add(p.cfg.ForwardTTL), Stamp: now.UnixNano(), Origin: p.id}
	fwd.sign(p.identity)
	bcast := []Forward{fwd}
	if f, ok := p.forwards[n]; ok && f.To != "" {
		bcast = append(bcast, p.tombstoneLocked(n, now))
	}
	p.applyForwardLocked(fwd, now)
	p.recomputeLocked(now)
	p.mu.Unlock()
	p.broadcastForwards(bcast)
	err = p.announce(ctx)
	p.spreadClaim()
	return err
}

// takenLocked returns ErrNameTaken, with the holder's details, when a peer
// other than this one holds n.
func (p *Peer) takenLocked(n string) error {
	id, ok := p.owners[n]
	if !ok || id == p.id {
		return nil
	}
	m := p.members[id]
	if m == nil || m.State == MemberDead && sameIdentity(m.ID, p.id) {
		// Free, or reserved for a failed peer of our own identity: a restarted session takes
		// its name back at once (reservationWinsLocked), without waiting for the grace.
		return nil
	}
	host := m.Meta.Host
	if host == "" {
		host = "unknown host"
	}
	e := &NameTakenError{Name: n, Holder: id, Host: host, State: m.State, releasedWithin: p.maxSuspicion() + p.cfg.NameGrace}
	if m.State == MemberDead {
		e.ReleasedIn = p.cfg.NameGrace - p.now().Sub(m.Since)
		e.failedAgo = p.now().Sub(m.Since)
	}
	return e
}

// NameTakenError says who holds a name; errors.Is(err, ErrNameTaken) holds.
type NameTakenError struct {
	Name, Holder, Host string
	State              MemberState
	// ReleasedIn is set when the holder failed and the name is only held for
	// its grace period: a claim after that succeeds.
	ReleasedIn time.Duration
	// Silent is set by [Peer.ClaimWhenReleased] when the holder, still
	// alive in the mesh's view, did not answer a ping: most likely a process
	// that just crashed, which the mesh has not noticed yet.
	Silent    bool
	failedAgo time.Duration
	// releasedWithin bounds how long a holder that is not answering (Silent,
	// or suspect) keeps the name if it has really stopped.
	releasedWithin time.Duration
}

func (e *NameTakenError) Error() string {
	switch {
	case e.State == MemberDead:
		return fmt.Sprintf("%v: %q was held by peer %s on %s, which failed %s ago; it is released in %s, try again then",
			ErrNameTaken, e.Name, e.Holder, e.Host, e.failedAgo.Round(time.Second), e.ReleasedIn.Round(100*time.Millisecond))
	case e.Silent || e.State == MemberSuspect:
		return fmt.Sprintf("%v: %q is held by peer %s on %s, which is not answering; if it has stopped, the name is released within about %s: try again then, or choose another name",
			ErrNameTaken, e.Name, e.Holder, e.Host, e.releasedWithin.Round(time.Second))
	}
	return fmt.Sprintf("%v: %q is held by peer %s on %s (%s); choose another name", ErrNameTaken, e.Name, e.Holder, e.Host, e.State)
}

func (e *NameTakenError) Unwrap() error { return ErrNameTaken }

// tombstoneLocked cancels the forward from name and returns the tombstone to
// broadcast.
func (p *Peer) tombstoneLocked(name string, now time.Time) Forward {
	exp := now.Add(p.cfg.ForwardTTL)
	if f, ok := p.forwards[name]; ok && f.Expires.After(exp) {
		exp = f.Expires
	}
	t := Forward{From: name, Expires: exp, Stamp: now.UnixNano(), Origin: p.id}
	t.sign(p.identity)
	p.applyForwardLocked(t, now)
	return t
}

// maxForwardSkew is how far ahead of this peer's clock a forward's stamp may be: clocks
// differ, but a stamp far in the future would win over every later entry for its name.
const maxForwardSkew = 2 * time.Minute

// checkForwardLocked decides whether a forward from another peer, whose signature has been
// checked already (Forward.verify, which gave fp), may be applied: its stamp no more than
// maxForwardSkew ahead of this peer's clock and its expiry no further than ForwardTTL (plus
// that skew) away, so that no entry can outlive or out-rank the ones written after it; and it
// must not be about a name that a peer of another identity holds now, for only the name's
// holder renames it (a forward) or cancels its forwards (a tombstone, when it claims it
// again).
func (p *Peer) checkForwardLocked(f Forward, fp string, now time.Time) error {
	if f.Stamp > now.Add(maxForwardSkew).UnixNano() {
		return fmt.Errorf("mesh: forward for %q stamped %v ahead of this peer's clock", f.From, time.Duration(f.Stamp-now.UnixNano()).Round(time.Second))
	}
	if f.Expires.After(now.Add(p.cfg.ForwardTTL + maxForwardSkew)) {
		return fmt.Errorf("mesh: forward for %q expires in %v, more than the %v a forward lasts", f.From, f.Expires.Sub(now).Round(time.Second), p.cfg.ForwardTTL)
	}
	if owner, ok := p.owners[f.From]; ok {
		if ofp, _ := keys.PeerIDFingerprint(owner); ofp != fp {
			return fmt.Errorf("mesh: forward for %q by identity %s, but a peer of identity %s holds it", f.From, fp, ofp)
		}
	}
	return nil
}

// applyRemoteForwards applies forwards from another peer (a broadcast, or push/pull state):
// each must verify (Forward.verify) and pass checkForwardLocked. Signatures are checked
// without p.mu held, and only for entries that would change the table: a push/pull repeats
// the whole table every interval, and re-checking what is already here would cost an idle
// peer a signature check per forward per interval. Refusals are counted, and logged once per
// call. It returns the entries applied.
func (p *Peer) applyRemoteForwards(fs []Forward) []Forward {
	p.mu.Lock()
	now := p.now()
	fresh := make([]Forward, 0, len(fs))
	for _, f := range fs {
		if cur, ok := p.forwards[f.From]; (ok && !f.newer(cur)) || !f.Expires.After(now) {
			continue // nothing new: the table would not change
		}
		fresh = append(fresh, f)
	}
	p.mu.Unlock()
	fps := make([]string, len(fresh))
	errs := make([]error, len(fresh))
	for i := range fresh {
		fps[i], errs[i] = fresh[i].verify()
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	now = p.now()
	var applied []Forward
	var refused int
	var firstErr error
	for i, f := range fresh {
		err := errs[i]
		if err == nil {
			err = p.checkForwardLocked(f, fps[i], now)
		}
		if err != nil {
			refused++
			firstErr = cmp.Or(firstErr, err)
			continue
		}
		if p.applyForwardLocked(f, now) {
			applied = append(applied, f)
		}
	}
	if refused > 0 {
		p.stats.RejectedForwards += uint64(refused)
		p.log.Warn("refusing forwards from another peer", "count", refused, "first_err", firstErr)
	}
	if len(applied) > 0 {
		p.recomputeLocked(now)
	}
	return applied
}

// applyForwardLocked merges f into the table and emits the matching event.
func (p *Peer) applyForwardLocked(f Forward, now time.Time) bool {
	if !p.forwards.apply(f, now) {
		return false
	}
	p.dirty = true
	p.retickLocked()
	if f.To != "" {
		p.emitLocked(Event{Type: EventNameRenamed, PeerID: f.Origin, Name: f.From, To: f.To})
	}
	return true
}
