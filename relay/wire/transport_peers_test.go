package wire

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/paf-mesh/paf-mesh/internal/testutil"
)

// Peers that fail, restart, move, answer late or not at all, and a Transport closing.

func TestTransportWrongKey(t *testing.T) {
	a := tpNew(t, "a", tpEcho, nil)
	intruder := tpNew(t, "intruder", nil, func(c *Config) { c.Key = otherKey })
	_, err := intruder.Request(tpCtx(t), tid("a"), a.Addr(), []byte("let me in"))
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
		if _, err := a.Request(ctx, tid("x"), b.Addr(), []byte("hi")); !errors.Is(err, ErrPeerMismatch) {
			t.Fatalf("attempt %d: err = %v, want ErrPeerMismatch", i, err)
		}
	}
	if got, err := a.Request(ctx, tid("b"), b.Addr(), []byte("hi")); err != nil || string(got) != "hi" {
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
	a := tpNew(t, "a", nil, func(c *Config) { c.MaxBackoff = maxBackoff })
	clock := &tpClock{}
	a.clock = clock.now
	b := tpNew(t, "b", tpEcho, nil)
	ctx := tpCtx(t)
	if _, err := a.Request(ctx, tid("b"), b.Addr(), []byte("hi")); err != nil {
		t.Fatal(err)
	}
	addr := b.Addr()
	b.Close()
	testutil.WaitForEvery(t, tpPoll, 10*time.Second, "a to have no outgoing connection", func() bool { return a.Stats().ConnsOut == 0 })

	backoffOf := func() time.Duration {
		a.mu.Lock()
		defer a.mu.Unlock()
		if p := a.peers[tid("b")]; p != nil {
			return p.backoff
		}
		return 0
	}
	// Each failed dial doubles the backoff from 50ms up to MaxBackoff; in between, requests
	// fail at once without dialling.
	for i, want := range []time.Duration{50 * time.Millisecond, 100 * time.Millisecond, maxBackoff, maxBackoff} {
		dials := a.dialCount()
		if _, err := a.Request(ctx, tid("b"), addr, []byte("hi")); !errors.Is(err, ErrUnreachable) {
			t.Fatalf("dial %d: err = %v, want ErrUnreachable", i, err)
		}
		if got := a.dialCount(); got != dials+1 {
			t.Fatalf("dial %d: %d dials, want %d", i, got, dials+1)
		}
		if got := backoffOf(); got != want {
			t.Fatalf("dial %d: backoff %v, want %v", i, got, want)
		}
		for range 5 {
			_, err := a.Request(ctx, tid("b"), addr, []byte("hi"))
			if !errors.Is(err, ErrUnreachable) || !strings.Contains(err.Error(), "next try in") {
				t.Fatalf("in backoff: err = %v, want a fast ErrUnreachable", err)
			}
		}
		clock.advance(want - time.Millisecond)
		if _, err := a.Request(ctx, tid("b"), addr, []byte("hi")); !errors.Is(err, ErrUnreachable) || a.dialCount() != dials+1 {
			t.Fatalf("just before the backoff ends: err = %v, %d dials", err, a.dialCount())
		}
		clock.advance(time.Millisecond)
	}

	// The peer comes back on the same port: the next request after the backoff dials and
	// succeeds, and resets the backoff.
	b2 := tpNew(t, "b", tpEcho, func(c *Config) { c.ListenAddr = addr })
	if got, err := a.Request(ctx, tid("b"), b2.Addr(), []byte("back")); err != nil || string(got) != "back" {
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
	if _, err := a.Request(ctx, tid("b"), addr, []byte("hi")); err != nil {
		t.Fatal(err)
	}
	inFlight := make(chan error, 1)
	go func() {
		_, err := a.Request(ctx, tid("b"), addr, []byte("hold"))
		inFlight <- err
	}()
	respond := <-held
	b.Close()
	if err := <-inFlight; !errors.Is(err, ErrUnreachable) {
		t.Fatalf("in-flight request: err = %v, want ErrUnreachable", err)
	}
	respond([]byte("too late"), nil) // after Close: does nothing
	testutil.WaitForEvery(t, tpPoll, 10*time.Second, "a to have no outgoing connection", func() bool { return a.Stats().ConnsOut == 0 })

	b2 := tpNew(t, "b", tpEcho, func(c *Config) { c.ListenAddr = addr })
	if got, err := a.Request(ctx, tid("b"), addr, []byte("again")); err != nil || string(got) != "again" {
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
		if got, err := a.Request(ctx, tid("b"), b.Addr(), []byte("hi")); err != nil || string(got) != "hi" {
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
		_, err := a.Request(ctx, tid("b"), b.Addr(), []byte("hold"))
		done <- err
	}()
	respond := <-held
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	respond([]byte("late"), nil) // dropped by a, without counting it as a violation

	if got, err := a.Request(tpCtx(t), tid("b"), b.Addr(), []byte("next")); err != nil || string(got) != "next" {
		t.Fatalf("next request: %q, %v", got, err)
	}
	if s := a.Stats(); len(s.Rejected) != 0 || s.ConnsOut != 1 || a.dialCount() != 1 {
		t.Fatalf("the late response hurt the connection: %+v, %d dials", s, a.dialCount())
	}
	// A context that already ended sends nothing.
	if _, err := a.Request(ctx, tid("b"), b.Addr(), []byte("x")); !errors.Is(err, context.Canceled) {
		t.Fatalf("ended context: err = %v", err)
	}
}

// A request's own timeout (call.waitFor) ends the wait like a context deadline, the late
// answer is dropped, and the pooled call and its timer serve the next requests.
func TestTransportRequestTimeout(t *testing.T) {
	b, held := tpHolding(t)
	a := tpNew(t, "a", nil, nil)
	ctx := tpCtx(t)
	_, err := a.RequestParts(ctx, tid("b"), b.Addr(), []byte("hold"), nil, 50*time.Millisecond)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want one wrapping context.DeadlineExceeded", err)
	}
	(<-held)([]byte("late"), nil)
	for i := range 100 { // answered well within their timeouts, one call reused
		want := fmt.Sprint("next ", i)
		if got, err := a.RequestParts(ctx, tid("b"), b.Addr(), []byte(want), nil, 5*time.Second); err != nil || string(got) != want {
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
		_, err := a.Request(context.Background(), tid("b"), b.Addr(), []byte("wait"))
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
	if _, err := a.Request(context.Background(), tid("b"), b.Addr(), nil); !errors.Is(err, ErrClosed) {
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
	a := tpNew(t, "a", nil, func(c *Config) { c.HandshakeTimeout = time.Hour })
	done := make(chan error, 1)
	go func() {
		_, err := a.Request(context.Background(), tid("b"), ln.Addr().String(), nil)
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
	a := tpNew(t, "a", tpEcho, func(c *Config) { c.HandshakeTimeout = 50 * time.Millisecond })
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
		mod     func(*Config)
		wantErr string
	}{
		"defaults":               {},
		"empty id":               {mod: func(c *Config) { c.ID = "" }, wantErr: "must be 1-255 bytes"},
		"long id":                {mod: func(c *Config) { c.ID = strings.Repeat("x", 256) }, wantErr: "must be 1-255 bytes"},
		"id not utf-8":           {mod: func(c *Config) { c.ID = "\xff" }, wantErr: "UTF-8"},
		"short key":              {mod: func(c *Config) { c.Key = testKey[:31] }, wantErr: "Key is 31 bytes"},
		"negative timeout":       {mod: func(c *Config) { c.DialTimeout = -1 }, wantErr: "DialTimeout"},
		"negative backoff":       {mod: func(c *Config) { c.MaxBackoff = -1 }, wantErr: "MaxBackoff"},
		"negative max payload":   {mod: func(c *Config) { c.MaxPayload = -1 }, wantErr: "MaxPayload"},
		"no identity":            {mod: func(c *Config) { c.Identity = nil }, wantErr: "Identity is required"},
		"id of another identity": {mod: func(c *Config) { c.ID = tid("b") }, wantErr: "not bound to identity"},
		"id bound to nothing":    {mod: func(c *Config) { c.ID = "a" }, wantErr: "not bound to identity"},
		"bad listen address":     {mod: func(c *Config) { c.ListenAddr = "127.0.0.1:99999" }, wantErr: "listen on"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			cfg := Config{ID: tid("a"), Identity: testIdentity("a"), Key: testKey}
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
