package wire

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func nonceOf(i int) [16]byte {
	var n [16]byte
	n[0], n[1], n[2] = byte(i), byte(i>>8), byte(i>>16)
	n[15] = 0xAA // never the zero nonce
	return n
}

func TestReplayGuardThroughCodec(t *testing.T) {
	c := newTestCodec(t, CodecConfig{})
	first := testFrame(9, []byte("hello"))
	second := testFrame(9, []byte("hello"))
	second.Nonce = NewNonce()
	tests := map[string]struct {
		frames  []*Frame // each is encoded, decoded and checked in turn; the verdict is for the last
		wantErr error
	}{
		"fresh handshake":     {frames: []*Frame{first}},
		"replayed handshake":  {frames: []*Frame{first, first}, wantErr: ErrReplay},
		"replayed much later": {frames: []*Frame{first, second, first}, wantErr: ErrReplay},
		"two distinct nonces": {frames: []*Frame{first, second}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			g := NewReplayGuard(0)
			var err error
			for i, f := range tc.frames {
				// A replay is the same bytes again: the MAC and time still pass, only the guard
				// can refuse it.
				got, derr := c.DecodeFrame(encodeBody(t, c, f))
				if derr != nil {
					t.Fatalf("frame %d: decode: %v", i, derr)
				}
				err = g.Check(got.Nonce, got.Time)
				if i < len(tc.frames)-1 && err != nil {
					t.Fatalf("frame %d: %v", i, err)
				}
			}
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil && err != nil) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
		})
	}
}

func TestReplayGuardOverCapacityStaysSound(t *testing.T) {
	const capacity = 4
	base := testNow
	ms := func(i int) time.Time { return base.Add(time.Duration(i) * time.Millisecond) }
	tests := map[string]struct {
		nonce   [16]byte
		t       time.Time
		wantErr error
	}{
		// nonceOf(0) at ms(0) was evicted: its replay must still be refused.
		"replay of the evicted nonce":       {nonce: nonceOf(0), t: ms(0), wantErr: ErrReplay},
		"fresh nonce, not newer than floor": {nonce: nonceOf(100), t: ms(0), wantErr: ErrReplay},
		"fresh nonce, older than floor":     {nonce: nonceOf(101), t: ms(-5), wantErr: ErrReplay},
		"fresh nonce, newer than floor":     {nonce: nonceOf(102), t: ms(1)},
		"remembered nonce":                  {nonce: nonceOf(3), t: ms(3), wantErr: ErrReplay},
		"newest remembered nonce":           {nonce: nonceOf(4), t: ms(4), wantErr: ErrReplay},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			g := NewReplayGuard(capacity)
			for i := range capacity + 1 { // one more than fits: nonceOf(0) is evicted
				if err := g.Check(nonceOf(i), ms(i)); err != nil {
					t.Fatalf("fill %d: %v", i, err)
				}
			}
			err := g.Check(tc.nonce, tc.t)
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil && err != nil) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
		})
	}
}

func TestReplayGuardDefaultCapacity(t *testing.T) {
	g := NewReplayGuard(0)
	for i := range DefaultReplayCapacity {
		if err := g.Check(nonceOf(i), testNow); err != nil {
			t.Fatalf("nonce %d: %v", i, err)
		}
	}
	// Exactly full: nothing was evicted, so the oldest is still remembered and a fresh nonce at
	// the same time is not refused by the over-capacity rule.
	if err := g.Check(nonceOf(0), testNow); !errors.Is(err, ErrReplay) {
		t.Fatalf("oldest nonce forgotten at capacity: %v", err)
	}
	if err := g.Check(nonceOf(DefaultReplayCapacity), testNow.Add(-time.Second)); err != nil {
		t.Fatalf("fresh nonce refused before the guard overflowed: %v", err)
	}
}

func TestReplayGuardConcurrent(t *testing.T) {
	const (
		workers = 8
		nonces  = 500
	)
	g := NewReplayGuard(0)
	var (
		wg       sync.WaitGroup
		accepted [nonces]atomic.Int32
		start    = make(chan struct{})
	)
	for range workers {
		wg.Go(func() {
			<-start
			for i := range nonces {
				switch err := g.Check(nonceOf(i), testNow); {
				case err == nil:
					accepted[i].Add(1)
				case !errors.Is(err, ErrReplay):
					t.Errorf("nonce %d: %v", i, err)
				}
			}
		})
	}
	close(start)
	wg.Wait()
	for i := range accepted {
		if n := accepted[i].Load(); n != 1 {
			t.Errorf("nonce %d accepted %d times, want exactly once", i, n)
		}
	}
}
