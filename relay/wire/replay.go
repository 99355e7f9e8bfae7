package wire

import (
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
)

// ReplayGuard remembers the nonces of frames that open a connection (handshakes); Check
// returns ErrReplay for a nonce seen before. Call it only for frames the Codec has accepted:
// their time is within the window, and a frame older than the window is refused by time, so the
// guard only has to remember one window's worth of nonces.
//
// It is bounded: backed by an LRU (github.com/hashicorp/golang-lru/v2) of the given capacity,
// in insertion order. If the handshake rate ever overflows the capacity within a window, the
// guard stays sound rather than forgetting: it then also refuses any frame not newer than the
// newest time it has evicted, since such a frame could be a replay of an evicted nonce. At
// worst a burst over capacity refuses some fresh handshakes, which the sender retries; it never
// accepts a replay. Safe for concurrent use.
type ReplayGuard struct {
	mu   sync.Mutex
	seen *simplelru.LRU[[16]byte, time.Time] // nonce -> frame time; guarded by mu
	// floor is the newest frame time among evicted nonces; guarded by mu.
	floor time.Time
}

// NewReplayGuard returns a guard remembering up to capacity nonces; capacity <= 0 means
// DefaultReplayCapacity.
func NewReplayGuard(capacity int) *ReplayGuard {
	if capacity <= 0 {
		capacity = DefaultReplayCapacity
	}
	g := &ReplayGuard{}
	// NewLRU only fails for a size <= 0, excluded above.
	g.seen, _ = simplelru.NewLRU(capacity, g.evicted)
	return g
}

// evicted runs inside seen.Add, so with g.mu held.
func (g *ReplayGuard) evicted(_ [16]byte, t time.Time) {
	if t.After(g.floor) {
		g.floor = t
	}
}

// Check records nonce, sent at t (the frame's Time), and returns nil if it is new. It returns
// an error wrapping ErrReplay if the nonce was seen before, or if it may have been seen but
// was forgotten because the guard overflowed (see ReplayGuard).
func (g *ReplayGuard) Check(nonce [16]byte, t time.Time) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.seen.Contains(nonce) {
		return fmt.Errorf("%w: nonce %x seen before", ErrReplay, nonce)
	}
	if !g.floor.IsZero() && !t.After(g.floor) {
		return fmt.Errorf("%w: guard over capacity, cannot rule out a replay of a frame from %v; retry",
			ErrReplay, t.UTC().Format(time.RFC3339Nano))
	}
	g.seen.Add(nonce, t)
	return nil
}
