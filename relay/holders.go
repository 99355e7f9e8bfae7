package relay

import (
	"github.com/paf-mesh/paf-mesh/relay/store"
	"github.com/paf-mesh/paf-mesh/relay/wire"

	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/paf-mesh/paf-mesh/mesh"
)

// Store-and-forward. A message for a name no live peer holds is kept by R
// holders chosen by rendezvous hashing of the recipient name over the live
// peers that may hold (not transient ones), so every peer agrees who holds
// what without asking. Each holder persists its copy (store.Held). Holders
// watch the mesh: when the name (or a name it forwards to) comes online, the
// first-ranked holder hands the messages over in send order, and after the
// recipient acknowledged them every holder drops its copy; when membership
// changes, holders copy what they hold to the new holder set and drop copies
// they no longer need. Messages expire after StoreTTL; their senders are
// told if online, and the count shows in status.

// ErrQuota: no holder would keep the message, each because one of its store quotas
// (Config.Quota and the byte quotas) is reached; the error's text says which and what to do.
// Nothing was stored.
var ErrQuota = errors.New("store quota reached")

// ErrNoHolders: nobody could take the message.
var ErrNoHolders = errors.New("no peer could store the message")

// holdersFor ranks the peers that may hold messages for name and returns the
// first n. Rendezvous (highest random weight) hashing: when a peer joins or
// leaves, only the names it ranks first for move.
func holdersFor(name string, members []mesh.Member, n int) []mesh.Member {
	type scored struct {
		m     mesh.Member
		score uint64
	}
	var cands []scored
	for _, m := range members {
		if !mayHold(m) {
			continue
		}
		h := fnv.New64a()
		h.Write([]byte(name))
		h.Write([]byte{0})
		h.Write([]byte(m.ID))
		cands = append(cands, scored{m, h.Sum64()})
	}
	sort.Slice(cands, func(i, j int) bool {
		if cands[i].score != cands[j].score {
			return cands[i].score > cands[j].score
		}
		return cands[i].m.ID < cands[j].m.ID
	})
	out := make([]mesh.Member, 0, n)
	for i := 0; i < len(cands) && i < n; i++ {
		out = append(out, cands[i].m)
	}
	return out
}

// mayHold reports whether m may be chosen to hold messages: live (or suspect), with a
// relay, neither transient nor leaving.
func mayHold(m mesh.Member) bool {
	return (m.State == mesh.MemberAlive || m.State == mesh.MemberSuspect) &&
		!m.Meta.Transient && !m.Meta.Leaving && MetaAddr(m.Meta) != ""
}

// store asks the holders of m.To to keep m and returns how many confirmed.
func (r *Relay) store(ctx context.Context, m *Message) (int, error) {
	holders := holdersFor(m.To, r.dir.Members(), r.cfg.Replicas)
	if len(holders) == 0 {
		return 0, fmt.Errorf("%w: no peer that can hold messages is online", ErrNoHolders)
	}
	errs := make([]error, len(holders))
	var wg sync.WaitGroup
	for i, h := range holders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = r.storeAt(ctx, h, m, false)
		}()
	}
	wg.Wait()
	return storeResult(m.To, errs)
}

// storeResult is the outcome of asking holders to keep a message for name, given their
// answers: how many took it, or, when none did, an error that says why and what to do (a
// message no holder took is never reported stored). A holder that failed without answering
// (unreachable after the request went out, no answer in time) may have kept it: the error
// then wraps that failure, which the sender queues rather than reports (queueable).
func storeResult(name string, errs []error) (int, error) {
	ok, quota, limited, skewed := 0, 0, 0, 0
	var quotaErr, skewErr, ambiguous, refused error
	for _, err := range errs {
		switch wire.CodeOf(err) {
		case wire.CodeOther:
			if err == nil {
				ok++
				continue
			}
		case wire.CodeQuota:
			quota++
			quotaErr = err
			continue
		case wire.CodeRateLimited:
			limited++
			continue
		case wire.CodeClockSkew:
			skewed++
			skewErr = err
			continue
		}
		if queueable(err) {
			ambiguous = err
		} else {
			refused = err
		}
	}
	switch {
	case ok > 0:
		return ok, nil
	case ambiguous != nil:
		return 0, fmt.Errorf("%w: no holder confirmed it: %w", ErrNoHolders, ambiguous)
	case skewed > 0:
		// Refused for this peer's clock, which a fix cures: the sender queues it.
		return 0, fmt.Errorf("%w: %d of the %d holders of %q refused it too: %v", ErrClockSkew, skewed, len(errs), name, skewErr)
	case quota > 0:
		also := ""
		if limited > 0 {
			also = fmt.Sprintf("; %d more refuse messages from this sender for now", limited)
		}
		// The holder's text names the quota and what to do; its "quota reached" repeats ours.
		why := strings.TrimPrefix(quotaErr.Error(), store.ErrQuota.Error()+": ")
		return 0, fmt.Errorf("%w: nothing was stored for %q: %d of its %d holders are full (%s)%s",
			ErrQuota, name, quota, len(errs), why, also)
	case limited > 0:
		return 0, fmt.Errorf("%w: nothing was stored for %q: %d of its %d holders refuse more messages from this sender (this user on this machine) for now; wait a few seconds and send again",
			ErrRateLimited, name, limited, len(errs))
	}
	return 0, fmt.Errorf("%w: %w", ErrNoHolders, refused)
}

// storeAt stores m at one holder (locally without a round trip). Its error carries the
// holder's refusal code either way (wire.CodeOf).
//
// A holder that has not yet heard (by gossip) that the sender holds its name
// refuses with a retryable error; storeAt retries those for a moment, as
// deliver does.
func (r *Relay) storeAt(ctx context.Context, h mesh.Member, m *Message, replica bool) error {
	if h.ID == r.dir.ID() {
		return r.holdLocal(m, selfSource)
	}
	backoff := 20 * time.Millisecond
	deadline := time.Now().Add(3 * time.Second)
	for {
		body := wire.AppendMessageStamped(nil, wire.ReqStore, m, replica, r.cfg.Now())
		_, err := r.tr.Request(ctx, h.ID, MetaAddr(h.Meta), body)
		if wire.CodeOf(err) == wire.CodeClockSkew {
			r.clocks.outside(h.ID, r.cfg.Now())
		}
		var re *wire.RemoteError
		if err == nil || !errors.As(err, &re) || !retryable(re.Code) || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 200*time.Millisecond)
	}
}

// errLeaving refuses to keep a message once this peer has begun to leave the mesh.
var errLeaving = wire.WithCode(wire.CodeNotHolding, errors.New("this peer is leaving the mesh and keeps no more messages for others"))

// holdLocal keeps m here, charged to source (sourceOf, or selfSource), within the store
// quotas.
//
// A peer that has begun to leave keeps nothing more, not even a copy it has already: a
// holder drops its own copy once the new holders confirmed theirs (rereplicate), so its
// confirmation must mean "kept by a peer that stays". Peers leaving together (a total
// restart: every one asked to stop at once) each saw the others, not yet marked leaving, as
// the holders, copied to them, were confirmed by peers with the message on disk that were
// themselves leaving, and dropped their own copies; the last ones did the same to each
// other, and the message was lost (issue 17 item 7). With the refusal, a chain of such moves
// runs from each peer to one that began leaving later, so it ends at a peer that keeps its
// copy: every other peer it asks is leaving already.
func (r *Relay) holdLocal(m *Message, source string) error {
	if r.held == nil {
		return errNotHolding
	}
	if r.leaving() {
		return errLeaving
	}
	if r.handedOver.Contains(m.ID) {
		return nil // its recipient has it: a late copy, nothing to keep
	}
	added, err := r.held.Put(m, r.cfg.StoreTTL, source, r.cfg.heldLimits)
	if err != nil {
		if errors.Is(err, store.ErrQuota) {
			r.mu.Lock()
			r.stats.OverQuota++
			r.mu.Unlock()
		}
		return storeRefusal(err)
	}
	if added {
		r.kickHolding()
	}
	return nil
}

// leaving reports whether this peer has begun to leave the mesh (mesh.Peer.Close marks its
// own metadata before it tells the others).
func (r *Relay) leaving() bool {
	self, ok := r.dir.Member(r.dir.ID())
	return ok && self.Meta.Leaving
}

// handleStore serves reqStore from another peer, at source. A replica (a holder's copy) is
// charged to the holder's source like any other: the flag is the sender's claim.
func (r *Relay) handleStore(from, source string, body []byte) error {
	m, replica, err := wire.DecodeMessageAs(body, wire.ReqStore, r.cfg.MaxBody)
	if err != nil {
		r.refused()
		return decodeRefusal(err)
	}
	if err := r.checkStamp(from, m.Stamp); err != nil {
		r.refused()
		return err
	}
	m.Stamp = time.Time{}
	if !r.allow(source) {
		return errRateLimited
	}
	// A holder keeps only what its author signed, from a name bound to the author: a replica
	// (a holder's copy) is checked like a handover, anything else like a direct send.
	if err := r.checkAuthor(from, m, nil, replica); err != nil {
		r.refused()
		r.log.Warn("refusing to hold a message whose author cannot be verified", "peer", from, "from", m.From, "id", m.ID, "err", err)
		return err
	}
	return r.holdLocal(m, authorCharge(m, source))
}

// A nameList is the payload of reqDrop and reqCount: version, type, the
// name, then ids (u16 count, each u16-length-prefixed).
func appendNameList(dst []byte, typ byte, name string, ids []string) []byte {
	dst = append(dst, wire.MessageVersion, typ)
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(name)))
	dst = append(dst, name...)
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(ids)))
	for _, id := range ids {
		dst = binary.BigEndian.AppendUint16(dst, uint16(len(id)))
		dst = append(dst, id...)
	}
	return dst
}

// noticePreviewLen is how much of a message a notice about it (expired, refused) quotes.
const noticePreviewLen = 200

func decodeNameList(b []byte, typ byte) (string, []string, error) {
	if len(b) < 4 || b[0] != wire.MessageVersion || b[1] != typ {
		return "", nil, fmt.Errorf("%w: bad name list header", wire.ErrBadMessage)
	}
	off := 2
	str := func() (string, error) {
		if len(b)-off < 2 {
			return "", fmt.Errorf("%w: truncated", wire.ErrBadMessage)
		}
		n := int(binary.BigEndian.Uint16(b[off:]))
		off += 2
		if len(b)-off < n {
			return "", fmt.Errorf("%w: truncated", wire.ErrBadMessage)
		}
		s := string(b[off : off+n])
		off += n
		return s, nil
	}
	name, err := str()
	if err != nil {
		return "", nil, err
	}
	if n, err := mesh.NormalizeName(name); err != nil || n != name {
		return "", nil, fmt.Errorf("%w: bad name", wire.ErrBadMessage)
	}
	if len(b)-off < 2 {
		return "", nil, fmt.Errorf("%w: truncated", wire.ErrBadMessage)
	}
	count := int(binary.BigEndian.Uint16(b[off:]))
	off += 2
	ids := make([]string, 0, min(count, 1024))
	for i := 0; i < count; i++ {
		id, err := str()
		if err != nil {
			return "", nil, err
		}
		if err := wire.ValidID(id); err != nil {
			return "", nil, fmt.Errorf("%w: %v", wire.ErrBadMessage, err)
		}
		ids = append(ids, id)
	}
	if off != len(b) {
		return "", nil, fmt.Errorf("%w: trailing bytes", wire.ErrBadMessage)
	}
	return name, ids, nil
}

// HeldCount is how many messages this peer holds for name.
func (r *Relay) HeldCount(name string) int {
	if r.held == nil {
		return 0
	}
	return r.held.Count(name)
}

// HeldTotals is how many messages this peer holds, for how many names.
func (r *Relay) HeldTotals() (msgs, names int) {
	if r.held == nil {
		return 0, 0
	}
	return r.held.Totals()
}

// AdoptHeld merges the held messages of a dead peer's state (its held.db)
// into this peer's, so they survive every session closing.
func (r *Relay) AdoptHeld(path string) (int, error) {
	if r.held == nil {
		return 0, errors.New("relay: this peer does not hold messages")
	}
	n, err := r.held.Adopt(path)
	if n > 0 {
		r.kickHolding()
	}
	return n, err
}

func (r *Relay) kickHolding() {
	select {
	case r.holdKick <- struct{}{}:
	default:
	}
}

// holdLoop hands over, re-replicates and expires held messages. It ticks every HoldInterval
// while it holds messages (a handover waits its stagger in ticks), after sealSaveEvery while
// the seal book holds back a sighting, and every ExpiryInterval otherwise: with nothing held,
// only an event (a claim, a join, a store, an adoption) gives it work, and each wakes it at
// once. An idle peer then sleeps (issue 18: each wake-up of an idle process costs).
func (r *Relay) holdLoop() {
	defer r.wg.Done()
	t := time.NewTimer(r.cfg.HoldInterval)
	defer t.Stop()
	// A claim, rename or membership change is worth acting on at once: a
	// recipient that just came online should not wait for the next tick.
	events := make(chan mesh.Event, 64)
	defer r.dir.Subscribe(events)()
	var lastView string
	lastExpiry := time.Time{}
	onlineSince := map[string]time.Time{}
	for {
		select {
		case <-r.stop:
			return
		case <-t.C:
		case <-r.holdKick:
		case <-events:
		drain:
			for {
				select {
				case <-events:
				default:
					break drain
				}
			}
		}
		members := r.dir.Members()
		r.seals.observe(members)
		view := holderView(members)
		viewChanged := view != lastView
		lastView = view
		now := r.cfg.Now()
		names := r.held.Names()
		next := max(r.cfg.ExpiryInterval, r.cfg.HoldInterval)
		if len(names) > 0 {
			next = r.cfg.HoldInterval
		} else if r.seals.pending() {
			next = sealSaveEvery // the sighting observe held back is written next round
		}
		t.Stop()
		t.Reset(next)
		for _, name := range names {
			route, err := r.dir.Resolve(name)
			if err != nil {
				continue
			}
			if route.Online {
				since, ok := onlineSince[name]
				if !ok {
					since = now
					onlineSince[name] = now
				}
				rank := handoverRank(name, route, members, r.dir.ID(), r.cfg.Replicas)
				if now.Sub(since) >= time.Duration(rank)*r.cfg.HandoverStagger {
					r.handover(name, route, members)
				}
				continue
			}
			delete(onlineSince, name)
			if viewChanged {
				r.rereplicate(name, members)
			}
		}
		if now.Sub(lastExpiry) >= r.cfg.ExpiryInterval {
			lastExpiry = now
			r.expire()
		}
		r.announceHeld()
	}
}

// handoverRank is how many HandoverStagger steps the holder self waits, once name is online
// at route, before handing over what it keeps for it. The first-ranked holder hands over at
// once; the others wait their turn, by when the first has usually told them to drop their
// copies. A holder outside the current set (a stale copy) goes last. The recipient's own peer
// hands over to itself at once, without a network round trip, and is left out of the
// ranking of the others: it often holds no copy (it has just started, in a slot of its own),
// and the holders ranked after it would then wait for nothing.
func handoverRank(name string, route mesh.Route, members []mesh.Member, self string, replicas int) int {
	if route.Owner.ID == self {
		return 0
	}
	others := slices.DeleteFunc(slices.Clone(members), func(m mesh.Member) bool { return m.ID == route.Owner.ID })
	for i, h := range holdersFor(name, others, replicas) {
		if h.ID == self {
			return i
		}
	}
	return replicas
}

// holderView identifies the set of peers that may hold, to notice changes. (Not ranked:
// holdLoop computes it every round, a hash per member when ranked.)
func holderView(members []mesh.Member) string {
	var ids []string
	for _, m := range members {
		if mayHold(m) {
			ids = append(ids, m.ID)
		}
	}
	sort.Strings(ids)
	return strings.Join(ids, ",")
}

// handover delivers everything held for name to its recipient (route), in
// send order, pipelined on one connection, then drops the delivered copies
// here and at the other holders.
func (r *Relay) handover(name string, route mesh.Route, members []mesh.Member) {
	recs, err := r.held.List(name)
	if err != nil || len(recs) == 0 {
		return
	}
	recs, kept := forIdentity(recs, fpOf(route.Owner.ID))
	if len(kept) > 0 {
		r.tellKept(name, route, kept)
	}
	if len(recs) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), r.cfg.DeliverTimeout)
	defer cancel()
	var delivered []string
	var acks []handoverAck
	var recipientKey ed25519.PublicKey
	var refused []Message
	for i := 0; i < len(recs); {
		// Batches bound how much is in flight for a large backlog.
		end := min(i+256, len(recs))
		ok, tooLarge, key := r.deliverBatch(ctx, route, name, recs[i:end])
		for _, a := range ok {
			delivered = append(delivered, a.id)
		}
		acks = append(acks, ok...)
		if key != nil {
			recipientKey = key
		}
		refused = append(refused, tooLarge...)
		if len(ok)+len(tooLarge) < end-i {
			break // stop at the first failure: order matters; retry next round
		}
		i = end
	}
	if len(delivered)+len(refused) == 0 {
		return
	}
	done := slices.Clone(delivered)
	for _, m := range refused {
		done = append(done, m.ID)
	}
	r.noteHandedOver(done)
	if err := r.held.Drop(name, done); err != nil {
		r.log.Warn("drop handed-over messages", "name", name, "err", err)
	}
	r.mu.Lock()
	r.stats.HandedOver += uint64(len(delivered))
	r.stats.TooLarge += uint64(len(refused))
	r.mu.Unlock()
	if len(delivered) > 0 {
		r.log.Info("handed over stored messages", "name", name, "to", route.Name, "count", len(delivered))
	}
	for _, m := range refused {
		// Waiting would not help: the recipient's peer takes smaller
		// bodies (its --max-body), and would refuse it until it expired.
		r.log.Warn("stored message refused by its recipient as too large; its sender is told", "id", m.ID, "from", m.From, "to", route.Name)
		r.tellSender(m, "R", fmt.Sprintf("Your message %s to %s, sent %s, could not be delivered: it is larger than %s's peer accepts (%d bytes). Send a file path instead, or split it: %s",
			m.ID, route.Name, m.SentAt.UTC().Format(time.RFC3339), route.Name, bodyLen(&m), noticePreview(&m)))
	}
	if len(acks) == 0 {
		// Only refusals (too large): no acknowledgement to show the other holders, whose
		// copies are refused in turn when they hand them over (the sender is told once:
		// notices of one message share an id).
		return
	}
	drops := dropLists(name, recipientKey, acks)
	for _, m := range members {
		if m.ID == r.dir.ID() || m.Meta.Transient || MetaAddr(m.Meta) == "" || (m.State != mesh.MemberAlive && m.State != mesh.MemberSuspect) {
			continue
		}
		go func() {
			dctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			for _, drop := range drops {
				_, _ = r.tr.Request(dctx, m.ID, MetaAddr(m.Meta), drop)
			}
		}()
	}
}

// deliverBatch delivers recs in order and returns the recipient's acknowledgements (checked:
// see checkAck) and the messages the recipient refused as larger than it accepts (which no
// retry can deliver): together a prefix of recs; and the recipient's identity key.
func (r *Relay) deliverBatch(ctx context.Context, route mesh.Route, name string, recs []store.HeldRecord) (ok []handoverAck, tooLarge []Message, key ed25519.PublicKey) {
	msgs := make([]*Message, len(recs))
	for i := range recs {
		m := recs[i].Msg
		m.File = ""
		if route.Name != name {
			// The first name of the chain stays: it is the name the author addressed, which
			// the signature covers.
			m.To = route.Name
			if m.ForwardedFrom == "" {
				m.ForwardedFrom = name
			}
		}
		msgs[i] = &m
	}
	if route.Owner.ID == r.dir.ID() {
		// This peer is the recipient: it acknowledges to itself.
		for _, m := range msgs {
			if r.deliverAs(ctx, route.Owner, m, true, 0) != nil {
				return ok, tooLarge, key
			}
			ack := r.ackFor(m.ID)
			ok = append(ok, handoverAck{id: m.ID, sig: ack[ed25519.PublicKeySize:]})
		}
		return ok, tooLarge, r.cfg.Identity.Public()
	}
	calls := make([]*wire.Call, 0, len(msgs))
	for _, m := range msgs {
		head, body := wire.MessagePartsStamped(wire.ReqDeliver, m, true, r.cfg.Now())
		c, err := r.tr.StartRequest(ctx, route.Owner.ID, MetaAddr(route.Owner.Meta), head, body)
		if err != nil {
			break
		}
		calls = append(calls, c)
	}
	failed := false
	for i, c := range calls {
		resp, err := c.Wait(ctx)
		var pub ed25519.PublicKey
		var sig []byte
		if err == nil {
			if pub, sig, err = checkAck(resp, msgs[i].ID, route.Owner.ID); err != nil {
				r.log.Warn("the recipient's acknowledgement of a handover does not verify; the message is kept", "id", msgs[i].ID, "peer", route.Owner.ID, "err", err)
			}
		}
		var re *wire.RemoteError
		switch {
		case failed:
		case err == nil:
			ok = append(ok, handoverAck{id: msgs[i].ID, sig: sig})
			key = pub
		case errors.As(err, &re) && re.Code == wire.CodeOverLimit:
			tooLarge = append(tooLarge, recs[i].Msg)
		default:
			failed = true
		}
	}
	return ok, tooLarge, key
}

// handedOverIDs bounds the ids of handed-over messages a holder remembers:
// a late copy arrives within seconds, while this many handovers take far
// longer.
const handedOverIDs = 1 << 16

// noteHandedOver records ids whose messages reached their recipient.
func (r *Relay) noteHandedOver(ids []string) {
	for _, id := range ids {
		r.handedOver.Add(id, struct{}{})
	}
}

// handleCount serves reqCount from peer from: how many messages are held here for a name that
// a peer of from's identity can be handed (not those sealed to another identity).
func (r *Relay) handleCount(from string, body []byte) ([]byte, error) {
	name, _, err := decodeNameList(body, wire.ReqCount)
	if err != nil {
		r.refused()
		return nil, decodeRefusal(err)
	}
	return []byte(strconv.Itoa(r.heldFor(name, fpOf(from)))), nil
}

// rereplicate copies what this peer holds for name to the current holder
// set, and drops the local copy when this peer is no longer in it and every
// holder confirmed.
func (r *Relay) rereplicate(name string, members []mesh.Member) {
	recs, err := r.held.List(name)
	if err != nil || len(recs) == 0 {
		return
	}
	holders := holdersFor(name, members, r.cfg.Replicas)
	self := false
	ctx, cancel := context.WithTimeout(context.Background(), r.cfg.DeliverTimeout)
	defer cancel()
	allOK := len(holders) > 0
	for _, h := range holders {
		if h.ID == r.dir.ID() {
			self = true
			continue
		}
		if route, err := r.dir.Resolve(name); err == nil && route.Online {
			// The name came online meanwhile: hand over instead (the next
			// round does); copies made now would only arrive late.
			return
		}
		for _, rec := range recs {
			m := rec.Msg
			if err := r.storeAt(ctx, h, &m, true); err != nil {
				allOK = false
				r.log.Debug("re-replicate", "name", name, "holder", h.ID, "err", err)
				break
			}
		}
	}
	if !self && allOK {
		ids := make([]string, len(recs))
		for i, rec := range recs {
			ids[i] = rec.Msg.ID
		}
		if err := r.held.Drop(name, ids); err == nil {
			r.log.Debug("moved held messages to their new holders", "name", name, "count", len(ids))
		}
	}
}

// expire drops messages past their expiry and tells their senders, when
// online, with a system message whose id derives from the expired message's,
// so the sender sees one notice however many holders send it.
func (r *Relay) expire() {
	recs, err := r.held.Expired()
	if err != nil || len(recs) == 0 {
		return
	}
	byName := map[string][]string{}
	for _, rec := range recs {
		m := rec.Msg
		byName[m.To] = append(byName[m.To], m.ID)
		r.mu.Lock()
		r.stats.Expired++
		r.mu.Unlock()
		r.log.Warn("stored message expired undelivered", "id", m.ID, "from", m.From, "to", m.To)
		r.tellSender(m, "X", fmt.Sprintf("Your message %s to %s, sent %s, expired undelivered after %s: %s",
			m.ID, m.To, m.SentAt.UTC().Format(time.RFC3339), r.cfg.StoreTTL, noticePreview(&m)))
	}
	for name, ids := range byName {
		_ = r.held.Drop(name, ids)
	}
}

// tellSender sends the sender of m, if it is online, a system notice about
// m. Its id is derived from m's and the kind of notice (noticeID), so the
// sender sees one notice however many holders send it.
func (r *Relay) tellSender(m Message, prefix, text string) {
	route, err := r.dir.Resolve(m.From)
	if err != nil || !route.Online {
		return
	}
	notice := &Message{
		ID: noticeID(prefix, m.ID), From: m.To, To: m.From, Kind: KindSystem, SentAt: r.cfg.Now().Truncate(time.Millisecond),
		Body: text,
	}
	wire.SignMessage(notice, r.cfg.Identity)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := r.deliverTo(ctx, route.Owner, notice); err != nil {
		r.log.Debug("notice to the sender", "to", m.From, "id", notice.ID, "err", err)
	}
}

// noticeID is the id of the notice of kind prefix about message id: a ULID
// with id's time and entropy from a hash of both, the same at every holder.
func noticeID(prefix, id string) string {
	var u ulid.ULID
	if p, err := ulid.ParseStrict(id); err == nil {
		u = p
	}
	h := sha256.Sum256([]byte("paf notice\x00" + prefix + "\x00" + id))
	_ = u.SetEntropy(h[:10])
	return u.String()
}
