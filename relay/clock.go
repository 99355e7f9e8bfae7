package relay

import (
	"github.com/paf-mesh/paf-mesh/relay/wire"

	"errors"
	"fmt"
	"sync"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
)

// Clock skew (SPEC section 3). Every message-layer request carries the requesting peer's
// clock (wire.Message.Stamp). A receiver whose clock differs from it by more than
// Config.ClockWindow refuses the request with wire.CodeClockSkew,
// saying by how much: the requester's result then names the clock (stored with holders, or
// queued until a clock is fixed), rather than the recipient alone logging it. The check
// reads only the stamp, not the transport's frames, so it holds whatever the transport is. Both
// sides remember what they learnt, per peer, for status (ClockSkews).

// ErrClockSkew: a peer refused this peer's request because their clocks differ by more than
// its window. The error's text says which peer and by how much, and what to do.
var ErrClockSkew = errors.New("clock skew")

// PeerClock is what this peer knows of another peer's clock.
type PeerClock struct {
	// Skew is the other peer's clock minus this one's, as its last stamp showed (it includes
	// the request's transit, milliseconds on a LAN). Zero when only Outside is known.
	Skew time.Duration
	// Measured reports whether Skew was measured (from a request the other peer sent).
	Measured bool
	// Outside: the other peer refused this peer's last request for its clock.
	Outside bool
	// At is when this was learnt, by this peer's clock.
	At time.Time
}

// maxClocks bounds the peers whose clocks are remembered.
const maxClocks = 1024

// clocks is what a Relay knows of other peers' clocks.
type clocks struct {
	mu    sync.Mutex
	peers *lru.Cache[string, PeerClock]
}

func (c *clocks) init() {
	c.peers, _ = lru.New[string, PeerClock](maxClocks) // only a size <= 0 fails
}

// measured records a skew measured from peer's stamp.
func (c *clocks) measured(peer string, skew time.Duration, now time.Time, outside bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.peers.Add(peer, PeerClock{Skew: skew, Measured: true, Outside: outside, At: now})
}

// outside records that peer refused a request for this peer's clock.
func (c *clocks) outside(peer string, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	pc, _ := c.peers.Get(peer)
	pc.Outside, pc.At = true, now
	c.peers.Add(peer, pc)
}

// ClockSkews returns what this peer knows of other peers' clocks, by peer id.
func (r *Relay) ClockSkews() map[string]PeerClock {
	r.clocks.mu.Lock()
	defer r.clocks.mu.Unlock()
	out := make(map[string]PeerClock, r.clocks.peers.Len())
	for _, k := range r.clocks.peers.Keys() {
		if v, ok := r.clocks.peers.Peek(k); ok {
			out[k] = v
		}
	}
	return out
}

// checkStamp refuses a request from peer whose stamp is outside the clock window; a request
// without a stamp (an older peer) passes.
func (r *Relay) checkStamp(peer string, stamp time.Time) error {
	if stamp.IsZero() {
		return nil
	}
	now := r.cfg.Now()
	skew := stamp.Sub(now)
	w := r.cfg.ClockWindow
	out := skew > w || skew < -w
	r.clocks.measured(peer, skew, now, out)
	if !out {
		return nil
	}
	r.log.Warn("refusing a request from a peer whose clock is off", "peer", peer, "skew", skew.Round(time.Millisecond), "window", w)
	return wire.WithCode(wire.CodeClockSkew, fmt.Errorf("the sending peer's clock is %s of the receiving peer's (accepted: within %v either way); fix the clock that is wrong, e.g. turn on NTP (timedatectl set-ntp true)",
		DescribeSkew(skew), w))
}

// DescribeSkew says how a peer's clock compares with this peer's, given their difference
// (the peer's minus this one's), e.g. "5m0s ahead".
func DescribeSkew(d time.Duration) string {
	r := d.Round(time.Millisecond)
	if r >= time.Second || r <= -time.Second {
		r = d.Round(time.Second)
	}
	switch {
	case r > 0:
		return fmt.Sprintf("%v ahead", r)
	case r < 0:
		return fmt.Sprintf("%v behind", -r)
	}
	return "in step"
}
