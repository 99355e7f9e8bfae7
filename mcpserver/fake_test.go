package mcpserver

import (
	"context"
	"fmt"
	"maps"
	"sort"
	"sync"
	"time"

	"github.com/paf-mesh/paf-mesh/mesh"
	"github.com/paf-mesh/paf-mesh/relay"
)

// fakeMesh is an in-memory mesh for the server's tests: names, forwards and
// inboxes, with the relay's rules that the tools depend on (sending only as
// the name held, refusing one's own name, storing for names not online).
type fakeMesh struct {
	mu       sync.Mutex
	peers    map[string]*fakePeer // by id
	inboxes  map[string]*fakeInbox
	forwards []mesh.Forward
	seq      int
	maxBody  int
	// failSend, when set, is returned by every Send (to test errors).
	failSend error
	// queueReason, when set, makes every Send answer queued with it as the reason, delivering
	// nothing (a recipient whose peer does not answer).
	queueReason string
}

type fakeInbox struct {
	msgs    []relay.Message
	changed chan struct{}
}

func newFakeMesh() *fakeMesh {
	return &fakeMesh{peers: map[string]*fakePeer{}, inboxes: map[string]*fakeInbox{}, maxBody: 1 << 20}
}

type fakePeer struct {
	fm    *fakeMesh
	id    string
	ready chan struct{}
	err   error // start failure, returned by Ready
	meta  mesh.Meta
	subs  map[chan<- mesh.Event]struct{}
	// claimDeadlines are the deadlines of the contexts Claim was given.
	claimDeadlines []time.Time
	// activitySets counts SetActivity calls (announcements).
	activitySets int
	// peeks counts Peek calls (reads of the inbox).
	peeks int
}

var _ Backend = (*fakePeer)(nil)

// peer adds a peer that is ready at once.
func (fm *fakeMesh) peer() *fakePeer {
	p := fm.pendingPeer()
	close(p.ready)
	return p
}

// pendingPeer adds a peer whose Ready blocks until close(p.ready).
func (fm *fakeMesh) pendingPeer() *fakePeer {
	fm.mu.Lock()
	defer fm.mu.Unlock()
	fm.seq++
	p := &fakePeer{fm: fm, id: fmt.Sprintf("peer%02d", fm.seq), ready: make(chan struct{}), subs: map[chan<- mesh.Event]struct{}{}}
	p.meta.Host = "testhost"
	fm.peers[p.id] = p
	return p
}

func (fm *fakeMesh) inboxLocked(name string) *fakeInbox {
	ib := fm.inboxes[name]
	if ib == nil {
		ib = &fakeInbox{changed: make(chan struct{})}
		fm.inboxes[name] = ib
	}
	return ib
}

func (ib *fakeInbox) bump() {
	close(ib.changed)
	ib.changed = make(chan struct{})
}

func (fm *fakeMesh) ownerLocked(name string) *fakePeer {
	for _, p := range fm.peers {
		if p.meta.Name == name {
			return p
		}
	}
	return nil
}

func (fm *fakeMesh) emitLocked(e mesh.Event) {
	for _, p := range fm.peers {
		for ch := range p.subs {
			select {
			case ch <- e:
			default:
			}
		}
	}
}

// deliverLocked puts m in its recipient's inbox, following forwards.
func (fm *fakeMesh) deliverLocked(m relay.Message) relay.Result {
	orig := m.To
	for hop := 0; hop < 8 && fm.ownerLocked(m.To) == nil; hop++ {
		next := ""
		for _, f := range fm.forwards {
			if f.From == m.To {
				next = f.To
			}
		}
		if next == "" {
			break
		}
		m.To = next
	}
	if m.To != orig {
		m.ForwardedFrom = orig
	}
	fm.seq++
	m.ID = fmt.Sprintf("01TEST%020d", fm.seq)
	m.SentAt = time.Now().Truncate(time.Millisecond)
	ib := fm.inboxLocked(m.To)
	ib.msgs = append(ib.msgs, m)
	ib.bump()
	res := relay.Result{ID: m.ID, Status: "delivered", To: m.To, ForwardedFrom: m.ForwardedFrom}
	if fm.ownerLocked(m.To) == nil {
		res.Status, res.Holders = "stored", 1
	}
	return res
}

// inject puts a message into name's inbox as if a peer had sent it.
func (fm *fakeMesh) inject(m relay.Message) {
	fm.mu.Lock()
	defer fm.mu.Unlock()
	fm.deliverLocked(m)
}

func (p *fakePeer) Ready(ctx context.Context) error {
	select {
	case <-p.ready:
		return p.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (p *fakePeer) Name() string {
	p.fm.mu.Lock()
	defer p.fm.mu.Unlock()
	return p.meta.Name
}

func (p *fakePeer) Claim(ctx context.Context, name string) error {
	n, err := mesh.NormalizeName(name)
	if err != nil {
		return err
	}
	fm := p.fm
	fm.mu.Lock()
	defer fm.mu.Unlock()
	dl, _ := ctx.Deadline()
	p.claimDeadlines = append(p.claimDeadlines, dl)
	if o := fm.ownerLocked(n); o != nil && o != p {
		return fmt.Errorf("%w: %q is held by peer %s on testhost (alive); choose another name", mesh.ErrNameTaken, n, o.id)
	}
	p.meta.Name = n
	fm.emitLocked(mesh.Event{Type: mesh.EventNameClaimed, PeerID: p.id, Name: n})
	return nil
}

func (p *fakePeer) Rename(_ context.Context, newName string) error {
	n, err := mesh.NormalizeName(newName)
	if err != nil {
		return err
	}
	fm := p.fm
	fm.mu.Lock()
	defer fm.mu.Unlock()
	if o := fm.ownerLocked(n); o != nil && o != p {
		return fmt.Errorf("%w: %q is held by peer %s", mesh.ErrNameTaken, n, o.id)
	}
	old := p.meta.Name
	p.meta.Name = n
	fm.forwards = append(fm.forwards, mesh.Forward{From: old, To: n, Expires: time.Now().Add(2 * time.Hour)})
	if src := fm.inboxes[old]; src != nil && len(src.msgs) > 0 {
		dst := fm.inboxLocked(n)
		dst.msgs = append(dst.msgs, src.msgs...)
		src.msgs = nil
		src.bump()
		dst.bump()
	}
	fm.emitLocked(mesh.Event{Type: mesh.EventNameRenamed, PeerID: p.id, Name: old, To: n})
	return nil
}

func (p *fakePeer) SetDescription(_ context.Context, d string) error {
	p.fm.mu.Lock()
	defer p.fm.mu.Unlock()
	p.updateMetaLocked(func(m *mesh.Meta) { SetMetaDescription(m, d) })
	p.fm.emitLocked(mesh.Event{Type: mesh.EventPeerUpdated, PeerID: p.id})
	return nil
}

func (p *fakePeer) SetActivity(_ context.Context, a Activity, focus string) error {
	p.fm.mu.Lock()
	defer p.fm.mu.Unlock()
	p.activitySets++
	p.updateMetaLocked(func(m *mesh.Meta) { SetMetaPresence(m, a, focus) })
	p.fm.emitLocked(mesh.Event{Type: mesh.EventPeerUpdated, PeerID: p.id})
	return nil
}

// activity is what p announces, for assertions.
func (p *fakePeer) activity() (Activity, string) {
	p.fm.mu.Lock()
	defer p.fm.mu.Unlock()
	return MetaPresence(p.meta)
}

// announcements is how many times p announced its activity.
func (p *fakePeer) announcements() int {
	p.fm.mu.Lock()
	defer p.fm.mu.Unlock()
	return p.activitySets
}

// updateMetaLocked changes p's metadata on a copy, as mesh.Peer.SetMeta
// does: Members hands out the tags map, which must not change under it.
func (p *fakePeer) updateMetaLocked(update func(*mesh.Meta)) {
	m := p.meta
	m.Tags = maps.Clone(m.Tags)
	update(&m)
	p.meta = m
}

func (p *fakePeer) Members() []mesh.Member {
	p.fm.mu.Lock()
	defer p.fm.mu.Unlock()
	var out []mesh.Member
	for _, q := range p.fm.peers {
		out = append(out, mesh.Member{ID: q.id, State: mesh.MemberAlive, Meta: q.meta, Self: q == p, Since: time.Now().Add(-time.Minute)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

func (p *fakePeer) Forwards() []mesh.Forward {
	p.fm.mu.Lock()
	defer p.fm.mu.Unlock()
	return append([]mesh.Forward(nil), p.fm.forwards...)
}

func (p *fakePeer) Send(_ context.Context, o relay.Outgoing) (relay.Result, error) {
	fm := p.fm
	fm.mu.Lock()
	defer fm.mu.Unlock()
	if fm.failSend != nil {
		return relay.Result{}, fm.failSend
	}
	if o.From == "" || o.From != p.meta.Name {
		return relay.Result{}, fmt.Errorf("relay: this peer holds %q, so it cannot send as %q: %w", p.meta.Name, o.From, mesh.ErrNoName)
	}
	to, err := mesh.NormalizeName(o.To)
	if err != nil {
		return relay.Result{}, err
	}
	if to == o.From {
		return relay.Result{}, fmt.Errorf("%w (%q is this peer's own name)", relay.ErrToSelf, to)
	}
	if len(o.Body) > fm.maxBody {
		return relay.Result{}, fmt.Errorf("%w: %d bytes, the limit is %d; send a file path instead, or split it", relay.ErrTooLarge, len(o.Body), fm.maxBody)
	}
	if o.Kind == 0 {
		o.Kind = relay.KindMessage
	}
	if fm.queueReason != "" {
		fm.seq++
		return relay.Result{ID: fmt.Sprintf("Q%025d", fm.seq), Status: relay.StatusQueued, To: to, Reason: fm.queueReason}, nil
	}
	return fm.deliverLocked(relay.Message{From: o.From, To: to, Kind: o.Kind, Body: o.Body, ConversationID: o.ConversationID, Intent: o.Intent}), nil
}

func (p *fakePeer) Broadcast(_ context.Context, from, body string) (relay.BroadcastResult, error) {
	fm := p.fm
	fm.mu.Lock()
	defer fm.mu.Unlock()
	res := relay.BroadcastResult{Delivered: []string{}}
	for _, q := range fm.peers {
		if q.meta.Name != "" && q != p {
			fm.deliverLocked(relay.Message{From: from, To: q.meta.Name, Kind: relay.KindMessage, Body: body, Broadcast: true})
			res.Delivered = append(res.Delivered, q.meta.Name)
		}
	}
	sort.Strings(res.Delivered)
	return res, nil
}

func (p *fakePeer) own(name string) error {
	if name == "" || name != p.meta.Name {
		return fmt.Errorf("relay: this peer does not hold %q: %w", name, mesh.ErrNoName)
	}
	return nil
}

func (p *fakePeer) Peek(name string) ([]relay.Message, error) {
	p.fm.mu.Lock()
	defer p.fm.mu.Unlock()
	if err := p.own(name); err != nil {
		return nil, err
	}
	p.peeks++
	return append([]relay.Message(nil), p.fm.inboxLocked(name).msgs...), nil
}

func (p *fakePeer) Ack(name string, ids []string) (int, error) {
	p.fm.mu.Lock()
	defer p.fm.mu.Unlock()
	if err := p.own(name); err != nil {
		return 0, err
	}
	want := map[string]bool{}
	for _, id := range ids {
		want[id] = true
	}
	ib := p.fm.inboxLocked(name)
	kept := ib.msgs[:0]
	for _, m := range ib.msgs {
		if !want[m.ID] {
			kept = append(kept, m)
		}
	}
	n := len(ib.msgs) - len(kept)
	ib.msgs = kept
	if n > 0 {
		ib.bump()
	}
	return n, nil
}

func (p *fakePeer) InboxState(name string) (int, <-chan struct{}, error) {
	p.fm.mu.Lock()
	defer p.fm.mu.Unlock()
	if err := p.own(name); err != nil {
		return 0, nil, err
	}
	ib := p.fm.inboxLocked(name)
	return len(ib.msgs), ib.changed, nil
}

func (p *fakePeer) Subscribe(ch chan<- mesh.Event) func() {
	p.fm.mu.Lock()
	p.subs[ch] = struct{}{}
	p.fm.mu.Unlock()
	return func() {
		p.fm.mu.Lock()
		delete(p.subs, ch)
		p.fm.mu.Unlock()
	}
}
