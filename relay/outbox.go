package relay

import (
	"github.com/paf-mesh/paf-mesh/relay/store"
	"github.com/paf-mesh/paf-mesh/relay/wire"

	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/paf-mesh/paf-mesh/mesh"
)

// The outbox (SPEC section 3, "No ambiguous errors"). Once a message may have left this
// process, Send answers delivered, stored or queued, never an error. A queued message is kept
// on disk (store.Outbox) and retried, with the same id, until the recipient's peer or its
// holders confirm it; the recipient de-duplicates by id, so a retry after a lost
// acknowledgement is shown once. Each sender's messages to one recipient (a group) go in the
// order they were sent: a message sent while earlier ones to the same recipient are queued is
// queued behind them, and only a group's first entry is ever being tried.
//
// A peer that is gone leaves its outbox file; another peer of the same state dir takes it
// over: the entries of its own name into its own outbox (it sends them as their author), the
// others into its held messages (a holder hands them over, as for any stored message). A
// peer that neither holds that name nor holds messages (a brief peer) leaves the file alone.
//
// Lock order: Relay.outbox.run (a delivery round, or Handoff), then Relay.outbox.mu.

// Status values of Result.
const (
	StatusDelivered = "delivered"
	StatusStored    = "stored"
	StatusQueued    = "queued"
)

// Defaults of the outbox's timers (Config.OutboxRetry, Config.OutboxAdopt).
const (
	// DefaultOutboxRetry is the first wait before a queued message is tried again; it doubles
	// up to maxOutboxBackoff. Short, since the common causes (a lost acknowledgement, a peer
	// restarting) pass in a second.
	DefaultOutboxRetry = 500 * time.Millisecond
	// DefaultOutboxAdopt is how often a peer looks for outboxes left by peers that are gone
	// when nothing told it of a departure: a heal only. A peer that fails or leaves wakes the
	// look at once, and again after adoptGonePoll, twice as long after each look, for
	// adoptGoneFor after it (outboxLoop), so an idle peer does not wake for it every few
	// seconds (issue 18).
	DefaultOutboxAdopt = time.Minute
	// adoptGonePoll and adoptGoneFor: after a departure the outbox look runs at once and
	// then 0.5, 1.5, 3.5 and 7.5 s after it, since a peer that says goodbye (or that
	// memberlist declares dead first) may release its outbox's lock a moment later. It ran
	// every second for 10 s: strace of one of 20 sessions after another closed showed those
	// ten looks and five of the node's for state slots (which doubles its waits too) as the
	// only file system work of the 20 s after the departure.
	adoptGonePoll = 500 * time.Millisecond
	adoptGoneFor  = 10 * time.Second
	// maxOutboxBackoff bounds the wait between two tries: a partition or a wrong clock can
	// last long, and the message should go soon after it ends.
	maxOutboxBackoff = 30 * time.Second
)

// queued is an outbox entry in memory.
type queued struct {
	seq    uint64  // its key in the store; 0 with durable false
	m      Message // To is the name as the sender addressed it (before forwards)
	key    string  // the order group: sender and recipient
	since  time.Time
	reason string // why it is queued, for the sender (Result.Reason)
	// durable is false when the store refused it (a full disk): it is retried from memory
	// and lost if this process dies, which the reason says.
	durable bool
	waiters int           // Sends waiting for it to resolve; guarded by outbox.mu
	done    chan struct{} // closed when it left the outbox
	res     Result        // set before done is closed
	err     error         // a refusal that no retry can cure
}

// outbox is the Relay's part that keeps and retries queued messages.
type outbox struct {
	// run is held (a token in it) by a delivery round and by Handoff: one attempt per group at
	// a time. A channel, so that Handoff can give up waiting when its context ends.
	run chan struct{}

	mu      sync.Mutex
	st      *store.Outbox // opened at the first entry; nil before
	entries []*queued     // in queue order
	next    map[string]time.Time
	backoff map[string]time.Duration
	// stored marks the groups of which a message was stored with holders rather than
	// delivered: until the holders have handed everything over, later messages of the group
	// are stored too, so that they reach the recipient after it (sendOnce).
	stored map[string]bool
	kick   chan struct{}
}

func groupKey(from, to string) string { return from + "\x00" + to }

// Send delivers a message to the peer holding its recipient's name (after following
// forwards) and returns once that peer has it on disk (delivered), or holders have it
// (stored), or, when neither is known, this peer keeps it and retries it (queued). An error
// means nothing was accepted and nothing will be shown: the message was refused before it
// could leave (its size, its text, the recipient's name) or by every peer that answered.
func (r *Relay) Send(ctx context.Context, o Outgoing) (Result, error) {
	m, err := r.prepare(o)
	if err != nil {
		return Result{}, err
	}
	if q := r.queueBehind(m); q != nil {
		return r.awaitQueued(ctx, q)
	}
	to := m.To
	res, err := r.sendOnce(ctx, m)
	if err == nil || !queueable(err) {
		return res, err
	}
	m.To, m.ForwardedFrom = to, ""
	return r.enqueue(m, reasonOf(to, err)).res, nil
}

// sendOnce is one attempt to deliver m (deliver), keeping its group's order: when an earlier
// message of the group was stored and holders still keep messages for the recipient, a direct
// delivery would overtake them (a holder hands over a moment after the recipient is back), so
// m waits in the outbox (errBehindHolders) until they are handed over. (Storing it behind them
// would not do: each holder hands over what it keeps, and the recipient's own peer, a holder
// too, hands over to itself at once.)
func (r *Relay) sendOnce(ctx context.Context, m *Message) (Result, error) {
	key := groupKey(m.From, m.To)
	ob := &r.outbox
	ob.mu.Lock()
	stored := ob.stored[key]
	ob.mu.Unlock()
	if route, rerr := r.dir.Resolve(m.To); stored && rerr == nil && route.Online {
		if n := r.heldAnywhere(ctx, route.Name); n > 0 {
			return Result{ID: m.ID, To: m.To}, fmt.Errorf("%w: %d message(s) for %s", errBehindHolders, n, route.Name)
		}
		ob.mu.Lock()
		delete(ob.stored, key) // everything stored has been handed over
		ob.mu.Unlock()
	}
	res, err := r.deliver(ctx, m, true)
	if err == nil && res.Status == StatusStored {
		ob.mu.Lock()
		ob.stored[key] = true
		ob.mu.Unlock()
	}
	return res, err
}

// errBehindHolders: a message waits in the outbox for earlier ones of its group that holders
// are handing over (sendOnce).
var errBehindHolders = errors.New("kept in order: earlier messages are still with holders, who hand them over now that the recipient is online")

// heldAnywhere is how many messages the live peers that may hold keep for name (asked in
// parallel, each for at most a second; one that does not answer counts as keeping one, since
// it may).
func (r *Relay) heldAnywhere(ctx context.Context, name string) int {
	req := appendNameList(nil, wire.ReqCount, name, nil)
	var total atomic.Int64
	var wg sync.WaitGroup
	for _, m := range r.dir.Members() {
		if m.Meta.Transient || MetaAddr(m.Meta) == "" || (m.State != mesh.MemberAlive && m.State != mesh.MemberSuspect) {
			continue
		}
		if m.ID == r.dir.ID() {
			total.Add(int64(r.HeldCount(name)))
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			cctx, cancel := context.WithTimeout(ctx, time.Second)
			defer cancel()
			resp, err := r.tr.Request(cctx, m.ID, MetaAddr(m.Meta), req)
			n, perr := strconv.Atoi(string(resp))
			if err != nil || perr != nil {
				n = 1
			}
			total.Add(int64(n))
		}()
	}
	wg.Wait()
	return int(total.Load())
}

// queueable reports whether a failed delivery may have left this process, or failed for a
// reason that passes (a wrong clock, a peer restarting): the message is then queued, not
// refused. A peer's explicit refusal (a *wire.RemoteError with a code no wait cures), a body
// over the limit, a name nobody may hold, or no holder anywhere are not.
func queueable(err error) bool {
	switch {
	case errors.Is(err, ErrClockSkew), errors.Is(err, errBehindHolders),
		errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled),
		errors.Is(err, wire.ErrUnreachable), errors.Is(err, wire.ErrPeerMismatch),
		errors.Is(err, wire.ErrClosed), errors.Is(err, ErrClosed):
		return true
	}
	return false
}

// hopeless reports whether a queued message's delivery failed for a reason no retry can
// cure: the recipient's peer refuses it as too large or malformed, or the name it was sent
// to now leads to its sender. It is then taken out of the outbox and its sender told.
func hopeless(err error) bool {
	return errors.Is(err, ErrTooLarge) || errors.Is(err, ErrToSelf) || errors.Is(err, ErrBadText) ||
		wire.CodeOf(err) == wire.CodeMalformed || wire.CodeOf(err) == wire.CodeOverLimit
}

// reasonOf says why a message to to is queued.
func reasonOf(to string, err error) string {
	if errors.Is(err, ErrClockSkew) {
		return err.Error()
	}
	if errors.Is(err, errBehindHolders) {
		return fmt.Sprintf("kept in order: earlier messages to %s are still with holders, who are handing them over; this one is sent right after them", to)
	}
	return fmt.Sprintf("not answering: no confirmation from %s's peer or its holders yet (%v); this peer keeps the message and retries it with the same id", to, err)
}

// queuedResult is what Send answers for q. outbox.mu is held (the retry loop updates the
// reason).
func (q *queued) queuedResult() Result {
	return Result{ID: q.m.ID, Status: StatusQueued, To: q.m.To, Reason: q.reason}
}

// queueBehind queues m behind its group's queued messages, if it has any.
func (r *Relay) queueBehind(m *Message) *queued {
	r.outbox.mu.Lock()
	key := groupKey(m.From, m.To)
	behind := 0
	for _, q := range r.outbox.entries {
		if q.key == key {
			behind++
		}
	}
	r.outbox.mu.Unlock()
	if behind == 0 {
		return nil
	}
	return r.enqueue(m, fmt.Sprintf("behind %d earlier message(s) to %s that are not confirmed yet: kept on this peer and sent after them, in order", behind, m.To)).q
}

// enqueue adds m to the outbox (durably, when the disk allows) and wakes the retry loop.
func (r *Relay) enqueue(m *Message, reason string) enqueued {
	if m.Sig == "" {
		// Signed now (as deliver would), so that whoever sends it later, this peer or the one
		// that takes the outbox over, sends what its author signed.
		wire.SignMessage(m, r.cfg.Identity)
	}
	q := &queued{m: *m, key: groupKey(m.From, m.To), since: r.cfg.Now(), reason: reason, done: make(chan struct{})}
	ob := &r.outbox
	ob.mu.Lock()
	err := ob.openLocked(r)
	if err == nil {
		q.seq, err = ob.st.Put(&q.m, q.since)
	}
	if err == nil {
		q.durable = true
	} else {
		r.log.Error("cannot keep a queued message on disk; retrying it from memory only", "id", m.ID, "err", err)
		q.reason += "; it could not be written to disk (" + err.Error() + "), so it is lost if this peer stops first"
	}
	ob.entries = append(ob.entries, q)
	res := q.queuedResult()
	ob.mu.Unlock()
	r.log.Info("message queued", "id", m.ID, "to", m.To, "reason", reason)
	r.kickOutbox()
	return enqueued{q, res}
}

// enqueued is a message just queued, and what Send answers for it now.
type enqueued struct {
	q   *queued
	res Result
}

// openLocked opens this peer's outbox file at its first use. ob.mu is held.
func (ob *outbox) openLocked(r *Relay) error {
	if ob.st != nil {
		return nil
	}
	st, err := store.OpenOutbox(r.cfg.StateRoot, r.dir.ID())
	if err != nil {
		return err
	}
	ob.st = st
	return nil
}

func (r *Relay) kickOutbox() {
	select {
	case r.outbox.kick <- struct{}{}:
	default:
	}
}

// awaitQueued waits, up to DeliverTimeout, for q to leave the outbox, and answers what became
// of it, or queued.
func (r *Relay) awaitQueued(ctx context.Context, q *queued) (Result, error) {
	ob := &r.outbox
	ob.mu.Lock()
	q.waiters++
	ob.mu.Unlock()
	defer func() {
		ob.mu.Lock()
		q.waiters--
		ob.mu.Unlock()
	}()
	t := time.NewTimer(r.cfg.DeliverTimeout)
	defer t.Stop()
	select {
	case <-q.done:
		return q.res, q.err
	case <-ctx.Done():
	case <-t.C:
	case <-r.stop:
	}
	ob.mu.Lock()
	defer ob.mu.Unlock()
	return q.queuedResult(), nil
}

// Queued is how many messages this peer keeps in its outbox.
func (r *Relay) Queued() int {
	r.outbox.mu.Lock()
	defer r.outbox.mu.Unlock()
	return len(r.outbox.entries)
}

// outboxLoop retries queued messages and takes over outboxes left by peers that are gone.
func (r *Relay) outboxLoop() {
	defer r.wg.Done()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-r.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	// A peer that joins or claims a name may be the one a queued message waits for.
	events := make(chan mesh.Event, 16)
	defer r.dir.Subscribe(events)()
	t := time.NewTimer(0)
	defer t.Stop()
	// The outbox look runs every OutboxAdopt after the last one, and after a departure at
	// goneNext: at once, then after goneWait, doubling, until goneUntil.
	var lastAdopt, goneNext, goneUntil time.Time
	var goneWait time.Duration
	nextLook := func() time.Time {
		at := lastAdopt.Add(r.cfg.OutboxAdopt)
		if goneNext.Before(goneUntil) && goneNext.Before(at) {
			at = goneNext
		}
		return at
	}
	for {
		select {
		case <-r.stop:
			return
		case <-t.C:
		case <-r.outbox.kick:
		case e := <-events:
			switch e.Type {
			case mesh.EventPeerJoined, mesh.EventNameClaimed, mesh.EventNameRenamed:
				r.outbox.mu.Lock()
				clear(r.outbox.next)
				r.outbox.mu.Unlock()
			case mesh.EventPeerFailed, mesh.EventPeerLeft:
				// It may have been a peer of this state dir with messages queued.
				now := time.Now()
				goneNext, goneUntil, goneWait = now, now.Add(adoptGoneFor), adoptGonePoll
			}
		}
		if now := time.Now(); !now.Before(nextLook()) {
			lastAdopt = now
			r.adoptOutboxes()
			if now.Before(goneUntil) {
				goneNext, goneWait = now.Add(goneWait), 2*goneWait
			}
		}
		wait := r.retryDue(ctx)
		t.Reset(min(wait, time.Until(nextLook())))
	}
}

// retryDue tries the first entry of every group whose wait is over, each group in its own
// goroutine, and returns how long until the next group is due.
func (r *Relay) retryDue(ctx context.Context) time.Duration {
	ob := &r.outbox
	ob.run <- struct{}{}
	defer func() { <-ob.run }()
	now := time.Now()
	ob.mu.Lock()
	var due []string
	seen := map[string]bool{}
	for _, q := range ob.entries {
		if seen[q.key] {
			continue
		}
		seen[q.key] = true
		if !now.Before(ob.next[q.key]) {
			due = append(due, q.key)
		}
	}
	ob.mu.Unlock()
	var wg sync.WaitGroup
	for _, key := range due {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.drainGroup(ctx, key, nil)
		}()
	}
	wg.Wait()
	ob.mu.Lock()
	defer ob.mu.Unlock()
	wait := r.cfg.OutboxAdopt
	for _, q := range ob.entries {
		wait = min(wait, max(time.Until(ob.next[q.key]), time.Millisecond))
	}
	return wait
}

// head is the first entry of group key, or nil.
func (ob *outbox) head(key string) *queued {
	ob.mu.Lock()
	defer ob.mu.Unlock()
	for _, q := range ob.entries {
		if q.key == key {
			return q
		}
	}
	return nil
}

// drainGroup sends the entries of group key in order until one is not confirmed, which waits
// for its next try. ob.run is held.
func (r *Relay) drainGroup(ctx context.Context, key string, outcomes map[string]Result) (delivered, stored int, ok bool) {
	ob := &r.outbox
	for {
		q := ob.head(key)
		if q == nil {
			ob.mu.Lock()
			delete(ob.next, key)
			delete(ob.backoff, key)
			ob.mu.Unlock()
			return delivered, stored, true
		}
		if ctx.Err() != nil {
			return delivered, stored, false
		}
		m := q.m // deliver rewrites To and ForwardedFrom
		res, err := r.sendOnce(ctx, &m)
		switch {
		case err == nil:
			if res.Status == StatusStored {
				stored++
			} else {
				delivered++
			}
			r.log.Info("queued message confirmed", "id", q.m.ID, "to", res.To, "status", res.Status)
			r.resolve(q, res, nil)
			if outcomes != nil {
				outcomes[q.m.ID] = res
			}
		case !hopeless(err):
			// Already accepted: whatever refused it this time (no holder around, quotas, a
			// rate limit) may pass, and the message is kept until it does.
			ob.mu.Lock()
			b := ob.backoff[key]
			b = min(max(2*b, r.cfg.OutboxRetry), maxOutboxBackoff)
			if errors.Is(err, errBehindHolders) {
				b = r.cfg.OutboxRetry // a handover takes a moment: look again soon
			}
			ob.backoff[key] = b
			ob.next[key] = time.Now().Add(b)
			q.reason = reasonOf(q.m.To, err)
			ob.mu.Unlock()
			r.log.Debug("queued message not confirmed yet", "id", q.m.ID, "to", q.m.To, "retry_in", b, "err", err)
			return delivered, stored, false
		default:
			// Refused by a peer that answered: no retry can deliver it.
			r.log.Warn("queued message refused; its sender is told", "id", q.m.ID, "to", q.m.To, "err", err)
			r.resolve(q, Result{ID: q.m.ID, To: q.m.To}, err)
		}
	}
}

// resolve takes q out of the outbox with its outcome. A refusal that no Send is waiting for
// is told to the sender with a system notice in its own inbox.
func (r *Relay) resolve(q *queued, res Result, err error) {
	ob := &r.outbox
	ob.mu.Lock()
	if i := slices.Index(ob.entries, q); i >= 0 {
		ob.entries = slices.Delete(ob.entries, i, i+1)
	}
	if q.durable && ob.st != nil {
		if derr := ob.st.Delete(q.seq); derr != nil {
			// It would be tried again after a restart: the recipient de-duplicates it.
			r.log.Warn("cannot remove a confirmed message from the outbox", "id", q.m.ID, "err", derr)
		}
	}
	q.res, q.err = res, err
	tell := err != nil && q.waiters == 0
	ob.mu.Unlock()
	close(q.done)
	if tell && r.dir.Name() == q.m.From {
		notice := &Message{
			ID: noticeID("Q", q.m.ID), From: q.m.To, To: q.m.From, Kind: KindSystem, SentAt: r.cfg.Now().Truncate(time.Millisecond),
			Body: fmt.Sprintf("Your message %s to %s, queued since %s, was refused and will not be delivered: %v. %q",
				q.m.ID, q.m.To, q.since.UTC().Format(time.RFC3339), err, store.Preview(q.m.Body, noticePreviewLen)),
		}
		wire.SignMessage(notice, r.cfg.Identity)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if derr := r.deliverAs(ctx, mesh.Member{ID: r.dir.ID()}, notice, false, 0); derr != nil {
			r.log.Warn("cannot tell the sender of a refused queued message", "id", q.m.ID, "err", derr)
		}
	}
}

// HandoffResult says what Handoff did with the queued messages.
type HandoffResult struct {
	Delivered int `json:"delivered"` // now with their recipient
	Stored    int `json:"stored"`    // now with holders
	// Left is how many are still queued: they stay in this peer's outbox file in the state
	// dir, which the next peer of that state dir that runs (a serve or mcp peer) takes over.
	Left int    `json:"left"`
	File string `json:"file,omitempty"` // where they are left
	// Sent is the result of each message that left the outbox (delivered or stored), by id.
	Sent map[string]Result `json:"-"`
}

// Handoff tries, once, to deliver or store every queued message, in order: what a brief peer
// calls before it exits (SPEC section 3). What is not confirmed stays in its outbox file for
// the state dir's next long-lived peer.
func (r *Relay) Handoff(ctx context.Context) HandoffResult {
	ob := &r.outbox
	var res HandoffResult
	select {
	case ob.run <- struct{}{}:
		defer func() { <-ob.run }()
	case <-ctx.Done():
		// A retry of the loop is under way: what it does not confirm stays in the file.
		ob.mu.Lock()
		defer ob.mu.Unlock()
		res.Left = len(ob.entries)
		if res.Left > 0 && ob.st != nil {
			res.File = ob.st.Path()
		}
		return res
	}
	var keys []string
	ob.mu.Lock()
	for _, q := range ob.entries {
		if !slices.Contains(keys, q.key) {
			keys = append(keys, q.key)
		}
	}
	ob.mu.Unlock()
	res.Sent = map[string]Result{}
	for _, key := range keys {
		d, s, _ := r.drainGroup(ctx, key, res.Sent)
		res.Delivered += d
		res.Stored += s
	}
	ob.mu.Lock()
	res.Left = len(ob.entries)
	if res.Left > 0 && ob.st != nil {
		res.File = ob.st.Path()
	}
	ob.mu.Unlock()
	return res
}

// adoptOutboxes takes over the outboxes left by peers that are gone (see the top of this
// file).
func (r *Relay) adoptOutboxes() {
	for _, path := range store.OrphanOutboxes(r.cfg.StateRoot, r.dir.ID()) {
		st, err := store.OpenOrphanOutbox(path)
		if err != nil {
			continue // its peer is alive after all, or another peer is taking it
		}
		n, err := r.adoptOutbox(st)
		if n > 0 {
			r.log.Info("took over queued messages of a peer that is gone", "count", n, "from", path)
		}
		if err != nil {
			r.log.Warn("outbox of a peer that is gone not taken over (in full)", "file", path, "err", err)
		}
	}
}

// adoptOutbox takes what it can of st's entries and removes the file once it is empty.
func (r *Relay) adoptOutbox(st *store.Outbox) (int, error) {
	entries, lerr := st.List()
	name := r.dir.Name()
	for _, e := range entries {
		if e.Msg.From != name && r.held == nil {
			return 0, errors.Join(lerr, st.Close()) // left for a peer that can take it
		}
	}
	var taken []uint64
	var err error
	for _, e := range entries {
		m := e.Msg
		if m.From == name {
			r.enqueue(&m, "taken over from a peer of this state dir that is gone")
		} else if _, err = r.held.Put(&m, r.cfg.StoreTTL, selfSource, store.HeldLimits{}); err != nil {
			break
		} else {
			r.kickHolding()
		}
		taken = append(taken, e.Seq)
	}
	if derr := st.Delete(taken...); derr != nil {
		return len(taken), errors.Join(lerr, err, derr, st.Close())
	}
	if lerr == nil && err == nil {
		return len(taken), st.Remove()
	}
	path := st.Path()
	cerr := st.Close()
	if lerr != nil && err == nil && cerr == nil {
		// Only damaged entries are left: set the file aside, where a person can look at it,
		// rather than read it again at every look for orphans.
		aside := path + ".damaged"
		if rerr := os.Rename(path, aside); rerr != nil {
			return len(taken), errors.Join(lerr, rerr)
		}
		return len(taken), fmt.Errorf("%w; the file is kept as %s", lerr, aside)
	}
	return len(taken), errors.Join(lerr, err, cerr)
}

// closeOutbox closes the outbox file: what it still holds is taken over by the state dir's
// next peer (or by this peer's successor).
func (r *Relay) closeOutbox() error {
	ob := &r.outbox
	ob.mu.Lock()
	defer ob.mu.Unlock()
	if ob.st == nil {
		return nil
	}
	err := ob.st.Close()
	ob.st = nil
	return err
}
