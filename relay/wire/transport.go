package wire

// The transport: persistent, authenticated TCP connections between peers, carrying requests and
// their responses.
//
// A peer dials another for its own requests; the responses come back on the same connection,
// and the connections it accepts carry the other peers' requests. So between two peers there
// are up to two connections, one per direction. A connection opens with a Noise handshake
// (see handshake.go) that proves the mesh key and both identities; after it, every frame is
// sealed with its direction's key and counter (frame.go): a replayed, re-ordered or injected
// frame does not open, and breaks the connection.
//
// Any frame that is refused is counted by reason (Stats), logged at Warn (rate-limited per
// remote host), and its connection is closed; every other connection keeps being served.
//
// Accepted connections that have not authenticated are bounded (SPEC section 7, "Limits
// before authentication"): per source address and in all, the oldest dropped first, for at
// most HandshakeTimeout, and read for no more than the largest first message (see maxPending,
// maxPendingPerSource and maxPendingFrame in config.go).
//
// Lock order: Transport.mu, then conn.wmu, then conn.mu. No lock is held while calling the
// Handler or doing network I/O. The pending limiter's lock is taken with none of these held.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/paf-mesh/paf-mesh/internal/connlimit"
	"github.com/paf-mesh/paf-mesh/internal/keys"
)

// Errors of Request. Test with errors.Is; they are returned wrapped with detail.
var (
	// ErrUnreachable: the dial or handshake failed, the peer is in backoff after a failed dial,
	// or the connection was lost before the response. The caller cannot know whether the peer
	// processed the request and may retry it (the message layer de-duplicates).
	ErrUnreachable = errors.New("relay: peer unreachable")
	// ErrPeerMismatch: the peer at the address is not the peer that was asked for (a stale
	// address: the peer there restarted under a new id).
	ErrPeerMismatch = errors.New("relay: a different peer answers at this address")
	// ErrClosed: the Transport is closed.
	ErrClosed = errors.New("relay: transport closed")
)

// Handler receives requests.
type Handler interface {
	// HandleRequest is called serially per connection, in the order the requests arrived (the
	// message layer relies on this for per-sender ordering), from the connection's read
	// goroutine: it must not block for long, since no other request of that connection is read
	// meanwhile, and Close waits for it to return. Calls for different connections are
	// concurrent, including, briefly, the old and new connection of a peer that re-dialled.
	//
	// body aliases the connection's read buffer and is valid only during the call: copy what
	// you keep.
	//
	// It answers by calling respond exactly once, possibly later and from another goroutine
	// (the message layer acknowledges only after a group-committed disk write). respond never
	// blocks; it copies resp before returning. respond(nil, err) sends an error response whose
	// code is CodeOf(err) (give it one with WithCode) and whose text is err.Error(); the
	// caller of Request gets it as a *RemoteError with that Code. A respond after
	// the connection is gone does nothing; a second respond is ignored and logged. A request
	// that is never answered makes its caller wait until its context ends.
	//
	// from is the remote peer id, bound to the identity the handshake proved (it starts with
	// that identity's fingerprint, keys.PeerIDFingerprint): a peer of another identity cannot
	// send as it, though every peer of one identity (one user on one machine) can. src is the IP
	// address the connection comes from (see SourceAddr): a holder of the key cannot choose
	// it freely, so limits that must hold against one (rates, quotas) are keyed on it.
	HandleRequest(from string, src netip.Addr, body []byte, respond func(resp []byte, err error))
}

// Transport sends requests to other peers over persistent connections and serves theirs. It
// is safe for concurrent use.
type Transport struct {
	cfg   Config
	codec *Codec
	log   *slog.Logger
	ln    net.Listener
	addr  string // ln's address, formatted once
	now   func() time.Time
	// clock drives the dial backoff; tests replace it to step time.
	clock func() time.Time

	// ctx is cancelled by Close: it aborts dials and handshakes in progress.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // every goroutine the transport started

	stats     transportStats
	rejectLog rejectLog
	// pending limits the accepted connections whose hello has not authenticated yet, per
	// source address and in all, dropping the oldest first (see maxPendingPerSource).
	pending *connlimit.Limiter

	closeOnce sync.Once

	mu          sync.Mutex
	closed      bool                  // guarded by mu
	peers       map[string]*peerState // outbound state by peer id; guarded by mu
	inbound     map[*conn]struct{}    // established accepted connections; guarded by mu
	handshaking map[net.Conn]struct{} // accepted, not yet established; guarded by mu
	dials       uint64                // dial attempts, for tests; guarded by mu
}

// peerState is what the transport knows about dialling one peer. All fields are guarded by
// Transport.mu.
type peerState struct {
	id, addr string
	conn     *conn        // the established connection, or nil
	dialing  *dialAttempt // the dial in progress, or nil
	backoff  time.Duration
	retryAt  time.Time // requests before this fail fast with lastErr
	lastErr  error
}

// dialAttempt lets concurrent requests to one peer share a dial.
type dialAttempt struct {
	addr string
	done chan struct{} // closed when conn or err is set
	conn *conn
	err  error
}

// failed starts or doubles p's backoff after a failed dial (or a connection that failed with
// a refused frame), from minBackoff up to maxBackoff. t.mu is held.
func (p *peerState) failed(err error, now time.Time, maxBackoff time.Duration) {
	if p.backoff = min(2*p.backoff, maxBackoff); p.backoff == 0 {
		p.backoff = min(minBackoff, maxBackoff)
	}
	p.retryAt, p.lastErr = now.Add(p.backoff), err
}

// NewTransport validates cfg, applies defaults and starts listening.
func NewTransport(cfg Config) (*Transport, error) {
	if err := validID(cfg.ID); err != nil {
		return nil, fmt.Errorf("relay: transport ID: %w", err)
	}
	if cfg.Identity == nil {
		return nil, errors.New("relay: transport Identity is required")
	}
	if fp, ok := keys.PeerIDFingerprint(cfg.ID); !ok || fp != cfg.Identity.Fingerprint() {
		return nil, fmt.Errorf("relay: transport ID %q is not bound to %v (make it with Identity.NewPeerID)", cfg.ID, cfg.Identity)
	}
	if len(cfg.Key) != KeyLen {
		return nil, fmt.Errorf("relay: transport Key is %d bytes, want %d", len(cfg.Key), KeyLen)
	}
	if cfg.ListenAddr == "" {
		cfg.ListenAddr = "127.0.0.1:0"
	}
	for _, d := range []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{
		{"DialTimeout", &cfg.DialTimeout, DefaultDialTimeout},
		{"HandshakeTimeout", &cfg.HandshakeTimeout, DefaultHandshakeTimeout},
		{"MaxBackoff", &cfg.MaxBackoff, DefaultMaxBackoff},
	} {
		switch {
		case *d.v < 0:
			return nil, fmt.Errorf("relay: transport %s %v is negative", d.name, *d.v)
		case *d.v == 0:
			*d.v = d.def
		}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	codec, err := NewCodec(CodecConfig{MaxPayload: cfg.MaxPayload, Now: cfg.Now})
	if err != nil {
		return nil, fmt.Errorf("relay: transport: %w", err)
	}
	ln, err := net.Listen("tcp", cfg.ListenAddr)
	if err != nil {
		return nil, fmt.Errorf("relay: listen on %s: %w", cfg.ListenAddr, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t := &Transport{
		cfg:         cfg,
		codec:       codec,
		log:         cfg.Logger,
		ln:          ln,
		addr:        ln.Addr().String(),
		now:         cfg.Now,
		clock:       time.Now,
		ctx:         ctx,
		cancel:      cancel,
		peers:       make(map[string]*peerState),
		inbound:     make(map[*conn]struct{}),
		handshaking: make(map[net.Conn]struct{}),
	}
	t.pending = connlimit.New(connlimit.Limits{PerSource: maxPendingPerSource, Total: maxPending}, t.notePendingDrop)
	t.wg.Add(1)
	go t.acceptLoop()
	return t, nil
}

// Addr is the actual listen address, host:port.
func (t *Transport) Addr() string { return t.addr }

// Request sends body to peer id at addr over the persistent connection (dialled and
// handshaken on first use, re-dialled after a failure) and waits for its response or ctx.
// The response is the caller's to keep.
//
// Errors: ErrUnreachable (wrapped: dial failed / in backoff / connection lost before the
// response: the caller cannot know whether the peer processed it and may retry; the message
// layer de-duplicates), ErrPeerMismatch (the peer at addr is not id), *RemoteError (the
// handler answered with an error: decide by its Code, its text is for people), ctx errors, ErrClosed,
// ErrFrameTooLarge (body over MaxPayload-8; nothing sent).
//
// Safe for concurrent use; concurrent requests to one peer are pipelined on one connection in
// call order.
func (t *Transport) Request(ctx context.Context, id, addr string, body []byte) ([]byte, error) {
	return t.RequestParts(ctx, id, addr, body, nil, 0)
}

// RequestParts is Request for a body given as head||tail; a large tail is sent from the caller's
// memory without being copied (it is not used once request returns). A timeout over 0 bounds
// the wait for the answer as a context deadline would (the error wraps
// context.DeadlineExceeded).
func (t *Transport) RequestParts(ctx context.Context, id, addr string, head, tail []byte, timeout time.Duration) ([]byte, error) {
	cl, err := t.StartRequest(ctx, id, addr, head, tail)
	if err != nil {
		return nil, err
	}
	return cl.waitFor(ctx, timeout)
}

// StartRequest queues the body head||tail for peer id and returns once it is queued on the connection,
// without waiting for the response: requests started one after another (by one goroutine, or
// ordered by other means) are sent, and handed to the peer's Handler, in that order. Finish
// every returned Call with Call.Wait exactly once (the tail may be reused once it returns). It may block to dial (bounded by
// DialTimeout and HandshakeTimeout) or while the connection's send buffer is full.
func (t *Transport) StartRequest(ctx context.Context, id, addr string, head, tail []byte) (*Call, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("relay: request to %s: %w", id, err)
	}
	if n, max := len(head)+len(tail), t.codec.MaxPayload()-requestHdrLen; n > max {
		return nil, fmt.Errorf("relay: request to %s: body of %d bytes, max %d: %w", id, n, max, ErrFrameTooLarge)
	}
	c, err := t.getConn(ctx, id, addr)
	if err != nil {
		return nil, err
	}
	return c.startCall(ctx, head, tail)
}

// getConn returns the established connection to id at addr, dialling it if needed.
func (t *Transport) getConn(ctx context.Context, id, addr string) (*conn, error) {
	if id == "" || addr == "" {
		return nil, fmt.Errorf("relay: request to %q at %q: peer id and address are required: %w", id, addr, ErrUnreachable)
	}
	for {
		t.mu.Lock()
		if t.closed {
			t.mu.Unlock()
			return nil, ErrClosed
		}
		p := t.peers[id]
		if p == nil {
			p = &peerState{id: id, addr: addr}
			t.peers[id] = p
		}
		if p.addr != addr {
			// The peer moved (or restarted elsewhere under the same id): what we know of the
			// old address no longer applies. Requests in flight on the old connection fail
			// with ErrUnreachable and may be retried.
			old := p.conn
			p.addr, p.conn, p.backoff, p.retryAt, p.lastErr = addr, nil, 0, time.Time{}, nil
			if old != nil {
				t.mu.Unlock()
				old.close(fmt.Errorf("relay: %s moved to %s", id, addr))
				continue
			}
		}
		if c := p.conn; c != nil {
			t.mu.Unlock()
			return c, nil
		}
		a := p.dialing
		if a == nil {
			if now := t.clock(); now.Before(p.retryAt) {
				err := fmt.Errorf("relay: %s at %s: in backoff, next try in %v; last failure: %w",
					id, addr, p.retryAt.Sub(now).Round(time.Millisecond), p.lastErr)
				t.mu.Unlock()
				return nil, err
			}
			a = &dialAttempt{addr: addr, done: make(chan struct{})}
			p.dialing = a
			t.dials++
			t.wg.Add(1)
			go t.dialPeer(p, a)
		}
		t.mu.Unlock()
		select {
		case <-a.done:
			if a.addr != addr {
				continue // a dial to an address we no longer want: look again
			}
			// Use this dial's connection even if it already failed (the request then fails
			// with ErrUnreachable), rather than looking again: a peer whose connections
			// always fail must not make one request dial in a loop.
			return a.conn, a.err
		case <-ctx.Done():
			return nil, fmt.Errorf("relay: request to %s: waiting for the connection: %w", id, ctx.Err())
		}
	}
}

// dialPeer dials and handshakes p at a.addr and records the outcome in p. It runs in its own
// goroutine so that a caller whose context ends does not abort a dial others wait for.
func (t *Transport) dialPeer(p *peerState, a *dialAttempt) {
	defer t.wg.Done()
	c, err := t.dial(p.id, a.addr)

	t.mu.Lock()
	p.dialing = nil
	switch {
	case t.closed:
		err = ErrClosed
	case err == nil && p.addr != a.addr:
		err = fmt.Errorf("relay: %s moved to %s while dialling %s: %w", p.id, p.addr, a.addr, ErrUnreachable)
	case err == nil:
		p.conn, p.backoff, p.retryAt, p.lastErr = c, 0, time.Time{}, nil
		a.conn = c
		t.wg.Add(2)
		go func() { defer t.wg.Done(); c.readLoop() }()
		go func() { defer t.wg.Done(); c.writeLoop() }()
	default:
		p.failed(err, t.clock(), t.cfg.MaxBackoff)
		t.pruneLocked()
	}
	a.err = err
	close(a.done)
	t.mu.Unlock()

	if err != nil {
		if c != nil {
			c.nc.Close()
		}
		t.log.Debug("relay: dial failed", "peer", p.id, "addr", a.addr, "err", err)
	} else {
		t.log.Debug("relay: connected", "peer", p.id, "addr", a.addr)
	}
}

// pruneLocked forgets peers with nothing to remember: no connection, no dial and no backoff
// in force, so that peers that left do not accumulate. t.mu is held.
func (t *Transport) pruneLocked() {
	now := t.clock()
	for id, p := range t.peers {
		if p.conn == nil && p.dialing == nil && !now.Before(p.retryAt) {
			delete(t.peers, id)
		}
	}
}

// dial connects to addr and runs the client handshake.
func (t *Transport) dial(id, addr string) (*conn, error) {
	d := net.Dialer{Timeout: t.cfg.DialTimeout}
	nc, err := d.DialContext(t.ctx, "tcp", addr)
	if err != nil {
		if t.ctx.Err() != nil {
			return nil, ErrClosed
		}
		return nil, fmt.Errorf("relay: dial %s at %s: %w: %w", id, addr, ErrUnreachable, err)
	}
	setNoDelay(nc)
	c, err := t.clientHandshake(nc, id, addr)
	if err != nil {
		nc.Close()
		return nil, err
	}
	return c, nil
}

// setNoDelay turns Nagle off: frames are already coalesced by the writer, and a request must
// not wait for the ack of the previous one.
func setNoDelay(nc net.Conn) {
	if tc, ok := nc.(*net.TCPConn); ok {
		_ = tc.SetNoDelay(true)
	}
}

func (t *Transport) acceptLoop() {
	defer t.wg.Done()
	var delay time.Duration // after a temporary Accept error, as net/http does
	for {
		nc, err := t.ln.Accept()
		if err != nil {
			if t.isClosed() {
				return
			}
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			t.log.Warn("relay: accept failed; retrying", "err", err, "retry_in", delay)
			timer := time.NewTimer(delay)
			select {
			case <-timer.C:
			case <-t.ctx.Done():
				timer.Stop()
				return
			}
			continue
		}
		delay = 0
		t.mu.Lock()
		if t.closed {
			t.mu.Unlock()
			nc.Close()
			return
		}
		t.handshaking[nc] = struct{}{}
		t.wg.Add(1)
		t.mu.Unlock()
		// Admitted always; past a limit the oldest pending connections are closed, and their
		// handshakes end with a read error.
		evicted := new(atomic.Bool)
		slot := t.pending.Admit(connlimit.Source(nc.RemoteAddr()), func() { evicted.Store(true); nc.Close() })
		go t.serveConn(nc, slot, evicted)
	}
}

// notePendingDrop logs the dropping of pending connections at Warn the first time and then at
// every power of two, so that a flood is visible without filling the log.
func (t *Transport) notePendingDrop(src netip.Addr, st connlimit.Stats) {
	if n := st.DroppedSource + st.DroppedTotal; n&(n-1) == 0 {
		t.log.Warn("relay: dropped the oldest connections that had not said hello (a flood, or more peers connecting at once than the limits allow)",
			"source", src, "dropped_per_source", st.DroppedSource, "dropped_total", st.DroppedTotal,
			"limit_per_source", maxPendingPerSource, "limit_total", maxPending)
	}
}

// serveConn runs one accepted connection: handshake, then its read loop in this goroutine.
// slot is the connection's place under the pending limits, released once its hello
// authenticates (or the handshake ends); evicted is set if the limits dropped it.
func (t *Transport) serveConn(nc net.Conn, slot *connlimit.Slot, evicted *atomic.Bool) {
	defer t.wg.Done()
	setNoDelay(nc)
	c, err := t.serverHandshake(nc, slot.Release)
	slot.Release()
	dropped := evicted.Load()

	t.mu.Lock()
	delete(t.handshaking, nc)
	if err == nil && t.closed {
		err = ErrClosed
	}
	if err == nil {
		t.inbound[c] = struct{}{}
		t.wg.Add(1)
		go func() { defer t.wg.Done(); c.writeLoop() }()
	}
	t.mu.Unlock()

	if err != nil {
		if r, ok := errors.AsType[*rejection](err); ok {
			t.reject(r.reason, nc.RemoteAddr(), "", r.err)
		} else if dropped {
			t.log.Debug("relay: inbound connection dropped before its hello for newer ones (pending limits)", "remote", nc.RemoteAddr(), "err", err)
		} else {
			t.log.Debug("relay: inbound handshake ended", "remote", nc.RemoteAddr(), "err", err)
		}
		nc.Close()
		return
	}
	t.log.Debug("relay: accepted", "peer", c.peerID, "remote", nc.RemoteAddr())
	c.readLoop()
}

func (t *Transport) isClosed() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.closed
}

// connClosed forgets c; called once by c.close.
func (t *Transport) connClosed(c *conn) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if c.inbound {
		delete(t.inbound, c)
		return
	}
	p := t.peers[c.peerID]
	if p == nil || p.conn != c {
		return
	}
	p.conn = nil
	if r, ok := errors.AsType[*rejection](c.closeCause()); ok {
		// The peer sent a frame we refused: treat it like a failed dial, so that a peer that
		// keeps doing so is not re-dialled at the rate of requests.
		p.failed(fmt.Errorf("relay: %s at %s sent a refused frame (%v): %w", p.id, p.addr, r, ErrUnreachable),
			t.clock(), t.cfg.MaxBackoff)
		return
	}
	if p.dialing == nil && !t.clock().Before(p.retryAt) {
		delete(t.peers, c.peerID)
	}
}

// Close stops listening, closes every connection and waits for the transport's goroutines,
// including HandleRequest calls in progress. Requests waiting fail with ErrClosed. It is
// idempotent and always returns nil.
func (t *Transport) Close() error {
	t.closeOnce.Do(func() {
		t.mu.Lock()
		t.closed = true
		t.cancel()
		conns := make([]*conn, 0, len(t.inbound)+len(t.peers))
		for c := range t.inbound {
			conns = append(conns, c)
		}
		for _, p := range t.peers {
			if p.conn != nil {
				conns = append(conns, p.conn)
			}
		}
		raw := make([]net.Conn, 0, len(t.handshaking))
		for nc := range t.handshaking {
			raw = append(raw, nc)
		}
		t.mu.Unlock()

		t.ln.Close()
		for _, c := range conns {
			c.close(ErrClosed)
		}
		for _, nc := range raw {
			nc.Close()
		}
		t.wg.Wait()
	})
	return nil
}

// ID is this peer's id (Config.ID).
func (t *Transport) ID() string { return t.cfg.ID }

// Identity is the identity this transport proves (Config.Identity).
func (t *Transport) Identity() *keys.Identity { return t.cfg.Identity }
