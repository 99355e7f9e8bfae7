package relay

import (
	"github.com/paf-mesh/paf-mesh/internal/keys"
	"github.com/paf-mesh/paf-mesh/relay/store"
	"github.com/paf-mesh/paf-mesh/relay/wire"

	"context"
	cryptorand "crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/oklog/ulid/v2"
	"golang.org/x/time/rate"

	"github.com/paf-mesh/paf-mesh/mesh"
)

// Directory is what the relay needs of the mesh: who holds which name and
// where their relay listens. *mesh.Peer implements it.
type Directory interface {
	ID() string
	Name() string
	Resolve(name string) (mesh.Route, error)
	Owner(name string) (mesh.Member, bool)
	Member(id string) (mesh.Member, bool)
	Members() []mesh.Member
	// Subscribe delivers membership and name events without blocking; see
	// mesh.Peer.Subscribe.
	Subscribe(ch chan<- mesh.Event) (cancel func())
}

var (
	_ Directory    = (*mesh.Peer)(nil)
	_ wire.Handler = (*Relay)(nil)
)

// Errors a caller acts on.
var (
	ErrTooLarge    = errors.New("message too large")
	ErrNotOnline   = errors.New("recipient not online")
	ErrRateLimited = errors.New("rate limited")
	ErrToSelf      = errors.New("cannot send to yourself")
	ErrBadText     = errors.New("message is not valid UTF-8 text")
	ErrEmpty       = errors.New("message is empty")
)

// Relay sends and receives messages for the names this peer holds.
type Relay struct {
	cfg Config
	log *slog.Logger
	tr  *wire.Transport
	dir Directory

	mu       sync.Mutex
	inboxes  map[string]*store.Inbox
	limiters *lru.Cache[string, *rate.Limiter] // by charge key (source.go)
	closed   bool
	stats    Stats

	entropy io.Reader
	idMu    sync.Mutex

	outbox outbox
	// clocks is what this peer knows of other peers' clocks (clock.go).
	clocks clocks

	held *store.Held // nil when this peer does not hold
	// seals is what this peer knows of the identities that hold names (seals.go).
	seals *sealBook
	// handedOver remembers the ids of stored messages already handed over
	// to their recipient, by this holder or another (which says so with a
	// drop), so that a copy arriving late, a re-replication that was in
	// flight when the name came online, is not kept and handed over again:
	// a later session of the name, with another inbox, would show it twice.
	handedOver *lru.Cache[string, struct{}]
	// told remembers the notices of kept messages sent (tellKept).
	told     *lru.Cache[string, struct{}]
	holdKick chan struct{}
	lastHeld [2]int // the totals announceHeld last announced; holdLoop's alone
	stop     chan struct{}
	wg       sync.WaitGroup
}

// Stats counts deliveries, for status.
type Stats struct {
	Delivered, Stored, Received, Refused, RateLimited uint64
	HandedOver, Expired                               uint64
	// TooLarge counts stored messages that their recipient's peer refused
	// at handover as larger than it accepts: dropped, their senders told.
	TooLarge uint64
	// OverQuota counts messages this holder refused to keep because a store quota was
	// reached (their senders were told).
	OverQuota uint64
}

// New starts a relay listening on cfg.ListenAddr.
func New(cfg Config) (*Relay, error) {
	def := DefaultConfig()
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = def.MaxBody
	}
	if cfg.LargeBody <= 0 {
		cfg.LargeBody = def.LargeBody
	}
	if cfg.Rate == 0 {
		cfg.Rate, cfg.Burst = def.Rate, def.Burst
	}
	if cfg.Burst <= 0 {
		cfg.Burst = max(1, int(cfg.Rate))
	}
	if cfg.DeliverTimeout <= 0 {
		cfg.DeliverTimeout = def.DeliverTimeout
	}
	if cfg.ListenAddr == "" {
		cfg.ListenAddr = def.ListenAddr
	}
	if cfg.Replicas <= 0 {
		cfg.Replicas = def.Replicas
	}
	if cfg.StoreTTL <= 0 {
		cfg.StoreTTL = def.StoreTTL
	}
	if cfg.HoldInterval <= 0 {
		cfg.HoldInterval = def.HoldInterval
	}
	if cfg.HandoverStagger <= 0 {
		cfg.HandoverStagger = def.HandoverStagger
	}
	if cfg.ExpiryInterval <= 0 {
		cfg.ExpiryInterval = def.ExpiryInterval
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.OutboxRetry <= 0 {
		cfg.OutboxRetry = DefaultOutboxRetry
	}
	if cfg.OutboxAdopt <= 0 {
		cfg.OutboxAdopt = DefaultOutboxAdopt
	}
	if cfg.ClockWindow <= 0 {
		cfg.ClockWindow = DefaultClockWindow
	}
	if cfg.Dir == nil || cfg.StateRoot == "" {
		return nil, errors.New("relay: Config.Dir and Config.StateRoot are required")
	}
	if cfg.Identity == nil {
		if d, ok := cfg.Dir.(interface{ Identity() *keys.Identity }); ok {
			cfg.Identity = d.Identity()
		}
	}
	if cfg.Identity == nil {
		return nil, errors.New("relay: Config.Identity is required (or a Directory with one)")
	}
	cfg.heldLimits = cfg.limits()
	r := &Relay{
		cfg: cfg, log: cfg.Logger, dir: cfg.Dir,
		inboxes:  make(map[string]*store.Inbox),
		entropy:  ulid.Monotonic(ulidEntropy{}, 0),
		holdKick: make(chan struct{}, 1),
		stop:     make(chan struct{}),
		outbox: outbox{
			run: make(chan struct{}, 1), kick: make(chan struct{}, 1),
			next: map[string]time.Time{}, backoff: map[string]time.Duration{}, stored: map[string]bool{},
		},
	}
	r.clocks.init()
	r.seals = newSealBook(cfg.StateRoot, cfg.StoreTTL, cfg.Now, cfg.Logger)
	var err error
	if r.limiters, err = lru.New[string, *rate.Limiter](maxLimiters); err != nil {
		return nil, err
	}
	if cfg.HolderDir != "" {
		h, err := store.OpenHeld(cfg.HolderDir, cfg.Now)
		if err != nil {
			return nil, err
		}
		r.held = h
		if r.handedOver, err = lru.New[string, struct{}](handedOverIDs); err != nil {
			h.Close()
			return nil, err
		}
		if r.told, err = lru.New[string, struct{}](4096); err != nil {
			h.Close()
			return nil, err
		}
	}
	var handler wire.Handler = r
	if cfg.wrapHandler != nil {
		handler = cfg.wrapHandler(r)
	}
	tr, err := wire.NewTransport(wire.Config{
		ID: cfg.Dir.ID(), Identity: cfg.Identity, Key: cfg.Key, ListenAddr: cfg.ListenAddr,
		MaxPayload: cfg.MaxBody + maxPayloadHeadroom, Handler: handler, Logger: cfg.Logger,
	})
	if err != nil {
		if r.held != nil {
			r.held.Close()
		}
		return nil, err
	}
	r.tr = tr
	if r.held != nil {
		r.wg.Add(1)
		go r.holdLoop()
	}
	r.wg.Add(1)
	go r.outboxLoop()
	if sy, ok := cfg.Dir.(stateSyncer); ok {
		r.wg.Add(1)
		go r.claimPushLoop(sy, r.subscribe()) // claimpush.go
	}
	return r, nil
}

// Addr is the relay's listen address, to announce in the mesh metadata.
func (r *Relay) Addr() string { return r.tr.Addr() }

// TransportStats exposes the transport's counters (rejected frames...).
func (r *Relay) TransportStats() TransportStats { return r.tr.Stats() }

// Stats returns delivery counters.
func (r *Relay) Stats() Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stats
}

// Close stops the relay and closes the inboxes after their pending writes.
func (r *Relay) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	r.mu.Unlock()
	close(r.stop)
	r.wg.Wait()
	r.seals.flush() // the sightings held back (sealSaveEvery)
	err := errors.Join(r.tr.Close(), r.closeOutbox())
	if r.held != nil {
		err = errors.Join(err, r.held.Close())
	}
	r.mu.Lock()
	ibs := r.inboxes
	r.inboxes = map[string]*store.Inbox{}
	r.mu.Unlock()
	for _, ib := range ibs {
		err = errors.Join(err, ib.Close())
	}
	return err
}

func (r *Relay) newID() string {
	r.idMu.Lock()
	defer r.idMu.Unlock()
	return ulid.MustNew(ulid.Timestamp(r.cfg.Now()), r.entropy).String()
}

// Outgoing is a message to send.
type Outgoing struct {
	From           string // must be the name this peer holds
	To             string
	Body           string
	Kind           Kind // default KindMessage
	ConversationID string
	Intent         string
}

// Result says what happened to a sent message.
type Result struct {
	ID            string `json:"id"`
	Status        string `json:"status"` // StatusDelivered, StatusStored or StatusQueued
	Holders       int    `json:"holders"`
	To            string `json:"to"`                       // the name it went to, after forwards
	ForwardedFrom string `json:"forwarded_from,omitempty"` // the name it was sent to, when forwarded
	// Unanswered: stored because the recipient's peer, still a member of
	// the mesh, could not be reached (it has most likely just stopped).
	Unanswered bool `json:"unanswered,omitempty"`
	// Reason says why a message is stored or queued rather than delivered, when that helps
	// the sender: the recipient's peer is not answering, or a clock is wrong.
	Reason string `json:"reason,omitempty"`
}

func (r *Relay) prepare(o Outgoing) (*Message, error) {
	if o.From == "" || o.From != r.dir.Name() {
		if r.dir.Name() == "" {
			return nil, fmt.Errorf("relay: this peer holds no name yet: %w", mesh.ErrNoName)
		}
		return nil, fmt.Errorf("relay: this peer holds %q, so it cannot send as %q", r.dir.Name(), o.From)
	}
	if len(o.Body) > r.cfg.MaxBody {
		return nil, fmt.Errorf("%w: %d bytes, the limit is %d; send a file path instead, or split it", ErrTooLarge, len(o.Body), r.cfg.MaxBody)
	}
	if o.Kind == 0 {
		o.Kind = KindMessage
	}
	// What an agent or a user writes must say something; the notices the
	// product writes itself (an end, a refocus, a system notice) may not.
	if (o.Kind == KindMessage || o.Kind == KindReply) && strings.TrimSpace(o.Body) == "" {
		return nil, fmt.Errorf("%w: nothing was sent; write the message text", ErrEmpty)
	}
	m := &Message{
		ID: r.newID(), From: o.From, Kind: o.Kind, Body: o.Body,
		SentAt: r.cfg.Now().Truncate(time.Millisecond), ConversationID: o.ConversationID, Intent: o.Intent,
	}
	to, err := mesh.NormalizeName(o.To)
	if err != nil {
		return nil, err
	}
	m.To = to
	if err := validateOutgoing(m); err != nil {
		return nil, err
	}
	return m, nil
}

// validateOutgoing is Message.Validate with the error an agent can act on for bad text.
func validateOutgoing(m *Message) error {
	if err := m.Validate(); err != nil {
		if !utf8Valid(m.Body) || !utf8Valid(m.Intent) {
			return fmt.Errorf("%w; send text, or a file path for binary data", ErrBadText)
		}
		return err
	}
	return nil
}

// storeUnanswered is how long deliver keeps trying a recipient's peer that
// cannot be reached (refused connections: its process has most likely
// stopped) before it stores the message with holders instead of waiting for
// the mesh to declare the peer failed, which takes seconds (and on a busy LAN
// could outlast DeliverTimeout). Holders keep offering it to that peer, and
// hand it to the name's next holder.
const storeUnanswered = time.Second

// deliver routes m and hands it to the recipient's peer, retrying while the
// route is settling (a rename or claim still gossiping) until DeliverTimeout.
func (r *Relay) deliver(ctx context.Context, m *Message, mayStore bool) (Result, error) {
	// DeliverTimeout is a deadline checked here and given to each request
	// (call.waitFor) rather than a context.WithTimeout, which cost a tenth of
	// a busy sender's CPU; storing, which is rare, makes a context of it.
	deadline := time.Now().Add(r.cfg.DeliverTimeout)
	original := m.To
	if m.Sig == "" {
		// Its fields are final here (Broadcast is set after prepare); To and ForwardedFrom
		// change below, which the signature allows (it covers Addressed, which they keep).
		wire.SignMessage(m, r.cfg.Identity)
	}
	backoff := 20 * time.Millisecond
	var unanswered time.Time // since when the recipient's peer cannot be reached
	storeIt := func(route mesh.Route, reason string) (Result, error) {
		m.To = route.Name
		if len(route.Via) > 0 {
			m.ForwardedFrom = route.Via[0]
		}
		kept, unsealed, err := r.sealForStore(m, route)
		if err != nil {
			return Result{ID: m.ID, To: m.To}, err
		}
		sctx, cancel := context.WithDeadline(ctx, deadline)
		n, err := r.store(sctx, kept)
		cancel()
		if err != nil {
			if reason != "" && errors.Is(err, ErrClockSkew) {
				err = fmt.Errorf("%s (and its holders refuse it too: %w)", reason, ErrClockSkew)
			} else if reason != "" && queueable(err) {
				err = fmt.Errorf("%s, and no holder confirmed it: %w", reason, err)
			}
			return Result{ID: m.ID, To: m.To}, err
		}
		r.mu.Lock()
		r.stats.Stored++
		r.mu.Unlock()
		if unsealed != "" {
			reason = strings.TrimPrefix(reason+"; "+unsealed, "; ")
		}
		return Result{ID: m.ID, Status: StatusStored, Holders: n, To: m.To, ForwardedFrom: m.ForwardedFrom, Unanswered: route.Online, Reason: reason}, nil
	}
	for {
		route, err := r.dir.Resolve(original)
		if err != nil {
			return Result{}, err
		}
		if route.Name == m.From {
			return Result{}, fmt.Errorf("%w (%q is this peer's own name)", ErrToSelf, route.Name)
		}
		if !route.Online {
			if !mayStore {
				return Result{ID: m.ID, To: route.Name}, fmt.Errorf("%w: no peer holds %q right now", ErrNotOnline, route.Name)
			}
			return storeIt(route, "")
		}
		m.To = route.Name
		if len(route.Via) > 0 {
			m.ForwardedFrom = route.Via[0]
		}
		err = r.deliverAs(ctx, route.Owner, m, false, max(time.Until(deadline), time.Millisecond))
		if err == nil {
			r.mu.Lock()
			r.stats.Delivered++
			r.mu.Unlock()
			return Result{ID: m.ID, Status: "delivered", To: m.To, ForwardedFrom: m.ForwardedFrom}, nil
		}
		var re *wire.RemoteError
		switch {
		case errors.As(err, &re) && re.Code == wire.CodeClockSkew:
			// The recipient's peer refuses this peer's requests until a clock is fixed:
			// holders keep the message meanwhile (or, if they refuse too, the outbox does).
			r.clocks.outside(route.Owner.ID, r.cfg.Now())
			why := fmt.Errorf("%w: %s's peer refused it: %s", ErrClockSkew, m.To, re.Msg)
			if !mayStore {
				return Result{ID: m.ID, To: m.To}, why
			}
			r.log.Warn("the recipient's peer refuses this peer's clock; storing the message with holders", "to", m.To, "peer", route.Owner.ID, "err", re.Msg)
			return storeIt(route, why.Error())
		case errors.As(err, &re) && re.Code == wire.CodeRateLimited:
			return Result{}, fmt.Errorf("%w: %s's peer refuses more messages from this sender (this user on this machine) for now, so nothing was sent; wait a few seconds and retry", ErrRateLimited, m.To)
		case errors.As(err, &re) && re.Code == wire.CodeOverLimit:
			return Result{}, fmt.Errorf("%w: %s (%s); send a file path instead, or split it", ErrTooLarge, re.Msg, m.To)
		case errors.As(err, &re) && !retryable(re.Code):
			return Result{}, fmt.Errorf("relay: %s refused the message: %s", m.To, re.Msg)
		case errors.Is(err, ErrTooLarge):
			return Result{}, err
		}
		// Unreachable, or the route moved under us: look again.
		r.log.Debug("delivery attempt failed; retrying", "to", m.To, "id", m.ID, "err", err)
		if !errors.Is(err, wire.ErrUnreachable) {
			unanswered = time.Time{}
		} else if unanswered.IsZero() {
			unanswered = time.Now()
		} else if mayStore && time.Since(unanswered) >= storeUnanswered && route.Owner.ID != r.dir.ID() {
			r.log.Info("the recipient's peer is not answering; storing the message with holders", "to", m.To, "peer", route.Owner.ID, "id", m.ID)
			return storeIt(route, fmt.Sprintf("not answering: %s's peer could not be reached (%v)", m.To, err))
		}
		left := time.Until(deadline)
		if left <= 0 {
			return Result{ID: m.ID, To: m.To}, fmt.Errorf("relay: deliver to %q: %w (last error: %v)", m.To, context.DeadlineExceeded, err)
		}
		select {
		case <-ctx.Done():
			return Result{ID: m.ID, To: m.To}, fmt.Errorf("relay: deliver to %q: %w (last error: %v)", m.To, ctx.Err(), err)
		case <-time.After(min(backoff, left)):
		}
		backoff = min(backoff*2, 500*time.Millisecond)
	}
}

// deliverTo hands m to one peer; the local peer is served without a network
// round trip.
func (r *Relay) deliverTo(ctx context.Context, owner mesh.Member, m *Message) error {
	return r.deliverAs(ctx, owner, m, false, 0)
}

// deliverAs is deliverTo, marking the message as a holder's handover, and
// giving up after timeout (0: when ctx ends).
func (r *Relay) deliverAs(ctx context.Context, owner mesh.Member, m *Message, handover bool, timeout time.Duration) error {
	if owner.ID == r.dir.ID() {
		ch := make(chan error, 1)
		r.accept(r.dir.ID(), selfSource, m, nil, handover, func(err error) { ch <- err })
		var expired <-chan time.Time
		if timeout > 0 {
			t := time.NewTimer(timeout)
			defer t.Stop()
			expired = t.C
		}
		select {
		case <-expired:
			return fmt.Errorf("relay: store in this peer's inbox: not done within %v: %w", timeout, context.DeadlineExceeded)
		case err := <-ch:
			if err != nil {
				// As a remote peer's answer would be: the caller decides by its code.
				return &wire.RemoteError{Code: wire.CodeOf(err), Msg: err.Error()}
			}
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if MetaAddr(owner.Meta) == "" {
		return fmt.Errorf("%w: peer %s announces no relay address", wire.ErrUnreachable, owner.ID)
	}
	head, body := wire.MessagePartsStamped(wire.ReqDeliver, m, handover, r.cfg.Now())
	_, err := r.tr.RequestParts(ctx, owner.ID, MetaAddr(owner.Meta), head, body, timeout)
	return err
}

// HandleRequest implements Handler: a message from another peer. Its rate and store quotas
// are charged to the identity the handshake proved for from and to its address src
// (chargeOf), never to a name or id the sender merely states.
func (r *Relay) HandleRequest(from string, src netip.Addr, body []byte, respond func([]byte, error)) {
	source := chargeOf(from, src)
	if len(body) >= 2 {
		switch body[1] {
		case wire.ReqStore:
			respond(nil, r.handleStore(from, source, body))
			return
		case wire.ReqDrop:
			respond(nil, r.handleDrop(body))
			return
		case wire.ReqCount:
			respond(r.handleCount(from, body))
			return
		}
	}
	m, msgBody, handover, err := wire.DecodeMessageRef(body, wire.ReqDeliver, r.cfg.MaxBody)
	if err == nil {
		if err := r.checkStamp(from, m.Stamp); err != nil {
			r.refused()
			respond(nil, err)
			return
		}
		m.Stamp = time.Time{}
	}
	if errors.Is(err, wire.ErrOverLimit) {
		r.refused()
		r.log.Info("refusing a message larger than this peer accepts (--max-body)", "peer", from, "err", err)
		respond(nil, decodeRefusal(err))
		return
	}
	if err != nil {
		r.refused()
		r.log.Warn("refusing a malformed message", "peer", from, "err", err)
		respond(nil, decodeRefusal(err))
		return
	}
	r.accept(from, source, m, msgBody, handover, func(err error) {
		if err == nil && handover {
			// A holder handed it over: it drops its copies only on this peer's signed word.
			respond(r.ackFor(m.ID), nil)
			return
		}
		respond(nil, err)
	})
}

// refuseAuthor counts and logs a message refused because its author cannot be verified.
func (r *Relay) refuseAuthor(fromPeer string, m *Message, err error) {
	r.refused()
	r.log.Warn("refusing a message whose author cannot be verified", "peer", fromPeer, "from", m.From, "id", m.ID, "err", err)
}

func (r *Relay) refused() {
	r.mu.Lock()
	r.stats.Refused++
	r.mu.Unlock()
}

// accept checks a message addressed to this peer and queues it for the
// recipient's inbox; done is called once it is durable or refused. The body
// is m.Body, or body when that is not nil (a received message's, aliasing the
// connection's read buffer, used only before accept returns).
//
// handover marks a stored message handed over by a holder rather than sent
// by its author: the holder checked the author when it took the message. source is what the
// request is charged to (sourceOf, or selfSource).
func (r *Relay) accept(fromPeer, source string, m *Message, body []byte, handover bool, done func(error)) {
	if !r.allow(source) {
		done(errRateLimited)
		return
	}
	// A message sent by its author: the handshake proved the sending peer's identity, which
	// must be the signer's; the signature itself is verified by the inbox while it writes the
	// message (Inbox.Add with verify), and the sender hears "delivered" only if it holds.
	// A handover or a sealed message is verified first.
	later := !handover && m.SealedTo == ""
	var err error
	if later {
		err = r.checkSigner(fromPeer, m, m.Signer(), false)
	} else {
		err = r.checkAuthor(fromPeer, m, body, handover)
	}
	if err != nil {
		r.refuseAuthor(fromPeer, m, err)
		done(err)
		return
	}
	if r.dir.Name() != m.To {
		done(errNotHere)
		return
	}
	if m.SealedTo != "" {
		// A stored message sealed to this name's holder: opened here, kept open in the inbox
		// (which only this user reads). Holders hand a sealed message only to the identity it
		// is sealed to; one that reaches another is refused and stays with them.
		if err := wire.OpenMessage(m, r.cfg.Identity); err != nil {
			r.refused()
			r.log.Warn("refusing a stored message this identity cannot open", "peer", fromPeer, "from", m.From, "id", m.ID, "err", err)
			done(wire.WithCode(wire.CodeNotHere, err))
			return
		}
		body = nil
	}
	ib, err := r.inbox(m.To)
	if err != nil {
		done(err)
		return
	}
	ib.Add(m, body, later, func(err error) {
		switch {
		case err == nil:
			r.mu.Lock()
			r.stats.Received++
			r.mu.Unlock()
		case errors.Is(err, wire.ErrBadSignature) || errors.Is(err, wire.ErrUnsigned):
			err = decodeRefusal(err)
			r.refuseAuthor(fromPeer, m, err)
		case !isInboxClosed(err):
			// A full or failing disk: the sender hears of it, and so must
			// whoever runs this peer.
			r.log.Error("could not store a received message; its sender was told", "name", ib.Name(), "err", err)
		}
		done(storeRefusal(err))
	})
}

// allow applies the token buckets of source's keys (Config.Rate: its identity's, and its
// address's, AddrFactor times larger) and counts a refusal.
func (r *Relay) allow(source string) bool {
	if source == selfSource {
		return true
	}
	ok := true
	for _, k := range store.ChargeKeys(source) {
		r.mu.Lock()
		l, found := r.limiters.Get(k)
		if !found {
			l = rate.NewLimiter(r.cfg.Rate, r.cfg.Burst)
			if !strings.HasPrefix(k, store.IdentityPrefix) {
				l = rate.NewLimiter(AddrFactor*r.cfg.Rate, AddrFactor*r.cfg.Burst)
			}
			r.limiters.Add(k, l)
		}
		r.mu.Unlock()
		if !l.AllowN(r.cfg.Now(), 1) {
			ok = false
			break
		}
	}
	if ok {
		return true
	}
	r.mu.Lock()
	r.stats.RateLimited++
	r.mu.Unlock()
	return false
}

// inbox returns the open inbox of name, opening it on first use.
func (r *Relay) inbox(name string) (*store.Inbox, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, ErrClosed
	}
	if ib, ok := r.inboxes[name]; ok {
		return ib, nil
	}
	ib, err := store.OpenInbox(store.Config{Root: r.cfg.StateRoot, LargeBody: r.cfg.LargeBody, Now: r.cfg.Now}, name)
	if err != nil {
		return nil, err
	}
	r.inboxes[name] = ib
	return ib, nil
}

// Check returns the unread messages of name, oldest first, and marks them
// read. name must be held by this peer.
func (r *Relay) Check(name string) ([]Message, error) {
	ib, err := r.ownInbox(name)
	if err != nil {
		return nil, err
	}
	return ib.Take()
}

// Peek returns the unread messages of name without marking them read.
func (r *Relay) Peek(name string) ([]Message, error) {
	ib, err := r.ownInbox(name)
	if err != nil {
		return nil, err
	}
	return ib.Peek()
}

// Ack marks the given messages of name read: the second half of Peek, for a
// client that must show messages before they are gone (a crash between the
// two leaves them unread rather than lost).
func (r *Relay) Ack(name string, ids []string) (int, error) {
	for _, id := range ids {
		if err := wire.ValidID(id); err != nil {
			return 0, fmt.Errorf("relay: ack %q: %w", id, err)
		}
	}
	ib, err := r.ownInbox(name)
	if err != nil {
		return 0, err
	}
	return ib.Remove(ids)
}

// Unread is the number of unread messages of name.
func (r *Relay) Unread(name string) int {
	ib, err := r.ownInbox(name)
	if err != nil {
		return 0
	}
	n, _ := ib.State()
	return n
}

// Wait blocks until name has at least one unread message, or ctx ends.
func (r *Relay) Wait(ctx context.Context, name string) error {
	ib, err := r.ownInbox(name)
	if err != nil {
		return err
	}
	for {
		n, changed := ib.State()
		if n > 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-changed:
		}
	}
}

func (r *Relay) ownInbox(name string) (*store.Inbox, error) {
	if name == "" || name != r.dir.Name() {
		return nil, fmt.Errorf("relay: this peer does not hold %q: %w", name, mesh.ErrNoName)
	}
	return r.inbox(name)
}

// ulidEntropy feeds ULIDs from crypto/rand: ids must not be guessable, or a
// peer could pre-empt another's message id and have it dropped as a duplicate.
type ulidEntropy struct{}

func (ulidEntropy) Read(p []byte) (int, error) { return cryptorand.Read(p) }

func utf8Valid(s string) bool { return utf8.ValidString(s) }
