package mesh

// Joining what discovery finds.

import (
	"math/rand/v2"
	"time"
)

// discoverLoop joins whatever discovery finds that we do not know yet.
func (p *Peer) discoverLoop() {
	defer p.wg.Done()
	t := time.NewTicker(p.cfg.DiscoverInterval)
	defer t.Stop()
	wake := p.cfg.DiscoverWake
	var soon <-chan time.Time     // a round after a wake, once armed
	var goneSoon <-chan time.Time // a deferred checkGone, once armed
	var staleSoon *time.Timer     // the next look at run-dir names our view lacks (pullStale)
	var staleC <-chan time.Time
	defer func() {
		if staleSoon != nil {
			staleSoon.Stop()
		}
	}()
	stale := func(wait time.Duration) {
		if wait <= 0 {
			return
		}
		if staleSoon == nil {
			staleSoon = time.NewTimer(wait)
		} else {
			staleSoon.Reset(wait)
		}
		staleC = staleSoon.C
	}
	var lastGone time.Time
	gone := func() {
		p.discoverMu.Lock()
		p.checkGone()
		p.discoverMu.Unlock()
		lastGone = time.Now()
	}
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
			stale(p.discover(true))
		case wait := <-p.recheck:
			stale(wait)
		case <-staleC:
			staleC = nil
			p.discoverMu.Lock()
			wait := p.pullStale()
			p.discoverMu.Unlock()
			stale(wait)
		case _, ok := <-wake:
			if !ok {
				wake = nil // the watch ended: the timer alone from now on
				continue
			}
			// A peer of this machine that died is failed at once (its name is reserved, and
			// a restarted session can take it back); joining waits for the round.
			var ids []string
			all := p.cfg.WakeGone == nil
			if !all {
				ids, all = p.cfg.WakeGone()
			}
			if !all {
				if len(ids) > 0 {
					p.discoverMu.Lock()
					p.checkGoneOf(ids)
					p.discoverMu.Unlock()
				}
			} else {
				switch wait := goneEvery - time.Since(lastGone); {
				case goneSoon != nil: // armed already
				case wait <= 0:
					gone()
				default:
					goneSoon = time.After(wait)
				}
			}
			if soon == nil {
				soon = time.After(wakeDelay())
			}
		case <-goneSoon:
			goneSoon = nil
			gone()
		case <-soon:
			soon = nil
			// With WakeGone the wakes checked the peers that may have stopped already: this
			// round joins and pulls, and the timer's rounds check every member.
			stale(p.discover(p.cfg.WakeGone == nil))
		}
	}
}

// goneEvery spaces out the checks of every member a wake triggers without Config.WakeGone
// (Config.Gone, a few file operations per member): 50 sessions starting together woke each
// peer about a hundred times, and checking every member on each wake was a tenth of their
// CPU. A death is still seen within goneEvery.
const goneEvery = 200 * time.Millisecond

// wakeDelay is how long a round waits after a wake: 0.5-1 s, at random. A new peer joins the
// ones it finds itself, and gossip tells the rest within about a second; had every peer joined
// it at once on the wake, 20 peers starting together would make 190 joins (each a push/pull of
// the whole state) where gossip needs none. The round is a heal, as the timer's was.
func wakeDelay() time.Duration {
	return 500*time.Millisecond + rand.N(500*time.Millisecond)
}

// Discover runs one discovery round now: it asks Config.Discover for
// addresses and joins those of peers not known yet, then fails the peers
// Config.Gone proves stopped and pulls from those whose run-dir name
// (Config.Names) our view does not show. New does not discover by
// itself before its first DiscoverInterval; a caller that wants to see the
// mesh at once (to check a name before claiming it) calls Discover after New.
func (p *Peer) Discover() {
	if wait := p.discover(true); wait > 0 {
		select { // discoverLoop looks again when the wait ends
		case p.recheck <- wait:
		default:
		}
	}
}

// discover is Discover, which asks Config.Gone about every member only with checkAll. It
// returns how long until a name seen in the run dir and not in our view is due for a pull
// (pullStale), 0 for none.
func (p *Peer) discover(checkAll bool) time.Duration {
	if p.cfg.Discover == nil {
		return 0
	}
	p.discoverMu.Lock()
	defer p.discoverMu.Unlock()
	now := time.Now()
	for _, addr := range p.cfg.Discover() {
		// Asked again before each join: a join is a push/pull of the whole state, so the first
		// one usually teaches us every other address found (20 peers starting together each
		// spent up to a second in sequential joins of peers they already knew; issue 18).
		p.mu.Lock()
		known := addr == p.addr || p.knowsAddrLocked(addr)
		b := p.failing[addr]
		p.mu.Unlock()
		if known {
			continue
		}
		if b != nil && now.Before(b.next) {
			continue // failed recently: a dead address must not stall every round
		}
		select {
		case <-p.stop:
			return 0
		default:
		}
		_, err := p.ml.Join([]string{addr})
		p.mu.Lock()
		if err != nil {
			p.stats.JoinFailures++
			if b == nil {
				b = &backoff{wait: time.Second}
				p.failing[addr] = b
			} else {
				b.wait = min(2*b.wait, 30*time.Second)
			}
			b.next = time.Now().Add(b.wait)
			if len(p.failing) > 1024 { // addresses come and go; forget old failures
				clear(p.failing)
			}
		} else {
			delete(p.failing, addr)
		}
		p.mu.Unlock()
		switch {
		case err != nil && b.wait == time.Second:
			p.log.Warn("cannot reach peer; will keep trying", "addr", addr, "err", err)
		case err == nil && b != nil:
			p.log.Info("reached peer", "addr", addr)
		}
	}
	// After the joins, which taught us the members: a peer that starts after another died
	// (its restarted session) must not take the dead one for alive, as memberlist still does.
	if checkAll {
		p.checkGone()
	}
	return p.pullStale()
}

// pullStale pulls, with a push/pull, from each live peer whose run-dir entry (Config.Names)
// has named another name than our view shows it holding for staleAfter: gossip lost its claim
// on the way here. At 20 sessions starting together that happened in about 1 run of 10, and
// the name then reached the peer that missed it only with the next periodic push/pull, 10-18
// s later (issue 18). A claim is in the entry as soon as its session has made it, and its
// rewrite wakes every peer of the machine (DiscoverWake), before gossip can have brought the
// claim: pulled at once, 50 sessions starting together made 250 pulls of the whole state
// where gossip brought every claim within the second (half of their push/pulls; issue 18).
// It returns how long until the next mismatch seen is due (0: none waits), for the caller to
// look again then (discoverLoop). Called with discoverMu held.
func (p *Peer) pullStale() time.Duration {
	if p.cfg.Names == nil {
		return 0
	}
	now := time.Now()
	var addrs []string
	var next time.Duration
	names := p.cfg.Names()
	for id := range p.stale {
		if _, ok := names[id]; !ok {
			delete(p.stale, id)
		}
	}
	for id, name := range names {
		p.mu.Lock()
		m := p.members[id]
		mismatch := id != p.id && m != nil && m.State == MemberAlive && !m.Meta.Leaving && m.Meta.Name != name && m.Addr != ""
		addr := ""
		if m != nil {
			addr = m.Addr
		}
		p.mu.Unlock()
		if !mismatch {
			delete(p.stale, id)
			continue
		}
		st, ok := p.stale[id]
		if !ok || st.name != name {
			st = staleName{name: name, since: now}
		}
		if wait := st.since.Add(staleAfter).Sub(now); wait > 0 {
			p.stale[id] = st
			if next == 0 || wait < next {
				next = wait
			}
			continue
		}
		// Due: pull, and give gossip (and this pull) staleAfter again before the next.
		p.stale[id] = staleName{name: name, since: now}
		if next == 0 || staleAfter < next {
			next = staleAfter
		}
		addrs = append(addrs, addr)
	}
	for _, addr := range addrs {
		select {
		case <-p.stop:
			return 0
		default:
		}
		p.mu.Lock()
		p.stats.StalePulls++
		p.mu.Unlock()
		if _, err := p.ml.Join([]string{addr}); err != nil {
			p.log.Debug("pull a peer's state", "addr", addr, "err", err)
		} else {
			p.log.Debug("pulled the state of a peer whose claim gossip had not brought", "addr", addr)
		}
	}
	return next
}

// staleAfter is how long a peer's run-dir name may differ from the name our view shows it
// holding before pullStale pulls its state: gossip brings a claim to 50 peers of a machine in
// 0.1-0.2 s when idle, and within the second while 50 sessions start together.
const staleAfter = time.Second

// staleName is a run-dir name our view did not show its peer holding, and since when.
type staleName struct {
	name  string
	since time.Time
}

// knowsAddrLocked reports whether a live (or suspect) member has gossip address addr.
func (p *Peer) knowsAddrLocked(addr string) bool {
	for _, m := range p.members {
		if m.Addr == addr && (m.State == MemberAlive || m.State == MemberSuspect) {
			return true
		}
	}
	return false
}

// backoff spaces out join attempts to an address that failed.
type backoff struct {
	next time.Time
	wait time.Duration
}
