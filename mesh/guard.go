package mesh

// Security I #3: memberlist's TCP listener accepts any number of connections and reads up to
// 20 MB from each (its maxPushStateBytes) before it can tell, by decrypting, that the sender
// has no key: 100 connections took a peer from 17 MB to 1.05 GB, and ~12k idle ones got it
// declared failed. guardedTransport wraps netTransport (memberlist's NetTransport but for its
// packet buffers, transport.go) and puts every inbound stream connection under a guard
// before memberlist sees it.
//
// Lock order: the connlimit.Limiter's lock only; connections are closed after it is released.

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/paf-mesh/paf-mesh/internal/connlimit"
)

// guardLimits bound what unauthenticated peers can make memberlist hold. memberlist reads
// exactly one message per inbound stream (a push/pull, a TCP ping or a reliable user message)
// and authenticates it only once it has read all of it (AES-GCM over the whole payload), so
// everything read from an inbound stream is read before authentication, and the limits apply
// to the whole connection.
type guardLimits struct {
	// PerSource and Total bound concurrent inbound streams from one IP address and in all.
	// When a new stream would exceed either, the oldest stream (of that source, or of all) is
	// dropped: a flood cannot keep new peers out, it can only make its own streams short-lived.
	PerSource, Total int
	// MaxRead is the most read from one stream: the largest message a real peer sends.
	MaxRead int64
	// SourceBytes and TotalBytes bound the bytes read and not yet released (the stream is
	// still open, so memberlist still holds them) from one source and in all. A read that would
	// exceed them drops the oldest other streams first; if it still cannot fit, its own stream.
	SourceBytes, TotalBytes int64
	// Timeout bounds an inbound stream's life: the read and write deadlines memberlist sets
	// are clamped to it.
	Timeout time.Duration
}

// maxStreamMessage is what one legitimate push/pull can need, encrypted and uncompressed
// (memberlist compresses it, so real ones are smaller): the user state, a forwarding table
// and reservations that decodePushState accepts up to maxForwardState (4 MiB), plus 1 MiB for
// the node states (about 1,000 peers of at most 1 KiB each: a 512-byte meta, id, address and
// counters in msgpack), plus 64 KiB for msgpack framing and encryption (version byte, 12-byte
// nonce, 16-byte tag). memberlist itself would read up to 20 MiB.
const maxStreamMessage = maxForwardState + 1<<20 + 64<<10

// defaultGuardLimits are the limits of every peer. A machine's own peers all connect from
// 127.0.0.1 (and a burst of them joining the first one at once is normal), so the count per
// source is generous: counts bound goroutines and descriptors (256 streams cost about 4 MiB),
// the byte budgets bound memory. Memory held by inbound streams is at most TotalBytes (about
// 15 MiB; twice that with buffer growth and garbage not yet collected), whatever the number of
// connections attempted; one host holds at most SourceBytes (about 7 MiB), one maximal
// push/pull plus small ones. Measured (TestGuardMemberlistFlood, without -race): 300
// connections streaming from one host raise the heap by about 17 MiB and RSS peaks near 35 MB,
// where memberlist alone grew the heap by 155 MiB for the same flood.
var defaultGuardLimits = guardLimits{
	PerSource:   64,
	Total:       256,
	MaxRead:     maxStreamMessage,
	SourceBytes: maxStreamMessage + 2<<20,
	TotalBytes:  3 * maxStreamMessage,
	Timeout:     10 * time.Second,
}

// readChunk caps one Read, so a read into a large buffer reserves no more budget than it
// is likely to use.
const readChunk = 64 << 10

// errStreamDropped is returned by reads of a stream the guard dropped or cut off.
var errStreamDropped = errors.New("mesh: inbound gossip stream dropped by the connection guard")

// guardStats count what the guard refused: connlimit's counters, OverRead being the streams
// cut off at MaxRead, with no budget left, or at the header check.
type guardStats = connlimit.Stats

// guard tracks the open inbound streams: the counting and the oldest-first dropping are
// internal/connlimit's (relay/wire's handshakes use the same limiter); what is memberlist's is
// here: the header check, the deadline clamp and the byte budgets' numbers.
type guard struct {
	lim     guardLimits
	log     *slog.Logger
	limiter *connlimit.Limiter
}

func newGuard(lim guardLimits, log *slog.Logger) *guard {
	g := &guard{lim: lim, log: log}
	g.limiter = connlimit.New(connlimit.Limits{
		PerSource:   lim.PerSource,
		Total:       lim.Total,
		MaxBytes:    lim.MaxRead,
		SourceBytes: lim.SourceBytes,
		TotalBytes:  lim.TotalBytes,
	}, g.noteDrop)
	return g
}

// guardedConn is an inbound stream under the guard.
type guardedConn struct {
	net.Conn
	g        *guard
	slot     *connlimit.Slot
	deadline time.Time

	// The first bytes read, until the message header is complete. Only memberlist's one
	// reading goroutine touches them.
	hdr  [5]byte
	hdrN int
}

// encryptMsg is memberlist's message type of an encrypted stream message (net.go), followed
// by the payload length as a big-endian uint32. The numbers are part of memberlist's protocol.
const encryptMsg = 10

// admit puts c under the guard, dropping (closing) the oldest streams the limits require.
func (g *guard) admit(c net.Conn, now time.Time) *guardedConn {
	gc := &guardedConn{Conn: c, g: g, deadline: now.Add(g.lim.Timeout)}
	_ = c.SetDeadline(gc.deadline)
	gc.slot = g.limiter.Admit(connlimit.Source(c.RemoteAddr()), func() { _ = c.Close() })
	return gc
}

// noteDrop logs drops at Warn the first time and then at every power of two, so that a flood
// is visible without filling the log.
func (g *guard) noteDrop(src netip.Addr, s guardStats) {
	n := s.DroppedSource + s.DroppedTotal + s.DroppedBytes + s.OverRead
	if n&(n-1) == 0 {
		g.log.Warn("gossip connection guard: dropping inbound streams (a flood, or more peers than the limits allow)",
			"source", src, "dropped_per_source", s.DroppedSource, "dropped_total", s.DroppedTotal,
			"dropped_for_bytes", s.DroppedBytes, "over_read", s.OverRead)
	}
}

// snapshot returns the number of open streams, the bytes they hold, and the stats.
func (g *guard) snapshot() (conns int, bytes int64, stats guardStats) {
	return g.limiter.Snapshot()
}

func (c *guardedConn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	n := c.slot.Reserve(int64(min(len(p), readChunk)))
	if n == 0 {
		_ = c.Conn.Close()
		return 0, errStreamDropped
	}
	got, err := c.Conn.Read(p[:n])
	c.slot.Unreserve(n - int64(got))
	if c.hdrN < len(c.hdr) && got > 0 {
		c.hdrN += copy(c.hdr[c.hdrN:], p[:got])
		if c.hdrN == len(c.hdr) && c.tooLong() {
			// Refused before memberlist sees the header: it would read on (and log a warning
			// for every such stream) up to its own 20 MB cap.
			c.slot.Refuse()
			_ = c.Conn.Close()
			return 0, errStreamDropped
		}
	}
	return got, err
}

// tooLong reports whether the header announces an encrypted message longer than MaxRead.
func (c *guardedConn) tooLong() bool {
	return c.hdr[0] == encryptMsg && int64(len(c.hdr))+int64(binary.BigEndian.Uint32(c.hdr[1:])) > c.g.lim.MaxRead
}

// Close releases the stream's share of the limits; it may be called more than once.
func (c *guardedConn) Close() error {
	c.slot.Release()
	return c.Conn.Close()
}

// clamp keeps a deadline memberlist sets within the stream's guard deadline.
func (c *guardedConn) clamp(t time.Time) time.Time {
	if t.IsZero() || t.After(c.deadline) {
		return c.deadline
	}
	return t
}

func (c *guardedConn) SetDeadline(t time.Time) error      { return c.Conn.SetDeadline(c.clamp(t)) }
func (c *guardedConn) SetReadDeadline(t time.Time) error  { return c.Conn.SetReadDeadline(c.clamp(t)) }
func (c *guardedConn) SetWriteDeadline(t time.Time) error { return c.Conn.SetWriteDeadline(c.clamp(t)) }

// guardedTransport is netTransport (memberlist's NetTransport but for its packet buffers,
// transport.go) with its inbound streams under a guard. Packets (UDP) and outbound streams
// are netTransport's own.
type guardedTransport struct {
	*netTransport
	guard *guard

	streams   chan net.Conn // what memberlist reads: guarded streams
	stop      chan struct{} // closed by Shutdown: memberlist no longer reads streams
	innerDone chan struct{} // closed once netTransport has stopped accepting
	wg        sync.WaitGroup
	once      sync.Once
}

var _ memberlist.NodeAwareTransport = (*guardedTransport)(nil)

// newGuardedTransport binds ml's address as memberlist would (retrying a dynamic port that
// turned out to be taken for UDP) and, when the port was dynamic, writes the one chosen back
// into ml.BindPort and ml.AdvertisePort, as memberlist does for its own transport.
func newGuardedTransport(ml *memberlist.Config, lim guardLimits, logger *log.Logger, slogger *slog.Logger) (*guardedTransport, error) {
	tries := 1
	if ml.BindPort == 0 {
		tries = 10
	}
	if logger == nil {
		logger = log.New(io.Discard, "", 0)
	}
	var nt *netTransport
	var err error
	for range tries {
		if nt, err = newNetTransport(ml.BindAddr, ml.BindPort, logger); err == nil || !strings.Contains(err.Error(), "address already in use") {
			break
		}
	}
	if err != nil {
		return nil, err
	}
	if ml.BindPort == 0 {
		ml.BindPort = nt.port()
		ml.AdvertisePort = ml.BindPort
	}
	t := &guardedTransport{
		netTransport: nt,
		guard:        newGuard(lim, slogger),
		streams:      make(chan net.Conn),
		stop:         make(chan struct{}),
		innerDone:    make(chan struct{}),
	}
	t.wg.Add(1)
	go t.pump()
	return t, nil
}

// pump hands netTransport's accepted streams to memberlist under the guard. After Shutdown it
// keeps draining (and closing) them until netTransport has stopped, which its Shutdown waits
// for.
func (t *guardedTransport) pump() {
	defer t.wg.Done()
	for {
		select {
		case c := <-t.netTransport.StreamCh():
			select {
			case <-t.stop:
				_ = c.Close()
				continue
			default:
			}
			gc := t.guard.admit(c, time.Now())
			select {
			case t.streams <- gc:
			case <-t.stop:
				_ = gc.Close()
			}
		case <-t.innerDone:
			return
		}
	}
}

// StreamCh is what memberlist reads inbound streams from.
func (t *guardedTransport) StreamCh() <-chan net.Conn { return t.streams }

// IngestStream hands memberlist a stream from elsewhere, under the guard like any other.
func (t *guardedTransport) IngestStream(c net.Conn) error {
	gc := t.guard.admit(c, time.Now())
	select {
	case t.streams <- gc:
		return nil
	case <-t.stop:
		_ = gc.Close()
		return net.ErrClosed
	}
}

// Shutdown stops netTransport and the pump; it may be called more than once (memberlist
// calls it, and New does when memberlist fails to start).
func (t *guardedTransport) Shutdown() error {
	var err error
	t.once.Do(func() {
		close(t.stop)
		err = t.netTransport.Shutdown()
		close(t.innerDone)
		t.wg.Wait()
	})
	return err
}

// guardTransport gives ml a guardedTransport with the default limits, unless it has a
// transport already (a test's, or a caller's own). The returned function shuts the transport
// down; New calls it when memberlist fails to start, since memberlist then may not have.
func guardTransport(ml *memberlist.Config, log *slog.Logger) (shutdown func(), err error) {
	if ml.Transport != nil {
		return func() {}, nil
	}
	if ml.Logger != nil {
		ml.Logger = quietDrops(ml.Logger)
	}
	t, err := newGuardedTransport(ml, defaultGuardLimits, ml.Logger, log)
	if err != nil {
		return nil, fmt.Errorf("could not set up network transport: %w", err)
	}
	ml.Transport = t
	return func() { _ = t.Shutdown() }, nil
}

// quietDrops returns a logger that writes what l does, except that memberlist's error line
// for each stream the guard dropped ("failed to receive ...: <errStreamDropped>") is written at
// [DEBUG]: under a flood there is one per connection, and the guard logs the flood itself.
func quietDrops(l *log.Logger) *log.Logger {
	return log.New(dropLineWriter{w: l.Writer()}, l.Prefix(), l.Flags())
}

type dropLineWriter struct{ w io.Writer }

func (d dropLineWriter) Write(p []byte) (int, error) {
	if bytes.Contains(p, []byte(errStreamDropped.Error())) {
		q := bytes.Replace(p, []byte("[ERR]"), []byte("[DEBUG]"), 1)
		if _, err := d.w.Write(q); err != nil {
			return 0, err
		}
		return len(p), nil
	}
	return d.w.Write(p)
}
