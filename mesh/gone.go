package mesh

// Peers proved stopped by Config.Gone (same machine: the run dir), failed at once.

import "time"

// checkGone asks Config.Gone about every live member of this host and fails those it names. The answers
// are read without p.mu (Gone reads files); a member that changed meanwhile is judged by its
// state when the answer comes. Callers serialise it (the discovery goroutine, and Discover
// under discoverMu), as Config.Gone's contract requires.
func (p *Peer) checkGone() { p.checkGoneOf(nil) }

// checkGoneOf is checkGone for the members among only alone (nil: every member), serialised
// the same way.
func (p *Peer) checkGoneOf(only []string) {
	if p.cfg.Gone == nil {
		return
	}
	// Peers of other hosts (a LAN mesh) have no entry here: not asked, so that a secure
	// peer's round (every 500 ms) does not look up each of them. The host is only this
	// filter, never the proof.
	ask := func(id string, m *Member) bool {
		return id != p.id && (m.State == MemberAlive || m.State == MemberSuspect) && m.Meta.Host == p.self.Host
	}
	p.mu.Lock()
	var ids []string
	if only == nil {
		ids = make([]string, 0, len(p.members))
		for id, m := range p.members {
			if ask(id, m) {
				ids = append(ids, id)
			}
		}
	} else {
		for _, id := range only {
			if m := p.members[id]; m != nil && ask(id, m) {
				ids = append(ids, id)
			}
		}
	}
	p.mu.Unlock()
	var gone []string
	for _, id := range ids {
		if p.cfg.Gone(id) {
			gone = append(gone, id)
		}
	}
	if len(gone) == 0 {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	for _, id := range gone {
		p.failGoneLocked(id, now)
	}
	p.recomputeLocked(now)
}

// failGoneLocked marks member id, proved stopped, as failed now, for good: from here on
// memberlist's word that it is alive (it learns of the death later, by probing) changes
// nothing (delegate.update, NotifyLeave), so the name's grace period runs from now.
func (p *Peer) failGoneLocked(id string, now time.Time) {
	p.gone.Add(id, struct{}{})
	m := p.members[id]
	if m == nil || m.State == MemberDead || m.State == MemberLeft {
		return
	}
	m.State, m.Since = MemberDead, now
	p.log.Info("peer stopped (its run-dir entry is no longer held); failed at once", "peer", id)
	p.emitLocked(Event{Type: EventPeerFailed, PeerID: id})
}
