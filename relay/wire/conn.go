package wire

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flynn/noise"
)

const (
	// readBufSize is the bufio.Reader of a connection: many small frames per read syscall.
	readBufSize = 64 << 10
	// maxQueued is how many bytes of encoded frames may wait for the writer before a request
	// waits (or, on a served connection, before the next request is read). It is enough to
	// coalesce a thousand 1 KiB frames per write while bounding what a slow peer can pin.
	maxQueued = 1 << 20
	// keepBufCap: buffers grown beyond this by a large frame are dropped after use instead of
	// kept for the life of the connection.
	keepBufCap = 1 << 20
	// writeTimeout bounds one write: a peer that stops reading (stopped or wedged) loses the
	// connection, and its requests fail with ErrUnreachable instead of queueing forever.
	writeTimeout = 10 * time.Second
)

var errNoHandler = errors.New("relay: this peer does not serve requests")

// conn is one established connection. An outbound conn (we dialled) carries our requests and
// their responses; an inbound conn carries the other peer's requests and our responses.
//
// The read loop (which, inbound, calls the Handler) runs in its own goroutine. Frames are
// written by whoever finds no write in progress: a request by the goroutine that sends it
// (no hand-off to another goroutine on the way out, which on an idle machine costs tens of
// microseconds), a response by the writer goroutine (a handler answering a batch should not
// make one write per answer). Whoever writes drains every frame queued meanwhile with one
// Write, so frames are coalesced while a write is in progress and a lone frame goes at once.
type conn struct {
	t       *Transport
	nc      net.Conn
	br      *bufio.Reader
	peerID  string
	peerKey ed25519.PublicKey // the identity the handshake proved
	inbound bool

	// Owned by the read loop.
	rbuf []byte
	recv *noise.CipherState // opens the other side's frames, in order

	done      chan struct{} // closed by close
	closeOnce sync.Once

	// nextID is the last request id issued (outbound).
	nextID atomic.Uint64

	wmu     sync.Mutex
	wclosed bool   // guarded by wmu: no more frames
	cause   error  // guarded by wmu: why the connection closed
	out     []byte // guarded by wmu: encoded frames waiting for the writer
	writing bool   // guarded by wmu: a goroutine is writing and will drain out
	spare   []byte // owned by whoever is writing: the buffer not in use by the senders
	// send seals our frames, guarded by wmu: frames are sealed in the order they are queued
	// onto out, which is the order they are written.
	send  *noise.CipherState
	space chan struct{} // guarded by wmu: closed when the writer takes a full buffer
	kick  chan struct{} // capacity 1: out is not empty

	mu      sync.Mutex
	pending map[uint64]*Call // guarded by mu: outbound requests awaiting a response; nil once closed
}

func newConn(t *Transport, nc net.Conn, br *bufio.Reader, rbuf []byte, s session, inbound bool) *conn {
	c := &conn{
		t: t, nc: nc, br: br, rbuf: rbuf, inbound: inbound,
		peerID: s.peerID, peerKey: s.peerKey, send: s.send, recv: s.recv,
		done:  make(chan struct{}),
		space: make(chan struct{}),
		kick:  make(chan struct{}, 1),
	}
	if !inbound {
		c.pending = make(map[uint64]*Call)
	}
	return c
}

// Call is one request awaiting its response (see Transport.StartRequest). Calls are pooled: a
// call goes back to the pool only when no one can send on ch any more.
type Call struct {
	c     *conn
	id    uint64
	ch    chan callResult // capacity 1; receives exactly one result per use
	timer *time.Timer     // for waitFor's timeout; made at first use, stopped between uses
}

type callResult struct {
	body []byte
	err  error
}

var callPool = sync.Pool{New: func() any { return &Call{ch: make(chan callResult, 1)} }}

func releaseCall(cl *Call) {
	cl.c, cl.id = nil, 0
	callPool.Put(cl)
}

// startCall registers a request whose body is head||tail and queues it.
func (c *conn) startCall(ctx context.Context, head, tail []byte) (*Call, error) {
	cl := callPool.Get().(*Call)
	cl.c, cl.id = c, c.nextID.Add(1)
	c.mu.Lock()
	if c.pending == nil {
		c.mu.Unlock()
		releaseCall(cl)
		return nil, c.lostErr()
	}
	c.pending[cl.id] = cl
	// Other requests in flight on this connection: their senders are likely to queue
	// frames of their own in the next microseconds (a burst of responses woke them), so
	// this one lets them run before writing and writes theirs too.
	how := writeNow
	if len(c.pending) > 1 {
		how = writeSoon
	}
	c.mu.Unlock()

	var hdr [requestHdrLen]byte
	binary.BigEndian.PutUint64(hdr[:], cl.id)
	if err := c.enqueue(ctx, frameRequest, hdr[:], head, tail, true, how); err != nil {
		if !c.forget(cl.id) {
			<-cl.ch // close already owns the call and is sending its result
		}
		releaseCall(cl)
		return nil, err
	}
	return cl, nil
}

// forget removes request id from the pending set; false means it was not there, so a result is
// being (or was) sent on its channel.
func (c *conn) forget(id uint64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.pending[id]; ok {
		delete(c.pending, id)
		return true
	}
	return false
}

// Wait returns the call's result, or the ctx error. The call must not be used afterwards.
func (cl *Call) Wait(ctx context.Context) ([]byte, error) { return cl.waitFor(ctx, 0) }

// waitFor is Wait, giving up after timeout too (0: never) with an error that
// wraps context.DeadlineExceeded. A bound of the call's own instead of a
// context.WithTimeout per request: the call and its timer are pooled, where a
// context costs allocations and its parent's lock on every request.
func (cl *Call) waitFor(ctx context.Context, timeout time.Duration) ([]byte, error) {
	var expired <-chan time.Time
	if timeout > 0 {
		if cl.timer == nil {
			cl.timer = time.NewTimer(timeout)
		} else {
			cl.timer.Reset(timeout) // stopped when the call was last finished
		}
		expired = cl.timer.C
	}
	var err error
	select {
	case r := <-cl.ch:
		cl.finish()
		return r.body, r.err
	case <-ctx.Done():
		err = ctx.Err()
	case <-expired:
		err = fmt.Errorf("no answer within %v: %w", timeout, context.DeadlineExceeded)
	}
	c := cl.c
	if !c.forget(cl.id) {
		// The result raced the context; it is more useful than the context error.
		r := <-cl.ch
		cl.finish()
		return r.body, r.err
	}
	cl.finish()
	// A response that arrives later is dropped by the read loop.
	return nil, fmt.Errorf("relay: request to %s: %w", c.peerID, err)
}

// finish stops the call's timer and returns the call to the pool.
func (cl *Call) finish() {
	if cl.timer != nil {
		cl.timer.Stop() // since Go 1.23, no stale expiry is left in C
	}
	releaseCall(cl)
}

// closeCause is why the connection closed; nil while it is open.
func (c *conn) closeCause() error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.cause
}

// lostErr is the error of a request that the connection failed.
func (c *conn) lostErr() error {
	if c.t.ctx.Err() != nil {
		return ErrClosed
	}
	return fmt.Errorf("relay: connection to %s lost (%v): %w", c.peerID, c.closeCause(), ErrUnreachable)
}

// writeHow says who writes a frame that finds no write in progress.
type writeHow int

const (
	// writeByWriter: the writer goroutine (a response: a handler answering a batch should
	// not make one write per answer).
	writeByWriter writeHow = iota
	// writeNow: the goroutine that queued it, at once (a lone request: no hand-off to
	// another goroutine on the way out, which on an idle machine costs tens of microseconds).
	writeNow
	// writeSoon: the goroutine that queued it, after yielding the processor once, so that
	// the goroutines runnable now (other senders woken by the same burst of responses)
	// queue their frames behind it and one write carries them all. Under concurrent load
	// this turns one write syscall per request (a quarter of a busy sender's CPU) into one
	// per burst.
	writeSoon
)

// enqueue encodes one frame whose payload is hdr||head||tail onto the send buffer and, if no
// write is in progress, writes it as how says or wakes the writer goroutine. It keeps no
// reference to its arguments once it returns. Requests (wait) wait
// while the buffer is full; responses never do: a served connection stops reading requests
// instead (waitSpace), which bounds them.
func (c *conn) enqueue(ctx context.Context, typ FrameType, hdr, head, tail []byte, wait bool, how writeHow) error {
	c.wmu.Lock()
	for wait && !c.wclosed && len(c.out) >= maxQueued {
		space := c.space
		c.wmu.Unlock()
		select {
		case <-space:
		case <-c.done:
		case <-ctx.Done():
			return fmt.Errorf("relay: request to %s: waiting to send: %w", c.peerID, ctx.Err())
		}
		c.wmu.Lock()
	}
	if c.wclosed {
		c.wmu.Unlock()
		return c.lostErr()
	}
	// Sealed into out under wmu: the order of sealing (the nonce counter) is the order of
	// writing.
	out, err := c.t.codec.appendFrame(c.out, c.send, typ, c.t.now(), hdr, head, tail)
	if err != nil {
		c.wmu.Unlock()
		return fmt.Errorf("relay: to %s: %w", c.peerID, err)
	}
	c.out = out
	c.t.stats.framesOut.Add(1)
	direct := how != writeByWriter
	if direct && !c.writing {
		if how == writeSoon {
			c.writing = true // the others queue behind this frame and leave the write to us
			c.wmu.Unlock()
			runtime.Gosched()
			c.wmu.Lock()
			c.writing = false
		}
		c.drainLocked()
		return nil
	}
	c.wmu.Unlock()
	select {
	case c.kick <- struct{}{}:
	default: // the writer is already due to run
	}
	return nil
}

// waitSpace blocks the read loop of a served connection while its responses are not drained,
// so a peer that sends requests but does not read responses cannot grow our memory.
func (c *conn) waitSpace() {
	c.wmu.Lock()
	for !c.wclosed && len(c.out) >= maxQueued {
		space := c.space
		c.wmu.Unlock()
		select {
		case <-space:
		case <-c.done:
		}
		c.wmu.Lock()
	}
	c.wmu.Unlock()
}

// writeLoop writes what responders queue, until the connection closes.
func (c *conn) writeLoop() {
	for {
		select {
		case <-c.kick:
		case <-c.done:
			return
		}
		c.wmu.Lock()
		if c.writing || len(c.out) == 0 {
			c.wmu.Unlock() // the goroutine writing drains it
			continue
		}
		c.drainLocked()
	}
}

// drainLocked, called with wmu held and no write in progress, writes everything queued, one
// Write per batch, until nothing is left; it returns with wmu released. A write error closes
// the connection (its pending requests fail).
func (c *conn) drainLocked() {
	c.writing = true
	for len(c.out) > 0 && !c.wclosed {
		buf := c.out
		c.out = c.spare[:0]
		c.spare = nil
		if len(buf) >= maxQueued {
			close(c.space)
			c.space = make(chan struct{})
		}
		c.wmu.Unlock()
		_ = c.nc.SetWriteDeadline(time.Now().Add(writeTimeout))
		_, err := c.nc.Write(buf)
		if err != nil {
			c.close(fmt.Errorf("write: %w", err))
		}
		if cap(buf) > keepBufCap {
			buf = nil
		}
		c.wmu.Lock()
		c.spare = buf
		if err != nil {
			break
		}
	}
	c.writing = false
	c.wmu.Unlock()
}

// readLoop reads and dispatches frames until the connection fails, then closes it. A refused
// frame is counted and logged.
func (c *conn) readLoop() {
	err := c.readFrames()
	if r, ok := errors.AsType[*rejection](err); ok {
		c.t.reject(r.reason, c.nc.RemoteAddr(), c.peerID, r.err)
	}
	c.close(err)
}

func (c *conn) readFrames() error {
	for {
		if c.inbound {
			c.waitSpace()
		}
		f, buf, err := c.t.codec.ReadFrame(c.br, c.recv, c.rbuf)
		c.rbuf = buf
		if err != nil {
			if reason, ok := codecReason(err); ok {
				return &rejection{reason: reason, err: err}
			}
			return err
		}
		c.t.stats.framesIn.Add(1)
		if c.inbound {
			err = c.handleRequest(&f)
		} else {
			err = c.handleResponse(&f)
		}
		if err != nil {
			return err
		}
		if cap(c.rbuf) > keepBufCap {
			c.rbuf = nil
		}
	}
}

func (c *conn) handleRequest(f *Frame) error {
	if f.Type != frameRequest {
		return &rejection{reason: reasonProtocol, err: fmt.Errorf("relay: frame type %d on a served connection, want a request", f.Type)}
	}
	id, body, err := decodeRequest(f.Payload)
	if err != nil {
		return &rejection{reason: reasonProtocol, err: err}
	}
	h := c.t.cfg.Handler
	if h == nil {
		c.respond(id, nil, WithCode(CodeNoHandler, errNoHandler))
		return nil
	}
	h.HandleRequest(c.peerID, c.source(), body, c.responder(id))
	return nil
}

// responder is the respond func given to the Handler for request id.
func (c *conn) responder(id uint64) func([]byte, error) {
	var answered atomic.Bool
	return func(resp []byte, err error) {
		if answered.Swap(true) {
			c.t.log.Error("relay: handler answered a request twice; the second answer is ignored",
				"peer", c.peerID, "request", id)
			return
		}
		c.respond(id, resp, err)
	}
}

func (c *conn) respond(id uint64, resp []byte, herr error) {
	var hdr [errorHdrLen]byte
	binary.BigEndian.PutUint64(hdr[:], id)
	head := hdr[:responseHdrLen]
	if herr != nil {
		hdr[8], hdr[9] = statusError, byte(CodeOf(herr))
		head, resp = hdr[:], []byte(herr.Error())
	}
	err := c.enqueue(context.Background(), frameResponse, head, resp, nil, false, writeByWriter)
	if errors.Is(err, ErrFrameTooLarge) {
		// The caller must hear something, or it waits for its context.
		hdr[8], hdr[9] = statusError, byte(CodeResponseTooLarge)
		msg := fmt.Sprintf("relay: response of %d bytes is over the maximum of %d", len(resp), c.t.codec.MaxPayload()-responseHdrLen)
		err = c.enqueue(context.Background(), frameResponse, hdr[:], []byte(msg), nil, false, writeByWriter)
	}
	if err != nil {
		c.t.log.Debug("relay: response dropped", "peer", c.peerID, "request", id, "err", err)
	}
}

func (c *conn) handleResponse(f *Frame) error {
	if f.Type != frameResponse {
		return &rejection{reason: reasonProtocol, err: fmt.Errorf("relay: frame type %d on a dialled connection, want a response", f.Type)}
	}
	id, status, code, body, err := decodeResponse(f.Payload)
	if err != nil {
		return &rejection{reason: reasonProtocol, err: err}
	}
	c.mu.Lock()
	cl := c.pending[id]
	if cl != nil {
		delete(c.pending, id)
	}
	c.mu.Unlock()
	if cl == nil {
		if id > c.nextID.Load() {
			return &rejection{reason: reasonProtocol, err: fmt.Errorf("relay: response to request %d, which was never sent", id)}
		}
		return nil // its caller gave up (context ended)
	}
	var r callResult
	switch {
	case status == statusError:
		r.err = &RemoteError{Code: code, Msg: strings.ToValidUTF8(string(body), "\uFFFD")}
	case len(body) > 0:
		r.body = bytes.Clone(body) // body aliases the read buffer
	}
	cl.ch <- r
	return nil
}

// close closes the connection once, for cause, and fails its pending requests.
func (c *conn) close(cause error) {
	c.closeOnce.Do(func() {
		c.wmu.Lock()
		c.wclosed, c.cause, c.out = true, cause, nil
		c.wmu.Unlock()
		close(c.done)
		c.nc.Close()
		// Forget the connection before failing its requests, so that a caller retrying at
		// once dials anew (or finds the peer in backoff) instead of finding this one.
		c.t.connClosed(c)
		if !c.inbound {
			lost := c.lostErr()
			c.mu.Lock()
			pending := c.pending
			c.pending = nil
			c.mu.Unlock()
			for _, cl := range pending {
				cl.ch <- callResult{err: lost}
			}
		}
		c.t.log.Debug("relay: connection closed", "peer", c.peerID, "inbound", c.inbound, "cause", cause)
	})
}
