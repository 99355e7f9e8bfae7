package mesh

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/hashicorp/memberlist"
	"github.com/paf-mesh/paf-mesh/internal/keys"
)

var (
	// ErrNameTaken: another live peer holds the name.
	ErrNameTaken = errors.New("name taken")
	// ErrNoName: the operation needs this peer to hold a name first.
	ErrNoName = errors.New("this peer holds no name")
	// ErrClosed: the peer was closed.
	ErrClosed = errors.New("mesh: peer closed")
)

// MemberState is a peer's liveness as this peer sees it.
type MemberState int

const (
	MemberAlive MemberState = iota
	MemberSuspect
	MemberDead
	MemberLeft
)

func (s MemberState) String() string {
	switch s {
	case MemberAlive:
		return "alive"
	case MemberSuspect:
		return "suspect"
	case MemberDead:
		return "dead"
	case MemberLeft:
		return "left"
	}
	return "unknown"
}

// Member is a snapshot of one peer.
type Member struct {
	ID    string
	Addr  string // memberlist (gossip) address, host:port
	State MemberState
	Since time.Time // when State last changed
	Meta  Meta
	Self  bool
}

// holdsName reports whether m still holds its name at now: live peers do, a
// failed one for grace after it failed, a departed one not at all.
func (m *Member) holdsName(now time.Time, grace time.Duration) bool {
	switch m.State {
	case MemberAlive, MemberSuspect:
		return true
	case MemberDead:
		return now.Sub(m.Since) < grace
	}
	return false
}

// claimsBefore orders two claims of one name: the earlier claim wins, the
// lower peer id breaks ties. Every peer applies the same rule to the same
// gossiped metadata, so all agree on the owner without talking about it.
func (m *Member) claimsBefore(o *Member) bool {
	if m.Meta.ClaimedAt != o.Meta.ClaimedAt {
		return m.Meta.ClaimedAt < o.Meta.ClaimedAt
	}
	return m.ID < o.ID
}

// Stats counts things worth seeing in status.
type Stats struct {
	BadMeta       uint64 // node metadata that failed to decode
	BadBroadcasts uint64 // broadcasts and state that failed to decode
	DroppedEvents uint64 // events not delivered because a subscriber was full
	JoinFailures  uint64
	// RejectedGossip counts gossip that failed to decrypt or authenticate:
	// a peer with another secret (or none) trying to talk to this mesh.
	RejectedGossip uint64
	// RejectedForwards counts forwards (renames) from other peers that were refused: not
	// signed by their origin's identity, out of bounds, or for a name another identity holds.
	RejectedForwards uint64
	// RefusedClaims counts claims of our name that this peer did not yield to: a claim time
	// it cannot have observed, or a claimant that could not prove it is live (ConfirmClaim).
	RefusedClaims uint64
	// StalePulls counts the push/pulls of a peer whose run-dir name our view had not shown
	// for a second: a claim gossip lost on its way here (pullStale).
	StalePulls uint64
}

// Peer is one member of the mesh. Its methods are safe for concurrent use.
type Peer struct {
	cfg      Config
	log      *slog.Logger
	id       string
	identity *keys.Identity
	addr     string // our gossip address, fixed once bound
	live     atomic.Int32
	ml       *memberlist.Memberlist
	queue    *memberlist.TransmitLimitedQueue
	now      func() time.Time

	// announceMu serialises our metadata updates, Close's leaving one
	// included: memberlist's UpdateNode reads our node's state outside its
	// lock and must not run twice at once.
	announceMu sync.Mutex
	// beforeUpdate, when set (tests only), runs before every UpdateNode.
	beforeUpdate func()

	mu       sync.Mutex
	self     Meta
	members  map[string]*Member
	owners   map[string]string // name -> peer id
	forwards forwardTable
	dirty    bool // forwards changed since last persisted
	subs     map[chan<- Event]struct{}
	stats    Stats
	failing  map[string]*backoff // discovery addresses that failed: when to try again
	// stale: the members whose run-dir name our view did not show at the last discovery
	// round, and since when (pullStale). Guarded by discoverMu.
	stale map[string]staleName
	// recheck hands discoverLoop the wait pullStale returned to a Discover of another
	// goroutine, so that the loop looks again when it ends.
	recheck chan time.Duration
	// firstSeen is when this peer first learnt of each member; claimants, what
	// ConfirmClaim said of a member that ranked before our own claim (true:
	// proven; false: refused), and nil entries while it is being asked.
	firstSeen map[string]time.Time
	claimants map[string]*claimVerdict
	// refusedReserved: claims of another identity refused against a reservation, counted
	// once each (claimant id and name).
	refusedReserved map[[2]string]bool
	// departed remembers the ids of peers that said goodbye, past Retain, so that replayed
	// gossip of one does not bring it back (delegate.update).
	departed *lru.Cache[string, struct{}]
	// gone remembers the ids of peers that Config.Gone proved stopped (gone.go): failed for
	// good in this peer's view, whatever memberlist still says of them.
	gone *lru.Cache[string, struct{}]
	// insider: never give our name up (tests only, ForceClaim: a peer whose code an attacker
	// changed).
	insider bool

	discoverMu sync.Mutex // one discovery round at a time

	kick      chan struct{} // wake the loop to re-announce our metadata
	retick    chan struct{} // wake the loop to tick often again (retickLocked)
	burst     chan struct{} // news for burstLoop; nil when memberlist's own pace is as fast
	burstStop chan struct{} // closed by Close once our goodbye is out
	burstWG   sync.WaitGroup
	stop      chan struct{}
	wg        sync.WaitGroup
	closeOnce sync.Once
	closeErr  error
}

// New starts a peer: it binds memberlist's listeners and begins gossiping,
// alone until it joins others (through Config.Discover or Join).
func New(cfg *Config) (*Peer, error) {
	c := cfg.withDefaults()
	ml := c.Memberlist
	p := &Peer{
		cfg:       c,
		log:       c.Logger.With("peer", c.ID),
		id:        c.ID,
		identity:  c.Identity,
		now:       time.Now,
		members:   make(map[string]*Member),
		owners:    make(map[string]string),
		forwards:  make(forwardTable),
		subs:      make(map[chan<- Event]struct{}),
		failing:   make(map[string]*backoff),
		stale:     make(map[string]staleName),
		recheck:   make(chan time.Duration, 1),
		firstSeen: make(map[string]time.Time),
		claimants: make(map[string]*claimVerdict),
		kick:      make(chan struct{}, 1),
		retick:    make(chan struct{}, 1),
		burstStop: make(chan struct{}),
		stop:      make(chan struct{}),
	}
	if c.BurstGossip < ml.GossipInterval {
		p.burst = make(chan struct{}, 1)
	}
	p.departed, _ = lru.New[string, struct{}](maxDeparted) // fails only for a size <= 0
	p.gone, _ = lru.New[string, struct{}](maxDeparted)
	p.self = c.Meta.clone()
	p.self.Name, p.self.ClaimedAt, p.self.Leaving = "", 0, false
	if err := p.self.check(); err != nil {
		return nil, fmt.Errorf("mesh: Config.Meta: %w", err)
	}
	if err := p.loadForwards(); err != nil {
		// A damaged file costs us only our copy: the mesh has the rest.
		p.log.Warn("ignoring unreadable forwarding state", "err", err)
	}

	d := &delegate{p: p}
	ml.Name = c.ID
	ml.Delegate = d
	ml.Events = d
	ml.LogOutput = nil
	ml.Logger = newMemberlistLogger(p.log, p.observeLog)
	p.queue = &memberlist.TransmitLimitedQueue{
		NumNodes:       p.numLive,
		RetransmitMult: ml.RetransmitMult,
	}
	unguard, err := guardTransport(ml, p.log) // Security I #3: see guard.go
	if err != nil {
		return nil, fmt.Errorf("mesh: start gossip on %s: %w", net.JoinHostPort(ml.BindAddr, strconv.Itoa(ml.BindPort)), err)
	}
	list, err := memberlist.Create(ml)
	if err != nil {
		unguard()
		return nil, fmt.Errorf("mesh: start gossip on %s: %w", net.JoinHostPort(ml.BindAddr, strconv.Itoa(ml.BindPort)), err)
	}
	p.ml = list
	n := list.LocalNode()
	p.addr = net.JoinHostPort(n.Addr.String(), strconv.Itoa(int(n.Port)))

	p.wg.Add(1)
	go p.loop()
	if p.burst != nil {
		p.burstWG.Add(1)
		go p.burstLoop()
	}
	if c.Discover != nil {
		p.wg.Add(1)
		go p.discoverLoop()
	}
	return p, nil
}

// ID is this peer's id.
func (p *Peer) ID() string { return p.id }

// Identity is the identity this peer's id is bound to.
func (p *Peer) Identity() *keys.Identity { return p.identity }

// Addr is this peer's gossip address (host:port), what others join.
func (p *Peer) Addr() string { return p.addr }

// Join contacts the given addresses and merges their view of the mesh. It
// returns how many answered; an error only when none did.
func (p *Peer) Join(addrs ...string) (int, error) {
	if len(addrs) == 0 {
		return 0, nil
	}
	n, err := p.ml.Join(addrs)
	if err != nil {
		p.mu.Lock()
		p.stats.JoinFailures++
		p.mu.Unlock()
		return n, fmt.Errorf("mesh: join %v: %w", addrs, err)
	}
	return n, nil
}

// Close leaves the mesh gracefully (others see it at once, not after a
// failure timeout), stops gossip and waits for the peer's goroutines. It is
// idempotent.
func (p *Peer) Close() error {
	p.closeOnce.Do(func() {
		// Under mu: goroutines are started under mu only while stop is open, so none is
		// added once Wait may have begun.
		p.mu.Lock()
		close(p.stop)
		p.mu.Unlock()
		p.wg.Wait()
		p.mu.Lock()
		p.self.Leaving = true
		p.mu.Unlock()
		// Under announceMu to the end: an announce already past its check of stop
		// (a relay's held count, presence) may still be in UpdateNode, and
		// memberlist's UpdateNode, Leave and Shutdown must not run beside it.
		// announce checks stop again once it holds the lock.
		p.announceMu.Lock()
		defer p.announceMu.Unlock()
		p.news()
		if err := p.updateNode(500 * time.Millisecond); err != nil {
			p.log.Debug("announce leaving", "err", err)
		}
		p.news()
		if err := p.ml.Leave(time.Second); err != nil {
			p.log.Debug("leave", "err", err)
		}
		close(p.burstStop)
		p.burstWG.Wait()
		p.closeErr = p.ml.Shutdown()
		p.mu.Lock()
		snap := p.snapshotLocked()
		p.mu.Unlock()
		p.persist(snap)
	})
	return p.closeErr
}

// Subscribe delivers events to ch until the returned cancel is called. Events
// are sent without blocking the gossip loop: when ch is full the event is
// dropped and counted in Stats.DroppedEvents, so size ch for bursts (a few
// hundred) and use Members/Owner to resynchronise after a drop.
func (p *Peer) Subscribe(ch chan<- Event) (cancel func()) {
	p.mu.Lock()
	p.subs[ch] = struct{}{}
	p.mu.Unlock()
	return func() {
		p.mu.Lock()
		delete(p.subs, ch)
		p.mu.Unlock()
	}
}

func (p *Peer) emitLocked(evs ...Event) {
	if len(evs) > 0 {
		p.retickLocked()
	}
	for _, e := range evs {
		p.log.Debug("event", "event", e.String())
		for ch := range p.subs {
			select {
			case ch <- e:
			default:
				p.stats.DroppedEvents++
			}
		}
	}
}

// Stats returns counters since start.
func (p *Peer) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stats
}

// Self returns this peer as a member.
func (p *Peer) Self() Member {
	p.mu.Lock()
	defer p.mu.Unlock()
	return Member{ID: p.id, Addr: p.addr, State: MemberAlive, Meta: p.self, Self: true}
}

// Name is the name this peer holds, "" for none.
func (p *Peer) Name() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.self.Name
}

// Members returns every peer known, including failed and departed ones still
// retained, sorted by name and then id.
func (p *Peer) Members() []Member {
	p.mu.Lock()
	out := make([]Member, 0, len(p.members))
	for _, m := range p.members {
		c := *m
		if c.ID == p.id {
			c.Meta, c.Self = p.self, true
		}
		out = append(out, c)
	}
	p.mu.Unlock()
	sort.Slice(out, func(i, j int) bool {
		if out[i].Meta.Name != out[j].Meta.Name {
			return out[i].Meta.Name < out[j].Meta.Name
		}
		return out[i].ID < out[j].ID
	})
	return out
}

// Member returns the peer with the given id.
func (p *Peer) Member(id string) (Member, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	m, ok := p.members[id]
	if !ok {
		return Member{}, false
	}
	c := *m
	if c.ID == p.id {
		c.Meta, c.Self = p.self, true
	}
	return c, true
}

// Owner returns the peer holding name, if any.
func (p *Peer) Owner(name string) (Member, bool) {
	p.mu.Lock()
	id, ok := p.owners[name]
	p.mu.Unlock()
	if !ok {
		return Member{}, false
	}
	return p.Member(id)
}

// Forwards returns the forwards in force, sorted by the old name.
func (p *Peer) Forwards() []Forward {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.forwards.live()
}

// maxForwardHops bounds how far Resolve follows a -> b -> c renames.
const maxForwardHops = 8

// Route is where a message for a name should go.
type Route struct {
	Name   string   // the name to deliver to, after following forwards
	Via    []string // the forwarded names passed through, oldest first; empty if direct
	Owner  Member   // valid when Online
	Online bool     // a live peer holds Name
}

// Resolve finds where a message for name goes: to its owner when one is
// online; otherwise along forwards (a live owner always beats a forward);
// otherwise nowhere yet (Online false), for store-and-forward to keep.
func (p *Peer) Resolve(name string) (Route, error) {
	n, err := NormalizeName(name)
	if err != nil {
		return Route{}, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	r := Route{Name: n}
	seen := map[string]bool{}
	for hop := 0; ; hop++ {
		if id, ok := p.owners[r.Name]; ok {
			if m := p.members[id]; m != nil && (m.State == MemberAlive || m.State == MemberSuspect) {
				r.Owner, r.Online = *m, true
				if id == p.id {
					r.Owner.Meta, r.Owner.Self = p.self, true
				}
			}
			return r, nil
		}
		f, ok := p.forwards[r.Name]
		if !ok || f.To == "" || seen[f.To] || hop >= maxForwardHops || !f.Expires.After(p.now()) {
			return r, nil
		}
		seen[r.Name] = true
		r.Via = append(r.Via, r.Name)
		r.Name = f.To
	}
}

// SetMeta changes what this peer announces: its tags (the upper layers'
// relay address, presence, description...) and its own fields. update gets
// a copy to modify, Tags included; it runs with the peer's lock held, so it
// must not call the Peer. Name, ClaimedAt and Leaving are kept: names change
// only through Claim, Rename and Release. It fails, changing nothing, with
// ErrInvalidTag for a bad tag and with ErrMetaTooLarge when the metadata
// does not fit the cap after the shortening Meta.Shorten allows.
func (p *Peer) SetMeta(ctx context.Context, update func(*Meta)) error {
	p.mu.Lock()
	m := p.self.clone()
	update(&m)
	m.Name, m.ClaimedAt, m.Leaving = p.self.Name, p.self.ClaimedAt, p.self.Leaving
	if err := m.check(); err != nil {
		p.mu.Unlock()
		return err
	}
	changed := !m.equal(p.self)
	p.self = m
	p.mu.Unlock()
	if !changed {
		return nil
	}
	// Presence (activity, focus) needs no wait for the gossip to leave:
	// the caller goes on, and a claim waiting behind it is not delayed.
	ctx, cancel := context.WithTimeout(ctx, time.Millisecond)
	defer cancel()
	if err := p.announce(ctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return nil
}

// announce re-advertises our metadata and waits (bounded by ctx and
// Config.AnnounceWait) for the update to have been gossiped, so a claim is on
// its way to the mesh when Claim returns.
func (p *Peer) announce(ctx context.Context) error {
	p.announceMu.Lock()
	defer p.announceMu.Unlock()
	select {
	case <-p.stop: // checked under announceMu: Close announces leaving under it
		return ErrClosed
	default:
	}
	timeout := p.cfg.AnnounceWait
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < timeout {
		timeout = max(time.Until(dl), time.Millisecond)
	}
	p.news()
	if err := p.updateNode(timeout); err != nil {
		// The update is queued either way; a timeout only means no peer has
		// acknowledged it yet (for example, we are alone).
		p.log.Debug("metadata update not yet gossiped", "err", err)
	}
	return ctx.Err()
}

// updateNode has memberlist announce our metadata and waits up to timeout
// for it to be gossiped. The caller holds announceMu.
func (p *Peer) updateNode(timeout time.Duration) error {
	if p.beforeUpdate != nil {
		p.beforeUpdate()
	}
	return p.ml.UpdateNode(timeout)
}

// broadcastForwards queues forwards for gossip to every peer.
func (p *Peer) broadcastForwards(fs []Forward) {
	for _, f := range fs {
		if b, err := encodeBroadcast(msgForward, f); err == nil {
			p.queue.QueueBroadcast(&forwardBroadcast{from: f.From, msg: b})
			p.news()
		}
	}
}

// numLive is the node count the broadcast queue scales retransmits by.
// It must not call memberlist: the queue is read from inside memberlist.
func (p *Peer) numLive() int {
	return int(p.live.Load())
}

// recomputeLocked derives name owners from member metadata, emits the
// changes, and gives up our own name if we lost a concurrent claim.
func (p *Peer) recomputeLocked(now time.Time) {
	// The earliest claim wins. Live claims and the reservations of failed
	// peers are ranked apart, so that a name this peer holds is not given up
	// to a reservation learnt after the claim (it lapses within the grace
	// period, and then the others agree that the name is ours).
	best := make(map[string]*Member)
	reserved := make(map[string]*Member)
	claims := make(map[string][]*Member) // live claims by name
	for _, m := range p.members {
		c := m
		if m.ID == p.id {
			c = &Member{ID: p.id, State: MemberAlive, Meta: p.self}
		}
		if c.Meta.Name == "" || !c.holdsName(now, p.cfg.NameGrace) {
			continue
		}
		into := best
		if c.State == MemberDead {
			into = reserved
		} else {
			claims[c.Meta.Name] = append(claims[c.Meta.Name], c)
		}
		if cur := into[c.Meta.Name]; cur == nil || c.claimsBefore(cur) {
			into[c.Meta.Name] = c
		}
	}
	for name, r := range reserved {
		best[name] = p.reservedOwnerLocked(r, best[name], claims[name], now)
	}
	if _, ok := p.members[p.id]; !ok && p.self.Name != "" {
		// Before memberlist has told us about ourselves.
		if cur := best[p.self.Name]; cur == nil {
			best[p.self.Name] = &Member{ID: p.id, Meta: p.self}
		}
	}
	live := 0
	for _, m := range p.members {
		if m.State == MemberAlive || m.State == MemberSuspect {
			live++
		}
	}
	p.live.Store(int32(live))
	owners := make(map[string]string, len(best))
	for name, m := range best {
		owners[name] = m.ID
	}
	for name, id := range owners {
		// An owner that is live and still claims the name keeps it, in this peer's view, until
		// the claim that now ranks first is shown to be possible and live (mayYieldLocked).
		if old, ok := p.owners[name]; ok && old != id {
			if cur := p.claimantLocked(old, name); cur != nil && !p.mayYieldLocked(cur, best[name], now) {
				owners[name] = old
			}
		}
	}
	if n := p.self.Name; n != "" && owners[n] != p.id && p.owners[n] != p.id {
		// Our claim has not been the owner here yet (made just now, or before this peer saw
		// the others): the same rule against the claim that ranks first.
		if cur := p.claimantLocked(p.id, n); cur != nil && !p.mayYieldLocked(cur, best[n], now) {
			owners[n] = p.id
		}
	}
	for name, id := range owners {
		if old, ok := p.owners[name]; !ok || old != id {
			p.emitLocked(Event{Type: EventNameClaimed, Name: name, PeerID: id})
		}
	}
	for name, id := range p.owners {
		if _, ok := owners[name]; !ok {
			p.emitLocked(Event{Type: EventNameReleased, Name: name, PeerID: id})
		}
	}
	p.owners = owners
	if n := p.self.Name; n != "" && owners[n] != p.id && !p.insider {
		winner := owners[n]
		p.log.Warn("lost a concurrent claim of our name", "name", n, "owner", winner)
		p.self.Name, p.self.ClaimedAt = "", 0
		p.emitLocked(Event{Type: EventNameLost, Name: n, PeerID: winner})
		select {
		case p.kick <- struct{}{}:
		default:
		}
	}
}

// loop runs the peer's housekeeping: name grace periods, forward expiry,
// retention, persistence, and re-announcing after a lost claim.
//
// Every tick wakes an otherwise idle process, so the loop ticks when something is due
// (nextTickLocked): a failed peer's name grace ends, a departed or failed peer's retention
// ends, a suspicion outlasts memberlist's longest; within tickBusy while forwards wait to be
// persisted; every tickIdle otherwise (forwards expire in hours). An event (a peer failing,
// a name changing hands, a forward learnt) wakes it at once to look again.
func (p *Peer) loop() {
	defer p.wg.Done()
	t := time.NewTimer(tickBusy)
	defer t.Stop()
	due := time.Now().Add(tickBusy)
	for {
		select {
		case <-p.stop:
			return
		case <-p.kick:
			if err := p.announce(context.Background()); err != nil && !errors.Is(err, ErrClosed) {
				p.log.Warn("re-announce", "err", err)
			}
		case <-p.retick:
			// Something changed: tick soon, then as the state says.
			if soon := time.Now().Add(tickBusy); soon.Before(due) {
				due = soon
				t.Reset(tickBusy)
			}
		case <-t.C:
			next := p.tick()
			due = time.Now().Add(next)
			t.Reset(next)
		}
	}
}

// How often the housekeeping loop ticks at most while forwards wait to be persisted, and at
// least (see loop).
const (
	tickBusy = 500 * time.Millisecond
	tickIdle = 10 * time.Second
)

// tickSlack is how long after a deadline the loop ticks, so that the state has passed it.
const tickSlack = 5 * time.Millisecond

// nextTickLocked says how long until the housekeeping has something to do (see loop). A
// departed peer's retention (Config.Retain, 30 s on one machine) used to keep it ticking
// every tickBusy for the whole time: 60 wake-ups of every peer after each departure, where
// two things are due (the name grace's end and the retention's).
func (p *Peer) nextTickLocked(now time.Time) time.Duration {
	next := tickIdle
	if p.dirty {
		next = tickBusy
	}
	due := func(at time.Time) {
		if d := at.Sub(now) + tickSlack; d < next {
			next = max(d, tickSlack)
		}
	}
	refuted := p.maxSuspicion()
	for _, m := range p.members {
		switch m.State {
		case MemberSuspect:
			due(m.Since.Add(refuted))
		case MemberDead:
			if m.Meta.Name != "" && now.Sub(m.Since) < p.cfg.NameGrace {
				due(m.Since.Add(p.cfg.NameGrace))
			}
			due(m.Since.Add(p.cfg.Retain))
		case MemberLeft:
			due(m.Since.Add(p.cfg.Retain))
		}
	}
	return next
}

// retickLocked wakes the housekeeping loop to tick within tickBusy, and then when due.
func (p *Peer) retickLocked() {
	select {
	case p.retick <- struct{}{}:
	default:
	}
}

// tick does the housekeeping and says when the next is due (nextTickLocked).
func (p *Peer) tick() time.Duration {
	now := p.now()
	p.mu.Lock()
	for _, f := range p.forwards.expire(now) {
		p.dirty = true
		p.emitLocked(Event{Type: EventForwardExpired, Name: f.From, To: f.To, PeerID: f.Origin})
	}
	// A suspicion ends in a death (NotifyLeave) or a refutation, which
	// memberlist reports to no delegate when the metadata is unchanged. So a
	// peer still suspect well past memberlist's longest suspicion timeout was
	// refuted: it is alive.
	refuted := p.maxSuspicion()
	for id, m := range p.members {
		if (m.State == MemberDead || m.State == MemberLeft) && now.Sub(m.Since) > p.cfg.Retain {
			delete(p.members, id)
			delete(p.firstSeen, id)
			delete(p.claimants, id)
		}
		if m.State == MemberSuspect && now.Sub(m.Since) > refuted {
			m.State, m.Since = MemberAlive, now
		}
	}
	p.recomputeLocked(now)
	snap := p.snapshotLocked()
	next := p.nextTickLocked(now)
	p.mu.Unlock()
	p.persist(snap)
	return next
}

// maxSuspicion bounds how long memberlist keeps a peer suspect before it is
// declared dead: SuspicionMaxTimeoutMult times the base timeout
// (SuspicionMult * log10(n) * ProbeInterval), plus a probe interval of slack.
func (p *Peer) maxSuspicion() time.Duration {
	ml := p.cfg.Memberlist
	n := max(float64(p.live.Load()), 10)
	base := time.Duration(float64(ml.SuspicionMult) * math.Log10(n) * float64(ml.ProbeInterval))
	return time.Duration(max(ml.SuspicionMaxTimeoutMult, 1))*base + ml.ProbeInterval
}

// observeLog picks up what memberlist only says in its logs: that our own
// probe of a peer failed (suspect).
func (p *Peer) observeLog(_ slog.Level, line string) {
	if strings.Contains(line, "no installed keys could decrypt") || strings.Contains(line, "Decrypt packet failed") ||
		strings.Contains(line, "encryption is configured but remote state is not encrypted") ||
		strings.Contains(line, "remote state is encrypted and encryption is not configured") {
		p.mu.Lock()
		p.stats.RejectedGossip++
		p.mu.Unlock()
		return
	}
	const pre, post = "Suspect ", " has failed, no acks received"
	if len(line) <= len(pre)+len(post) || line[:len(pre)] != pre || line[len(line)-len(post):] != post {
		return
	}
	id := line[len(pre) : len(line)-len(post)]
	p.mu.Lock()
	defer p.mu.Unlock()
	p.news() // memberlist gossips the suspicion
	if m := p.members[id]; m != nil && m.State == MemberAlive {
		m.State, m.Since = MemberSuspect, p.now()
		p.emitLocked(Event{Type: EventPeerSuspect, PeerID: id})
	}
}

// maxClaimClockSkew is how much earlier than its first sight here a claim may say it was made:
// gossip takes time, and clocks differ.
const maxClaimClockSkew = 2 * time.Minute

// maxDeparted bounds the ids of departed peers remembered (Peer.departed): far more than
// leave a mesh between two restarts of a long-running peer.
const maxDeparted = 16384
