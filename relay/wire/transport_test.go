package wire

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/paf-mesh/paf-mesh/internal/testutil"
)

// tpPoll is how often the waits here look: a transport's state changes within a millisecond
// or two on loopback.
const tpPoll = time.Millisecond

// tpFunc adapts a function to Handler.
type tpFunc func(from string, body []byte, respond func([]byte, error))

func (f tpFunc) HandleRequest(from string, body []byte, respond func([]byte, error)) {
	f(from, body, respond)
}

// tpEcho answers every request with a copy of its body (the body is only valid during the
// call).
var tpEcho = tpFunc(func(_ string, body []byte, respond func([]byte, error)) {
	respond(bytes.Clone(body), nil)
})

// tpNew starts a transport with testKey on loopback port 0, closed at the end of the test.
func tpNew(tb testing.TB, id string, h Handler, mod func(*TransportConfig)) *Transport {
	tb.Helper()
	cfg := TransportConfig{ID: id, Key: testKey, ListenAddr: "127.0.0.1:0", Handler: h, Logger: testutil.Logger(tb, slog.LevelDebug)}
	if mod != nil {
		mod(&cfg)
	}
	tr, err := NewTransport(cfg)
	if err != nil {
		tb.Fatalf("NewTransport(%s): %v", id, err)
	}
	tb.Cleanup(func() { tr.Close() })
	return tr
}

func tpCtx(tb testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	tb.Cleanup(cancel)
	return ctx
}

// tpMustServe checks that srv serves a fresh, good client.
func tpMustServe(t *testing.T, srv *Transport) {
	t.Helper()
	cli := tpNew(t, fmt.Sprintf("good-client-%d", time.Now().UnixNano()), nil, nil)
	got, err := cli.Request(tpCtx(t), srv.cfg.ID, srv.Addr(), []byte("still serving?"))
	if err != nil || string(got) != "still serving?" {
		t.Fatalf("good client after the bad one: %q, %v", got, err)
	}
}

func (t *Transport) dialCount() uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.dials
}

func TestTransportRoundTrip(t *testing.T) {
	var mu sync.Mutex
	froms := map[string]int{}
	h := tpFunc(func(from string, body []byte, respond func([]byte, error)) {
		mu.Lock()
		froms[from]++
		mu.Unlock()
		respond(append([]byte(from+":"), body...), nil)
	})
	a, b := tpNew(t, "a", h, nil), tpNew(t, "b", h, nil)
	ctx := tpCtx(t)

	tests := map[string]struct {
		from, to *Transport
		body     []byte
		want     string
	}{
		"a to b":     {from: a, to: b, body: []byte("ping"), want: "a:ping"},
		"b to a":     {from: b, to: a, body: []byte("pong"), want: "b:pong"},
		"empty body": {from: a, to: b, body: nil, want: "a:"},
		"binary":     {from: a, to: b, body: []byte{0, 1, 2, 255}, want: "a:\x00\x01\x02\xff"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := tc.from.Request(ctx, tc.to.cfg.ID, tc.to.Addr(), tc.body)
			if err != nil {
				t.Fatalf("Request: %v", err)
			}
			if string(got) != tc.want {
				t.Fatalf("response %q, want %q", got, tc.want)
			}
		})
	}
	// One connection per direction, reused by every request.
	for _, tr := range []*Transport{a, b} {
		if s := tr.Stats(); s.ConnsIn != 1 || s.ConnsOut != 1 || len(s.Rejected) != 0 {
			t.Errorf("%s stats: %+v, want one connection each way and no rejection", tr.cfg.ID, s)
		}
	}
	if a.dialCount() != 1 || b.dialCount() != 1 {
		t.Errorf("dials: a %d, b %d, want 1 each", a.dialCount(), b.dialCount())
	}
	mu.Lock()
	defer mu.Unlock()
	if froms["a"] != 3 || froms["b"] != 1 {
		t.Errorf("handler saw senders %v", froms)
	}
}

func TestTransportStatsCountFrames(t *testing.T) {
	a, b := tpNew(t, "a", nil, nil), tpNew(t, "b", tpEcho, nil)
	const n = 10
	for i := range n {
		if _, err := a.Request(tpCtx(t), "b", b.Addr(), []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	// The server counts the last response when it queues it, before the client reads it.
	sa, sb := a.Stats(), b.Stats()
	if sa.FramesOut != n+1 || sa.FramesIn != n+1 || sb.FramesIn != n+1 || sb.FramesOut != n+1 {
		t.Fatalf("frames: a out/in %d/%d, b in/out %d/%d; want %d each (hello or ack + %d)",
			sa.FramesOut, sa.FramesIn, sb.FramesIn, sb.FramesOut, n+1, n)
	}
	if sa.ConnsOut != 1 || sa.ConnsIn != 0 || sb.ConnsIn != 1 || sb.ConnsOut != 0 {
		t.Fatalf("conns: a %+v, b %+v", sa, sb)
	}
}

// tpOrderHandler records the u64 sequence at the start of each body, per sender goroutine
// (the byte after it), and echoes.
type tpOrderHandler struct {
	mu   sync.Mutex
	seen map[byte][]uint64
}

func (h *tpOrderHandler) HandleRequest(_ string, body []byte, respond func([]byte, error)) {
	h.mu.Lock()
	if h.seen == nil {
		h.seen = map[byte][]uint64{}
	}
	h.seen[body[8]] = append(h.seen[body[8]], binary.BigEndian.Uint64(body))
	h.mu.Unlock()
	respond(bytes.Clone(body), nil)
}

func (h *tpOrderHandler) check(t *testing.T, senders, perSender int) {
	t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.seen) != senders {
		t.Fatalf("handler saw %d senders, want %d", len(h.seen), senders)
	}
	for g, seqs := range h.seen {
		if len(seqs) != perSender {
			t.Fatalf("sender %d: handler saw %d requests, want %d", g, len(seqs), perSender)
		}
		for i, s := range seqs {
			if s != uint64(i) {
				t.Fatalf("sender %d: request %d handled at position %d: not in call order", g, s, i)
			}
		}
	}
}

func tpOrderBody(seq uint64, sender byte) []byte {
	b := binary.BigEndian.AppendUint64(nil, seq)
	b = append(b, sender)
	return append(b, bytes.Repeat([]byte{byte(seq)}, 100+int(seq%900))...)
}

func TestTransportPipelinedInCallOrder(t *testing.T) {
	const n = 1000
	h := &tpOrderHandler{}
	a, b := tpNew(t, "a", nil, nil), tpNew(t, "b", h, nil)
	ctx := tpCtx(t)

	// One goroutine issues all requests without waiting for any response.
	calls := make([]*Call, n)
	for i := range calls {
		cl, err := a.StartRequest(ctx, "b", b.Addr(), tpOrderBody(uint64(i), 0), nil)
		if err != nil {
			t.Fatalf("startRequest %d: %v", i, err)
		}
		calls[i] = cl
	}
	for i, cl := range calls {
		got, err := cl.Wait(ctx)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		if want := tpOrderBody(uint64(i), 0); !bytes.Equal(got, want) {
			t.Fatalf("request %d: response of %d bytes is not its body", i, len(got))
		}
	}
	h.check(t, 1, n)
	if s := a.Stats(); s.ConnsOut != 1 || a.dialCount() != 1 {
		t.Fatalf("requests did not share one connection: %+v, %d dials", s, a.dialCount())
	}
}

func TestTransportConcurrentRequests(t *testing.T) {
	const senders, perSender = 10, 100 // 1,000 requests in flight from many goroutines
	h := &tpOrderHandler{}
	a, b := tpNew(t, "a", tpEcho, nil), tpNew(t, "b", h, nil)
	ctx := tpCtx(t)
	var wg sync.WaitGroup
	errs := make(chan error, senders*perSender)
	for g := range senders {
		for i := range perSender {
			// Each sender's requests are pipelined too: request i starts once request i-1 is
			// queued, which is what orders them.
			wg.Add(1)
			started := make(chan struct{})
			go func() {
				defer wg.Done()
				body := tpOrderBody(uint64(i), byte(g))
				cl, err := a.StartRequest(ctx, "b", b.Addr(), body, nil)
				close(started)
				if err != nil {
					errs <- err
					return
				}
				got, err := cl.Wait(ctx)
				if err == nil && !bytes.Equal(got, body) {
					err = fmt.Errorf("sender %d request %d: wrong response", g, i)
				}
				if err != nil {
					errs <- err
				}
			}()
			<-started
		}
	}
	// And plain concurrent Requests from 1,000 goroutines, all answered correctly.
	for i := range senders * perSender {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body := []byte(fmt.Sprintf("concurrent %d", i))
			got, err := b.Request(ctx, "a", a.Addr(), body)
			if err == nil && !bytes.Equal(got, body) {
				err = fmt.Errorf("concurrent %d: response %q", i, got)
			}
			if err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	h.check(t, senders, perSender)
	if a.dialCount() != 1 || b.dialCount() != 1 {
		t.Fatalf("dials: a %d, b %d, want 1 each", a.dialCount(), b.dialCount())
	}
}

func TestTransportResponses(t *testing.T) {
	tests := map[string]struct {
		handler  func(body []byte, respond func([]byte, error))
		want     string
		wantText string // RemoteError text, when the handler fails the request
		wantCode Code   // and its code
	}{
		"respond later from another goroutine": {
			handler: func(body []byte, respond func([]byte, error)) {
				kept := bytes.Clone(body)
				go respond(append(kept, " later"...), nil)
			},
			want: "req later",
		},
		"handler error": {
			handler: func(_ []byte, respond func([]byte, error)) {
				respond(nil, WithCode(CodeQuota, errors.New("inbox quota reached for bob")))
			},
			wantText: "inbox quota reached for bob",
			wantCode: CodeQuota,
		},
		"error without a code": {
			handler: func(_ []byte, respond func([]byte, error)) {
				respond(nil, errors.New("inbox quota reached for bob"))
			},
			wantText: "inbox quota reached for bob",
			wantCode: CodeOther,
		},
		"wrapped coded error": {
			handler: func(_ []byte, respond func([]byte, error)) {
				respond(nil, fmt.Errorf("store: %w", WithCode(CodeUnknownSender, errors.New("who are you"))))
			},
			wantText: "store: who are you",
			wantCode: CodeUnknownSender,
		},
		"error from another goroutine": {
			handler: func(_ []byte, respond func([]byte, error)) {
				go respond([]byte("ignored"), fmt.Errorf("disk: %w", io.ErrShortWrite))
			},
			wantText: "disk: short write",
			wantCode: CodeOther,
		},
		"second respond ignored": {
			handler: func(_ []byte, respond func([]byte, error)) {
				respond([]byte("first"), nil)
				respond([]byte("second"), nil)
			},
			want: "first",
		},
		"empty response": {
			handler: func(_ []byte, respond func([]byte, error)) { respond(nil, nil) },
			want:    "",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			b := tpNew(t, "b", tpFunc(func(_ string, body []byte, respond func([]byte, error)) {
				tc.handler(body, respond)
			}), nil)
			a := tpNew(t, "a", nil, nil)
			for range 2 { // and the connection stays usable
				got, err := a.Request(tpCtx(t), "b", b.Addr(), []byte("req"))
				if tc.wantText != "" {
					re, ok := errors.AsType[*RemoteError](err)
					if !ok || re.Msg != tc.wantText || err.Error() != tc.wantText || re.Code != tc.wantCode || CodeOf(err) != tc.wantCode {
						t.Fatalf("err = %v (%T), want *RemoteError %q with code %v", err, err, tc.wantText, tc.wantCode)
					}
					continue
				}
				if err != nil || string(got) != tc.want {
					t.Fatalf("got %q, %v; want %q", got, err, tc.want)
				}
			}
		})
	}
}

func TestTransportNilHandlerAnswersError(t *testing.T) {
	a, b := tpNew(t, "a", nil, nil), tpNew(t, "b", nil, nil)
	_, err := a.Request(tpCtx(t), "b", b.Addr(), []byte("x"))
	if re, ok := errors.AsType[*RemoteError](err); !ok || re.Msg != errNoHandler.Error() || re.Code != CodeNoHandler {
		t.Fatalf("err = %v, want RemoteError %q with code %v", err, errNoHandler, CodeNoHandler)
	}
}

func TestTransportPayloadLimits(t *testing.T) {
	const maxPayload = 64 << 10
	b := tpNew(t, "b", tpFunc(func(_ string, body []byte, respond func([]byte, error)) {
		if string(body) == "big response" {
			respond(make([]byte, maxPayload), nil)
			return
		}
		respond([]byte(fmt.Sprint(len(body))), nil)
	}), func(c *TransportConfig) { c.MaxPayload = maxPayload })
	a := tpNew(t, "a", nil, func(c *TransportConfig) { c.MaxPayload = maxPayload })
	ctx := tpCtx(t)

	tests := map[string]struct {
		body     []byte
		want     string
		wantErr  error
		wantText string
	}{
		"largest body":      {body: make([]byte, maxPayload-requestHdrLen), want: fmt.Sprint(maxPayload - requestHdrLen)},
		"body one too many": {body: make([]byte, maxPayload-requestHdrLen+1), wantErr: ErrFrameTooLarge},
		"response too large": {
			body:     []byte("big response"),
			wantText: fmt.Sprintf("relay: response of %d bytes is over the maximum of %d", maxPayload, maxPayload-responseHdrLen),
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := a.Request(ctx, "b", b.Addr(), tc.body)
			switch {
			case tc.wantErr != nil:
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
			case tc.wantText != "":
				if re, ok := errors.AsType[*RemoteError](err); !ok || re.Msg != tc.wantText || re.Code != CodeResponseTooLarge {
					t.Fatalf("err = %v, want RemoteError %q with code %v", err, tc.wantText, CodeResponseTooLarge)
				}
			case err != nil || string(got) != tc.want:
				t.Fatalf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
	// None of this broke the connection.
	if s := a.Stats(); s.ConnsOut != 1 || a.dialCount() != 1 || len(s.Rejected)+len(b.Stats().Rejected) != 0 {
		t.Fatalf("stats %+v, %d dials", s, a.dialCount())
	}
}

func TestTransportLargeBodiesPipelined(t *testing.T) {
	// 24 MiB in flight: more than the send buffer holds, so senders wait for the writer and
	// the server throttles its reading while its responses queue.
	const n, size = 48, 512 << 10
	a, b := tpNew(t, "a", nil, nil), tpNew(t, "b", tpEcho, nil)
	ctx := tpCtx(t)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body := bytes.Repeat([]byte{byte(i)}, size)
			got, err := a.Request(ctx, "b", b.Addr(), body)
			if err == nil && !bytes.Equal(got, body) {
				err = fmt.Errorf("request %d: wrong response", i)
			}
			if err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// A request body sent in two parts, its large tail referenced rather than copied when the
// sending goroutine writes it (conn.drainLocked), must be on the wire, or copied, by the time
// startRequest returns: the caller may reuse its memory at once. Concurrent senders make
// both paths happen (a direct write with the MAC after the body, and a copy queued behind
// another goroutine's write).
func TestTransportRequestTailNotRetained(t *testing.T) {
	const senders, rounds = 8, 20
	a, b := tpNew(t, "a", nil, nil), tpNew(t, "b", tpEcho, nil)
	ctx := tpCtx(t)
	var wg sync.WaitGroup
	errs := make(chan error, senders)
	for s := range senders {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(s), 7))
			tail := make([]byte, lateMACMin+s*1000)
			for r := range rounds {
				head := []byte(fmt.Sprintf("sender %d round %d:", s, r))
				for i := range tail {
					tail[i] = byte(rng.Uint32())
				}
				want := append(bytes.Clone(head), tail...)
				cl, err := a.StartRequest(ctx, "b", b.Addr(), head, tail)
				if err != nil {
					errs <- err
					return
				}
				clear(tail) // the caller's memory is its own again
				got, err := cl.Wait(ctx)
				if err == nil && !bytes.Equal(got, want) {
					err = fmt.Errorf("sender %d round %d: the peer got a body that differs from the one sent", s, r)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func TestTransportWrongKey(t *testing.T) {
	a := tpNew(t, "a", tpEcho, nil)
	intruder := tpNew(t, "intruder", nil, func(c *TransportConfig) { c.Key = otherKey })
	_, err := intruder.Request(tpCtx(t), "a", a.Addr(), []byte("let me in"))
	if !errors.Is(err, ErrUnreachable) {
		t.Fatalf("err = %v, want ErrUnreachable", err)
	}
	if got := a.Stats().Rejected; got["bad-mac"] != 1 || len(got) != 1 {
		t.Fatalf("rejected %v, want bad-mac 1", got)
	}
	tpMustServe(t, a)
}

func TestTransportPeerMismatch(t *testing.T) {
	a, b := tpNew(t, "a", nil, nil), tpNew(t, "b", tpEcho, nil)
	ctx := tpCtx(t)
	for i := range 2 { // the second one is in backoff, and still says why
		if _, err := a.Request(ctx, "x", b.Addr(), []byte("hi")); !errors.Is(err, ErrPeerMismatch) {
			t.Fatalf("attempt %d: err = %v, want ErrPeerMismatch", i, err)
		}
	}
	if got, err := a.Request(ctx, "b", b.Addr(), []byte("hi")); err != nil || string(got) != "hi" {
		t.Fatalf("request to the right id: %q, %v", got, err)
	}
	if r := b.Stats().Rejected; len(r) != 0 {
		t.Fatalf("a mismatch is not a rejection: %v", r)
	}
}

// tpClock is a settable clock for the dial backoff.
type tpClock struct{ off atomic.Int64 }

var tpClockBase = time.Now()

func (c *tpClock) now() time.Time          { return tpClockBase.Add(time.Duration(c.off.Load())) }
func (c *tpClock) advance(d time.Duration) { c.off.Add(int64(d)) }

func TestTransportPeerGoneBacksOff(t *testing.T) {
	const maxBackoff = 150 * time.Millisecond
	a := tpNew(t, "a", nil, func(c *TransportConfig) { c.MaxBackoff = maxBackoff })
	clock := &tpClock{}
	a.clock = clock.now
	b := tpNew(t, "b", tpEcho, nil)
	ctx := tpCtx(t)
	if _, err := a.Request(ctx, "b", b.Addr(), []byte("hi")); err != nil {
		t.Fatal(err)
	}
	addr := b.Addr()
	b.Close()
	testutil.WaitForEvery(t, tpPoll, 10*time.Second, "a to have no outgoing connection", func() bool { return a.Stats().ConnsOut == 0 })

	backoffOf := func() time.Duration {
		a.mu.Lock()
		defer a.mu.Unlock()
		if p := a.peers["b"]; p != nil {
			return p.backoff
		}
		return 0
	}
	// Each failed dial doubles the backoff from 50ms up to MaxBackoff; in between, requests
	// fail at once without dialling.
	for i, want := range []time.Duration{50 * time.Millisecond, 100 * time.Millisecond, maxBackoff, maxBackoff} {
		dials := a.dialCount()
		if _, err := a.Request(ctx, "b", addr, []byte("hi")); !errors.Is(err, ErrUnreachable) {
			t.Fatalf("dial %d: err = %v, want ErrUnreachable", i, err)
		}
		if got := a.dialCount(); got != dials+1 {
			t.Fatalf("dial %d: %d dials, want %d", i, got, dials+1)
		}
		if got := backoffOf(); got != want {
			t.Fatalf("dial %d: backoff %v, want %v", i, got, want)
		}
		for range 5 {
			_, err := a.Request(ctx, "b", addr, []byte("hi"))
			if !errors.Is(err, ErrUnreachable) || !strings.Contains(err.Error(), "next try in") {
				t.Fatalf("in backoff: err = %v, want a fast ErrUnreachable", err)
			}
		}
		clock.advance(want - time.Millisecond)
		if _, err := a.Request(ctx, "b", addr, []byte("hi")); !errors.Is(err, ErrUnreachable) || a.dialCount() != dials+1 {
			t.Fatalf("just before the backoff ends: err = %v, %d dials", err, a.dialCount())
		}
		clock.advance(time.Millisecond)
	}

	// The peer comes back on the same port: the next request after the backoff dials and
	// succeeds, and resets the backoff.
	b2 := tpNew(t, "b", tpEcho, func(c *TransportConfig) { c.ListenAddr = addr })
	if got, err := a.Request(ctx, "b", b2.Addr(), []byte("back")); err != nil || string(got) != "back" {
		t.Fatalf("after the peer came back: %q, %v", got, err)
	}
	if got := backoffOf(); got != 0 {
		t.Fatalf("backoff %v after a good dial, want 0", got)
	}
}

func TestTransportPeerRestart(t *testing.T) {
	a := tpNew(t, "a", nil, nil)
	held := make(chan func([]byte, error), 1)
	b := tpNew(t, "b", tpFunc(func(_ string, body []byte, respond func([]byte, error)) {
		if string(body) == "hold" {
			held <- respond // never answered: the peer goes away first
			return
		}
		respond(bytes.Clone(body), nil)
	}), nil)
	ctx := tpCtx(t)
	addr := b.Addr()
	if _, err := a.Request(ctx, "b", addr, []byte("hi")); err != nil {
		t.Fatal(err)
	}
	inFlight := make(chan error, 1)
	go func() {
		_, err := a.Request(ctx, "b", addr, []byte("hold"))
		inFlight <- err
	}()
	respond := <-held
	b.Close()
	if err := <-inFlight; !errors.Is(err, ErrUnreachable) {
		t.Fatalf("in-flight request: err = %v, want ErrUnreachable", err)
	}
	respond([]byte("too late"), nil) // after Close: does nothing
	testutil.WaitForEvery(t, tpPoll, 10*time.Second, "a to have no outgoing connection", func() bool { return a.Stats().ConnsOut == 0 })

	b2 := tpNew(t, "b", tpEcho, func(c *TransportConfig) { c.ListenAddr = addr })
	if got, err := a.Request(ctx, "b", addr, []byte("again")); err != nil || string(got) != "again" {
		t.Fatalf("after restart: %q, %v", got, err)
	}
	if a.dialCount() != 2 || b2.Stats().ConnsIn != 1 {
		t.Fatalf("want exactly one re-dial: %d dials, b2 %+v", a.dialCount(), b2.Stats())
	}
}

func TestTransportPeerMovesAddress(t *testing.T) {
	a := tpNew(t, "a", nil, nil)
	b1, b2 := tpNew(t, "b", tpEcho, nil), tpNew(t, "b", tpEcho, nil)
	ctx := tpCtx(t)
	for _, b := range []*Transport{b1, b2, b1} {
		if got, err := a.Request(ctx, "b", b.Addr(), []byte("hi")); err != nil || string(got) != "hi" {
			t.Fatalf("request to b at %s: %q, %v", b.Addr(), got, err)
		}
	}
	// The connection to the old address is dropped, not kept alongside.
	if s := a.Stats(); s.ConnsOut != 1 {
		t.Fatalf("stats %+v, want one outbound connection", s)
	}
}

// tpHolding starts a transport that echoes every request but "hold", whose respond func it
// passes on held instead of answering.
func tpHolding(t *testing.T) (b *Transport, held chan func([]byte, error)) {
	held = make(chan func([]byte, error), 1)
	b = tpNew(t, "b", tpFunc(func(_ string, body []byte, respond func([]byte, error)) {
		if string(body) == "hold" {
			held <- respond
			return
		}
		respond(bytes.Clone(body), nil)
	}), nil)
	return b, held
}

func TestTransportContextEnds(t *testing.T) {
	b, held := tpHolding(t)
	a := tpNew(t, "a", nil, nil)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := a.Request(ctx, "b", b.Addr(), []byte("hold"))
		done <- err
	}()
	respond := <-held
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	respond([]byte("late"), nil) // dropped by a, without counting it as a violation

	if got, err := a.Request(tpCtx(t), "b", b.Addr(), []byte("next")); err != nil || string(got) != "next" {
		t.Fatalf("next request: %q, %v", got, err)
	}
	if s := a.Stats(); len(s.Rejected) != 0 || s.ConnsOut != 1 || a.dialCount() != 1 {
		t.Fatalf("the late response hurt the connection: %+v, %d dials", s, a.dialCount())
	}
	// A context that already ended sends nothing.
	if _, err := a.Request(ctx, "b", b.Addr(), []byte("x")); !errors.Is(err, context.Canceled) {
		t.Fatalf("ended context: err = %v", err)
	}
}

// A request's own timeout (call.waitFor) ends the wait like a context deadline, the late
// answer is dropped, and the pooled call and its timer serve the next requests.
func TestTransportRequestTimeout(t *testing.T) {
	b, held := tpHolding(t)
	a := tpNew(t, "a", nil, nil)
	ctx := tpCtx(t)
	_, err := a.RequestParts(ctx, "b", b.Addr(), []byte("hold"), nil, 50*time.Millisecond)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want one wrapping context.DeadlineExceeded", err)
	}
	(<-held)([]byte("late"), nil)
	for i := range 100 { // answered well within their timeouts, one call reused
		want := fmt.Sprint("next ", i)
		if got, err := a.RequestParts(ctx, "b", b.Addr(), []byte(want), nil, 5*time.Second); err != nil || string(got) != want {
			t.Fatalf("request %d: %q, %v", i, got, err)
		}
	}
	if s := a.Stats(); len(s.Rejected) != 0 || s.ConnsOut != 1 {
		t.Fatalf("the late response hurt the connection: %+v", s)
	}
}

func TestTransportClose(t *testing.T) {
	held := make(chan func([]byte, error), 1)
	b := tpNew(t, "b", tpFunc(func(_ string, _ []byte, respond func([]byte, error)) { held <- respond }), nil)
	a := tpNew(t, "a", nil, nil)
	done := make(chan error, 1)
	go func() {
		_, err := a.Request(context.Background(), "b", b.Addr(), []byte("wait"))
		done <- err
	}()
	respond := <-held
	if err := a.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := <-done; !errors.Is(err, ErrClosed) {
		t.Fatalf("waiting Request: err = %v, want ErrClosed", err)
	}
	if err := a.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := a.Request(context.Background(), "b", b.Addr(), nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("Request after Close: err = %v, want ErrClosed", err)
	}
	testutil.WaitForEvery(t, tpPoll, 10*time.Second, "b to have no incoming connection", func() bool { return b.Stats().ConnsIn == 0 })
	respond(nil, nil) // the connection is gone: nothing happens
	if s := a.Stats(); s.ConnsIn != 0 || s.ConnsOut != 0 {
		t.Fatalf("stats after Close: %+v", s)
	}
}

func TestTransportCloseAbortsHandshake(t *testing.T) {
	// A server that accepts and never answers the hello: Close must not wait for the
	// handshake timeout.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		nc, err := ln.Accept()
		if err == nil {
			accepted <- nc
		}
	}()
	a := tpNew(t, "a", nil, func(c *TransportConfig) { c.HandshakeTimeout = time.Hour })
	done := make(chan error, 1)
	go func() {
		_, err := a.Request(context.Background(), "b", ln.Addr().String(), nil)
		done <- err
	}()
	nc := <-accepted
	defer nc.Close()
	a.Close()
	if err := <-done; !errors.Is(err, ErrClosed) {
		t.Fatalf("err = %v, want ErrClosed", err)
	}
}

func TestTransportServerHandshakeTimeout(t *testing.T) {
	a := tpNew(t, "a", tpEcho, func(c *TransportConfig) { c.HandshakeTimeout = 50 * time.Millisecond })
	nc, err := net.Dial("tcp", a.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	tpExpectClosed(t, nc) // says nothing: dropped after the timeout
	if got := a.Stats().Rejected; got["handshake"] != 1 {
		t.Fatalf("rejected %v, want handshake 1", got)
	}
	tpMustServe(t, a)
}

func TestNewTransportConfig(t *testing.T) {
	tests := map[string]struct {
		mod     func(*TransportConfig)
		wantErr string
	}{
		"defaults":           {},
		"empty id":           {mod: func(c *TransportConfig) { c.ID = "" }, wantErr: "must be 1-255 bytes"},
		"long id":            {mod: func(c *TransportConfig) { c.ID = strings.Repeat("x", 256) }, wantErr: "must be 1-255 bytes"},
		"id not utf-8":       {mod: func(c *TransportConfig) { c.ID = "\xff" }, wantErr: "UTF-8"},
		"short key":          {mod: func(c *TransportConfig) { c.Key = testKey[:31] }, wantErr: "key is 31 bytes"},
		"negative timeout":   {mod: func(c *TransportConfig) { c.DialTimeout = -1 }, wantErr: "DialTimeout"},
		"negative backoff":   {mod: func(c *TransportConfig) { c.MaxBackoff = -1 }, wantErr: "MaxBackoff"},
		"tiny max payload":   {mod: func(c *TransportConfig) { c.MaxPayload = 100 }, wantErr: "MaxPayload"},
		"bad listen address": {mod: func(c *TransportConfig) { c.ListenAddr = "127.0.0.1:99999" }, wantErr: "listen on"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			cfg := TransportConfig{ID: "a", Key: testKey}
			if tc.mod != nil {
				tc.mod(&cfg)
			}
			tr, err := NewTransport(cfg)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				defer tr.Close()
				if c := tr.cfg; c.DialTimeout != DefaultDialTimeout || c.HandshakeTimeout != DefaultHandshakeTimeout ||
					c.MaxBackoff != DefaultMaxBackoff || tr.codec.MaxPayload() != DefaultMaxPayload ||
					!strings.HasPrefix(tr.Addr(), "127.0.0.1:") {
					t.Fatalf("defaults not applied: %+v at %s", c, tr.Addr())
				}
				return
			}
			if err == nil {
				tr.Close()
				t.Fatalf("NewTransport succeeded, want an error containing %q", tc.wantErr)
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.wantErr)
			}
		})
	}
}

func TestTransportRejectLogIsRateLimited(t *testing.T) {
	h := &tpCountHandler{}
	tr := tpNew(t, "a", nil, func(c *TransportConfig) { c.Logger = slog.New(h) })
	flood := &net.TCPAddr{IP: net.IPv4(10, 0, 0, 1), Port: 1}
	for i := range 250 {
		flood.Port = 1000 + i // a new connection each time: the port does not matter
		tr.reject(reasonBadMAC, flood, "", ErrBadMAC)
	}
	tr.reject(reasonStale, &net.TCPAddr{IP: net.IPv4(10, 0, 0, 2), Port: 1}, "", ErrStale)
	if got := h.warns.Load(); got != 4 { // rejections 1, 100 and 200 of the flood, and the other host's first
		t.Fatalf("%d Warn lines, want 4", got)
	}
	if r := tr.Stats().Rejected; r["bad-mac"] != 250 || r["stale"] != 1 {
		t.Fatalf("rejected %v", r)
	}
}

type tpCountHandler struct{ warns atomic.Int64 }

func (h *tpCountHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *tpCountHandler) Handle(_ context.Context, r slog.Record) error {
	if r.Level == slog.LevelWarn {
		h.warns.Add(1)
	}
	return nil
}
func (h *tpCountHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *tpCountHandler) WithGroup(string) slog.Handler      { return h }

// tpRaw is a hand-driven client connection for feeding a transport bad input.
type tpRaw struct {
	t       *testing.T
	srv     *Transport
	nc      net.Conn
	br      *bufio.Reader
	codec   *Codec
	session [sessionLen]byte
}

func tpDialRaw(t *testing.T, srv *Transport) *tpRaw {
	t.Helper()
	nc, err := net.Dial("tcp", srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
	return &tpRaw{t: t, srv: srv, nc: nc, br: bufio.NewReader(nc), codec: newTestCodec(t, CodecConfig{Now: time.Now})}
}

func (r *tpRaw) send(b []byte) {
	r.t.Helper()
	if _, err := r.nc.Write(b); err != nil {
		r.t.Fatalf("raw write: %v", err)
	}
}

func (r *tpRaw) encode(c *Codec, typ FrameType, nonce [16]byte, payload []byte) []byte {
	r.t.Helper()
	b, err := c.AppendFrame(nil, &Frame{Type: typ, Time: time.Now(), Nonce: nonce, Payload: payload})
	if err != nil {
		r.t.Fatal(err)
	}
	return b
}

// hello is a valid hello frame for the server, with a random nonce and session.
func (r *tpRaw) hello() []byte {
	return r.encode(r.codec, frameHello, NewNonce(), appendHello(nil, hello{clientID: "raw", serverID: r.srv.cfg.ID, session: randomSession()}))
}

// handshake opens the session the way a real client does.
func (r *tpRaw) handshake() {
	r.t.Helper()
	h := hello{clientID: "raw", serverID: r.srv.cfg.ID, session: randomSession()}
	r.send(r.encode(r.codec, frameHello, NewNonce(), appendHello(nil, h)))
	f, _, err := r.codec.ReadFrame(r.br, nil)
	if err != nil {
		r.t.Fatalf("raw handshake: %v", err)
	}
	ack, err := decodeHelloAck(f.Payload)
	if err != nil || f.Type != frameHelloAck || ack.clientSession != h.session {
		r.t.Fatalf("raw handshake: ack %+v type %d: %v", ack, f.Type, err)
	}
	r.session = xorSessions(h.session, ack.serverSession)
}

func (r *tpRaw) request(seq, id uint64, body string) []byte {
	return r.encode(r.codec, frameRequest, sessionNonce(r.session, seq), append(binary.BigEndian.AppendUint64(nil, id), body...))
}

// tpExpectClosed reads until the peer closes nc (EOF or reset), failing on a timeout.
func tpExpectClosed(t *testing.T, nc net.Conn) {
	t.Helper()
	_ = nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err := io.Copy(io.Discard, nc)
	if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
		t.Fatal("the connection was not closed")
	}
}

func TestTransportRejectsBadInput(t *testing.T) {
	tests := map[string]struct {
		reason string
		feed   func(r *tpRaw)
	}{
		"http request": {reason: "too-large", feed: func(r *tpRaw) {
			r.send([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n")) // "GET " is a 1.2 GB length
		}},
		"garbage body": {reason: "bad-mac", feed: func(r *tpRaw) {
			body := bytes.Repeat([]byte{0x5a}, 200)
			body[0], body[1] = FrameVersion, byte(frameHello)
			r.send(withPrefix(body))
		}},
		"oversize length": {reason: "too-large", feed: func(r *tpRaw) {
			r.send([]byte{0xff, 0xff, 0xff, 0xff, 1, 1})
		}},
		"length below a frame": {reason: "truncated", feed: func(r *tpRaw) {
			r.send(withPrefix([]byte{1, 1, 0, 0, 0}))
		}},
		"truncated frame": {reason: "truncated", feed: func(r *tpRaw) {
			h := r.hello()
			r.send(h[:len(h)-10])
			if err := r.nc.(*net.TCPConn).CloseWrite(); err != nil {
				r.t.Fatal(err)
			}
		}},
		"replayed hello": {reason: "replay", feed: func(r *tpRaw) {
			h := r.hello()
			first := tpDialRaw(r.t, r.srv)
			first.send(h)
			if f, _, err := first.codec.ReadFrame(first.br, nil); err != nil || f.Type != frameHelloAck {
				r.t.Fatalf("the original hello was not answered: %v", err)
			}
			r.send(h) // recorded and sent again
		}},
		"stale hello": {reason: "stale", feed: func(r *tpRaw) {
			old := newTestCodec(r.t, CodecConfig{Now: func() time.Time { return time.Now().Add(-10 * time.Minute) }})
			b, err := old.AppendFrame(nil, &Frame{Type: frameHello, Time: time.Now().Add(-10 * time.Minute), Nonce: NewNonce(),
				Payload: appendHello(nil, hello{clientID: "raw", serverID: "srv", session: randomSession()})})
			if err != nil {
				r.t.Fatal(err)
			}
			r.send(b)
		}},
		"unknown frame version": {reason: "bad-version", feed: func(r *tpRaw) {
			h := r.hello()
			h[lenPrefixLen+offVersion] = FrameVersion + 1
			reseal(h[lenPrefixLen:], testKey)
			r.send(h)
		}},
		"frame type 0": {reason: "bad-type", feed: func(r *tpRaw) {
			h := r.hello()
			h[lenPrefixLen+offType] = 0
			reseal(h[lenPrefixLen:], testKey)
			r.send(h)
		}},
		"unknown hello version": {reason: "bad-version", feed: func(r *tpRaw) {
			p := appendHello(nil, hello{clientID: "raw", serverID: "srv", session: randomSession()})
			p[0] = handshakeVersion + 1
			r.send(r.encode(r.codec, frameHello, NewNonce(), p))
		}},
		"malformed hello": {reason: "handshake", feed: func(r *tpRaw) {
			p := appendHello(nil, hello{clientID: "raw", serverID: "srv", session: randomSession()})
			r.send(r.encode(r.codec, frameHello, NewNonce(), p[:len(p)-1]))
		}},
		"request before hello": {reason: "handshake", feed: func(r *tpRaw) {
			r.send(r.request(1, 1, "sneaky"))
		}},
		"skipped sequence number": {reason: "sequence", feed: func(r *tpRaw) {
			r.handshake()
			r.send(r.request(2, 1, "skipped one"))
		}},
		"replayed request": {reason: "sequence", feed: func(r *tpRaw) {
			r.handshake()
			req := r.request(1, 1, "once")
			r.send(req)
			if f, _, err := r.codec.ReadFrame(r.br, nil); err != nil || f.Type != frameResponse {
				r.t.Fatalf("the original request was not answered: %v", err)
			}
			r.send(req)
		}},
		"frame from another session": {reason: "sequence", feed: func(r *tpRaw) {
			r.handshake()
			r.session[0] ^= 1
			r.send(r.request(1, 1, "elsewhere"))
		}},
		"response on a served connection": {reason: "protocol", feed: func(r *tpRaw) {
			r.handshake()
			r.send(r.encode(r.codec, frameResponse, sessionNonce(r.session, 1), make([]byte, responseHdrLen)))
		}},
		"short request": {reason: "protocol", feed: func(r *tpRaw) {
			r.handshake()
			r.send(r.encode(r.codec, frameRequest, sessionNonce(r.session, 1), []byte{0, 0, 1}))
		}},
		"request id 0": {reason: "protocol", feed: func(r *tpRaw) {
			r.handshake()
			r.send(r.request(1, 0, "zero"))
		}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			srv := tpNew(t, "srv", tpEcho, nil)
			r := tpDialRaw(t, srv)
			tc.feed(r)
			tpExpectClosed(t, r.nc)
			testutil.WaitForEvery(t, tpPoll, 10*time.Second, "the rejection to be counted", func() bool { return srv.Stats().Rejected[tc.reason] == 1 })
			if got := srv.Stats().Rejected; len(got) != 1 {
				t.Fatalf("rejected %v, want only %s", got, tc.reason)
			}
			tpMustServe(t, srv)
		})
	}
}

// tpRawServer accepts one connection, reads the hello, and lets serve answer it.
func tpRawServer(t *testing.T, serve func(nc net.Conn, c *Codec, h hello, nonce [16]byte)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { ln.Close(); <-done })
	go func() {
		defer close(done)
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		defer nc.Close()
		c, _ := NewCodec(CodecConfig{Key: testKey})
		f, _, err := c.ReadFrame(nc, nil)
		if err != nil {
			return
		}
		h, err := decodeHello(f.Payload)
		if err != nil {
			return
		}
		serve(nc, c, h, f.Nonce)
		// Hold the connection until the client is done with it.
		_, _ = io.Copy(io.Discard, nc)
	}()
	return ln.Addr().String()
}

func tpWrite(nc net.Conn, c *Codec, typ FrameType, nonce [16]byte, payload []byte) {
	b, err := c.AppendFrame(nil, &Frame{Type: typ, Time: time.Now(), Nonce: nonce, Payload: payload})
	if err == nil {
		_, _ = nc.Write(b)
	}
}

func TestTransportClientRejectsBadServer(t *testing.T) {
	serverSession := [sessionLen]byte{1, 2, 3, 4, 5, 6, 7, 8}
	ack := func(nc net.Conn, c *Codec, h hello, mod func(*helloAck)) [sessionLen]byte {
		a := helloAck{serverID: h.serverID, clientSession: h.session, serverSession: serverSession}
		if mod != nil {
			mod(&a)
		}
		s := xorSessions(h.session, serverSession)
		tpWrite(nc, c, frameHelloAck, sessionNonce(s, 0), appendHelloAck(nil, a))
		return s
	}
	response := func(id uint64, body string) []byte {
		return append(append(binary.BigEndian.AppendUint64(nil, id), statusOK), body...)
	}
	tests := map[string]struct {
		serve   func(nc net.Conn, c *Codec, h hello, nonce [16]byte)
		wantErr error
		reason  string // counted by the client; "" for none
	}{
		"ack echoes another session": {
			serve: func(nc net.Conn, c *Codec, h hello, _ [16]byte) {
				ack(nc, c, h, func(a *helloAck) { a.clientSession[0] ^= 1 })
			},
			wantErr: ErrUnreachable, reason: "handshake",
		},
		"hello sent back as the ack": {
			serve: func(nc net.Conn, c *Codec, h hello, nonce [16]byte) {
				tpWrite(nc, c, frameHello, nonce, appendHello(nil, h))
			},
			wantErr: ErrUnreachable, reason: "handshake",
		},
		"ack from another peer": {
			serve: func(nc net.Conn, c *Codec, h hello, _ [16]byte) {
				ack(nc, c, h, func(a *helloAck) { a.serverID = "someone-else" })
			},
			wantErr: ErrPeerMismatch,
		},
		"ack of another version": {
			serve: func(nc net.Conn, c *Codec, h hello, _ [16]byte) {
				s := xorSessions(h.session, serverSession)
				p := appendHelloAck(nil, helloAck{serverID: h.serverID, clientSession: h.session, serverSession: serverSession})
				p[0] = handshakeVersion + 1
				tpWrite(nc, c, frameHelloAck, sessionNonce(s, 0), p)
			},
			wantErr: ErrUnreachable, reason: "bad-version",
		},
		"closed without an ack": {
			serve:   func(nc net.Conn, _ *Codec, _ hello, _ [16]byte) { nc.Close() },
			wantErr: ErrUnreachable,
		},
		"response out of sequence": {
			serve: func(nc net.Conn, c *Codec, h hello, _ [16]byte) {
				s := ack(nc, c, h, nil)
				tpWrite(nc, c, frameResponse, sessionNonce(s, 2), response(1, "x"))
			},
			wantErr: ErrUnreachable, reason: "sequence",
		},
		"response to a request never sent": {
			serve: func(nc net.Conn, c *Codec, h hello, _ [16]byte) {
				s := ack(nc, c, h, nil)
				tpWrite(nc, c, frameResponse, sessionNonce(s, 1), response(99, "x"))
			},
			wantErr: ErrUnreachable, reason: "protocol",
		},
		"request on a dialled connection": {
			serve: func(nc net.Conn, c *Codec, h hello, _ [16]byte) {
				s := ack(nc, c, h, nil)
				tpWrite(nc, c, frameRequest, sessionNonce(s, 1), response(1, "x"))
			},
			wantErr: ErrUnreachable, reason: "protocol",
		},
		"bad status": {
			serve: func(nc net.Conn, c *Codec, h hello, _ [16]byte) {
				s := ack(nc, c, h, nil)
				p := response(1, "x")
				p[8] = 7
				tpWrite(nc, c, frameResponse, sessionNonce(s, 1), p)
			},
			wantErr: ErrUnreachable, reason: "protocol",
		},
		"good server": {
			serve: func(nc net.Conn, c *Codec, h hello, _ [16]byte) {
				s := ack(nc, c, h, nil)
				if _, _, err := c.ReadFrame(nc, nil); err != nil { // the request
					return
				}
				tpWrite(nc, c, frameResponse, sessionNonce(s, 1), response(1, "fine"))
			},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			addr := tpRawServer(t, tc.serve)
			a := tpNew(t, "a", nil, nil)
			got, err := a.Request(tpCtx(t), "b", addr, []byte("hi"))
			if tc.wantErr == nil {
				if err != nil || string(got) != "fine" {
					t.Fatalf("got %q, %v", got, err)
				}
				return
			}
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			rej := a.Stats().Rejected
			if tc.reason == "" && len(rej) != 0 || tc.reason != "" && (rej[tc.reason] != 1 || len(rej) != 1) {
				t.Fatalf("rejected %v, want %q", rej, tc.reason)
			}
			// A connection that failed at once is not re-dialled by the same request.
			if n := a.dialCount(); n != 1 {
				t.Fatalf("%d dials, want 1", n)
			}
			if tc.reason != "" { // and a peer that sent a refused frame is in backoff
				if _, err := a.Request(tpCtx(t), "b", addr, nil); !errors.Is(err, ErrUnreachable) || a.dialCount() != 1 {
					t.Fatalf("after a refused frame: err = %v, %d dials; want a fast ErrUnreachable", err, a.dialCount())
				}
			}
		})
	}
}

func TestTransportLimitsPendingHandshakes(t *testing.T) {
	srv := tpNew(t, "srv", tpEcho, nil)
	idle := make([]net.Conn, 0, maxHandshaking)
	defer func() {
		for _, nc := range idle {
			nc.Close()
		}
	}()
	for range maxHandshaking {
		nc, err := net.Dial("tcp", srv.Addr())
		if err != nil {
			t.Fatal(err)
		}
		idle = append(idle, nc)
	}
	testutil.WaitForEvery(t, tpPoll, 10*time.Second, "maxHandshaking handshakes in progress", func() bool {
		srv.mu.Lock()
		defer srv.mu.Unlock()
		return len(srv.handshaking) == maxHandshaking
	})
	extra, err := net.Dial("tcp", srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer extra.Close()
	tpExpectClosed(t, extra)
	if got := srv.Stats().Rejected; got["handshake"] != 1 || len(got) != 1 {
		t.Fatalf("rejected %v, want handshake 1", got)
	}
	for _, nc := range idle {
		nc.Close()
	}
	testutil.WaitForEvery(t, tpPoll, 10*time.Second, "no handshake in progress", func() bool {
		srv.mu.Lock()
		defer srv.mu.Unlock()
		return len(srv.handshaking) == 0
	})
	tpMustServe(t, srv)
}
