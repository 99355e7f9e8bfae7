package wire

import (
	"errors"
	"net"
	"sync"
	"sync/atomic"

	"github.com/paf-mesh/paf-mesh/internal/connlimit"
)

// TransportStats is a snapshot of a Transport's counters.
type TransportStats struct {
	// FramesIn counts frames received that passed the codec; FramesOut frames queued to send.
	FramesIn, FramesOut uint64
	// Handshakes counts completed handshakes, both sides.
	Handshakes uint64
	// Rejected counts refused frames and handshakes (each also closed its connection) by
	// reason: "bad-mac" (a handshake message or frame that does not authenticate: another mesh
	// secret, or a frame altered, replayed, reordered or injected), "too-large",
	// "bad-version", "bad-type", "truncated", "handshake" (a malformed handshake payload, a
	// connection that did not complete the handshake in time), "identity" (a peer whose id is
	// not bound to the identity it proved) and "protocol" (a malformed request or response,
	// or one on the wrong side). Only reasons with a non-zero count are present.
	Rejected map[string]uint64
	// ConnsIn and ConnsOut are the established connections open now: accepted, and dialled.
	ConnsIn, ConnsOut int
	// Pending is the number of accepted connections whose hello has not authenticated yet.
	Pending int
	// PendingDroppedSource and PendingDroppedTotal count accepted connections dropped before
	// their hello authenticated because newer ones came past maxPendingPerSource or
	// maxPending, oldest first: under a flood, the flood's own connections.
	PendingDroppedSource, PendingDroppedTotal uint64
}

// rejectReason indexes the rejection counters.
type rejectReason uint8

const (
	reasonBadMAC rejectReason = iota
	reasonTooLarge
	reasonBadVersion
	reasonBadType
	reasonTruncated
	reasonHandshake
	reasonIdentity
	reasonProtocol
	numReasons
)

var reasonNames = [numReasons]string{
	reasonBadMAC:     "bad-mac",
	reasonTooLarge:   "too-large",
	reasonBadVersion: "bad-version",
	reasonBadType:    "bad-type",
	reasonTruncated:  "truncated",
	reasonHandshake:  "handshake",
	reasonIdentity:   "identity",
	reasonProtocol:   "protocol",
}

func (r rejectReason) String() string {
	if r < numReasons {
		return reasonNames[r]
	}
	return "unknown"
}

// rejection is a refused frame: the connection is dropped and the reason counted.
type rejection struct {
	reason rejectReason
	err    error
}

func (r *rejection) Error() string { return r.reason.String() + ": " + r.err.Error() }
func (r *rejection) Unwrap() error { return r.err }

// codecReason maps a codec error to its rejection reason; false for an error that is not a
// refused frame (EOF, a network error).
func codecReason(err error) (rejectReason, bool) {
	for _, m := range []struct {
		err    error
		reason rejectReason
	}{
		{ErrBadMAC, reasonBadMAC},
		{ErrFrameTooLarge, reasonTooLarge},
		{ErrBadVersion, reasonBadVersion},
		{ErrBadType, reasonBadType},
		{ErrFrameTruncated, reasonTruncated},
	} {
		if errors.Is(err, m.err) {
			return m.reason, true
		}
	}
	return 0, false
}

type transportStats struct {
	framesIn, framesOut atomic.Uint64
	handshakes          atomic.Uint64
	rejected            [numReasons]atomic.Uint64
}

// rejectLogMaxHosts bounds the per-host log counters; past it they start over, which at worst
// logs one more line per host.
const rejectLogMaxHosts = 1024

// rejectLog rate-limits the Warn lines of rejections: the first per remote host, then every
// 100th, so a flood of bad frames cannot flood the log.
type rejectLog struct {
	mu     sync.Mutex
	counts map[string]uint64 // by remote host; guarded by mu
}

// bump counts one rejection from host and returns the count.
func (l *rejectLog) bump(host string) uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.counts == nil || len(l.counts) >= rejectLogMaxHosts {
		l.counts = make(map[string]uint64)
	}
	l.counts[host]++
	return l.counts[host]
}

// reject counts a refused frame and logs it (rate-limited). The caller closes the connection.
func (t *Transport) reject(reason rejectReason, remote net.Addr, peer string, err error) {
	t.stats.rejected[reason].Add(1)
	host := remote.String()
	if h, _, splitErr := net.SplitHostPort(host); splitErr == nil {
		host = h // the port changes with every connection
	}
	if n := t.rejectLog.bump(host); n == 1 || n%100 == 0 {
		t.log.Warn("relay: refused a frame; connection dropped",
			"reason", reason.String(), "remote", remote.String(), "peer", peer,
			"rejections_from_host", n, "err", err)
	}
}

// Stats returns a snapshot of the transport's counters.
func (t *Transport) Stats() TransportStats {
	s := TransportStats{
		FramesIn:   t.stats.framesIn.Load(),
		FramesOut:  t.stats.framesOut.Load(),
		Handshakes: t.stats.handshakes.Load(),
		Rejected:   make(map[string]uint64),
	}
	for r := range numReasons {
		if n := t.stats.rejected[r].Load(); n > 0 {
			s.Rejected[r.String()] = n
		}
	}
	var st connlimit.Stats
	s.Pending, _, st = t.pending.Snapshot()
	s.PendingDroppedSource, s.PendingDroppedTotal = uint64(st.DroppedSource), uint64(st.DroppedTotal)
	t.mu.Lock()
	s.ConnsIn = len(t.inbound)
	for _, p := range t.peers {
		if p.conn != nil {
			s.ConnsOut++
		}
	}
	t.mu.Unlock()
	return s
}
