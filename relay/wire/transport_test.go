package wire

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/paf-mesh/paf-mesh/internal/testutil"
)

// tpPoll is how often the waits here look: a transport's state changes within a millisecond
// or two on loopback.
const tpPoll = time.Millisecond

// tpFunc adapts a function to Handler.
type tpFunc func(from string, body []byte, respond func([]byte, error))

func (f tpFunc) HandleRequest(from string, _ netip.Addr, body []byte, respond func([]byte, error)) {
	f(from, body, respond)
}

// tpEcho answers every request with a copy of its body (the body is only valid during the
// call).
var tpEcho = tpFunc(func(_ string, body []byte, respond func([]byte, error)) {
	respond(bytes.Clone(body), nil)
})

// tpNew starts the transport of the test peer named id (its id is tid(id), its identity
// testIdentity(id)) with testKey on loopback port 0, closed at the end of the test.
func tpNew(tb testing.TB, id string, h Handler, mod func(*Config)) *Transport {
	tb.Helper()
	cfg := Config{ID: tid(id), Identity: testIdentity(id), Key: testKey, ListenAddr: "127.0.0.1:0", Handler: h, Logger: testutil.Logger(tb, slog.LevelDebug)}
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
	names := map[string]string{tid("a"): "a", tid("b"): "b"}
	h := tpFunc(func(from string, body []byte, respond func([]byte, error)) {
		mu.Lock()
		froms[names[from]]++
		mu.Unlock()
		respond(append([]byte(names[from]+":"), body...), nil)
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
		if _, err := a.Request(tpCtx(t), tid("b"), b.Addr(), []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	// The server counts the last response when it queues it, before the client reads it.
	// Handshake messages are not frames: they are counted as one handshake on each side.
	sa, sb := a.Stats(), b.Stats()
	if sa.FramesOut != n || sa.FramesIn != n || sb.FramesIn != n || sb.FramesOut != n {
		t.Fatalf("frames: a out/in %d/%d, b in/out %d/%d; want %d each",
			sa.FramesOut, sa.FramesIn, sb.FramesIn, sb.FramesOut, n)
	}
	if sa.Handshakes != 1 || sb.Handshakes != 1 {
		t.Fatalf("handshakes: a %d, b %d; want 1 each", sa.Handshakes, sb.Handshakes)
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

func (h *tpOrderHandler) HandleRequest(_ string, _ netip.Addr, body []byte, respond func([]byte, error)) {
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
		cl, err := a.StartRequest(ctx, tid("b"), b.Addr(), tpOrderBody(uint64(i), 0), nil)
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
				cl, err := a.StartRequest(ctx, tid("b"), b.Addr(), body, nil)
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
			got, err := b.Request(ctx, tid("a"), a.Addr(), body)
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
				got, err := a.Request(tpCtx(t), tid("b"), b.Addr(), []byte("req"))
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
	_, err := a.Request(tpCtx(t), tid("b"), b.Addr(), []byte("x"))
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
	}), func(c *Config) { c.MaxPayload = maxPayload })
	a := tpNew(t, "a", nil, func(c *Config) { c.MaxPayload = maxPayload })
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
			got, err := a.Request(ctx, tid("b"), b.Addr(), tc.body)
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
			got, err := a.Request(ctx, tid("b"), b.Addr(), body)
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

// A request body sent in two parts must be sealed into the send buffer (or on the wire) by
// the time StartRequest returns: the caller may reuse its memory at once. Concurrent senders
// make both paths happen (a direct write, and a frame queued behind another goroutine's write).
func TestTransportRequestTailNotRetained(t *testing.T) {
	const senders, rounds = 8, 20
	a, b := tpNew(t, "a", nil, nil), tpNew(t, "b", tpEcho, nil)
	ctx := tpCtx(t)
	var wg sync.WaitGroup
	errs := make(chan error, senders)
	for s := range senders {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(s), 7))
			tail := make([]byte, 16<<10+s*1000)
			for r := range rounds {
				head := []byte(fmt.Sprintf("sender %d round %d:", s, r))
				for i := range tail {
					tail[i] = byte(rng.Uint32())
				}
				want := append(bytes.Clone(head), tail...)
				cl, err := a.StartRequest(ctx, tid("b"), b.Addr(), head, tail)
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
