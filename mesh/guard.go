package mesh

// Security I #3: memberlist's TCP listener accepts any number of connections and reads up to
// 20 MB from each (its maxPushStateBytes) before it can tell, by decrypting, that the sender
// has no key: 100 connections took a peer from 17 MB to 1.05 GB, and ~12k idle ones got it
// declared failed. guardedTransport wraps memberlist's own NetTransport and puts every inbound
// stream connection under a guard before memberlist sees it.
//
// Lock order: guard.mu only; no other lock is taken while holding it, and connections are
// closed after it is released.

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

// guardStats count what the guard refused.
type guardStats struct {
	DroppedSource, DroppedTotal int // oldest streams dropped for a new one (per source, in all)
	DroppedBytes                int // streams dropped to make room for another's read
	OverRead                    int // streams cut off at MaxRead or with no budget left
}

// guard tracks the open inbound streams.
type guard struct {
	lim guardLimits
	log *slog.Logger

	mu      sync.Mutex
	conns   []*guardedConn // open, oldest first
	sources map[netip.Addr]*sourceUse
	bytes   int64
	stats   guardStats
}

type sourceUse struct {
	conns int
	bytes int64
}

func newGuard(lim guardLimits, log *slog.Logger) *guard {
	return &guard{lim: lim, log: log, sources: make(map[netip.Addr]*sourceUse)}
}

// guardedConn is an inbound stream under the guard.
type guardedConn struct {
	net.Conn
	g        *guard
	src      netip.Addr
	deadline time.Time

	// Under g.mu.
	read    int64
	removed bool

	// The first bytes read, until the message header is complete. Only memberlist's one
	// reading goroutine touches them.
	hdr  [5]byte
	hdrN int
}

// encryptMsg is memberlist's message type of an encrypted stream message (net.go), followed
// by the payload length as a big-endian uint32. The numbers are part of memberlist's protocol.
const encryptMsg = 10

// sourceOf is the IP address a connection comes from (port ignored; IPv4-mapped IPv6
// addresses count as the IPv4 address they map).
func sourceOf(c net.Conn) netip.Addr {
	if ap, err := netip.ParseAddrPort(c.RemoteAddr().String()); err == nil {
		return ap.Addr().Unmap()
	}
	return netip.Addr{}
}

// admit puts c under the guard, dropping the oldest streams the limits require.
func (g *guard) admit(c net.Conn, now time.Time) *guardedConn {
	gc := &guardedConn{Conn: c, g: g, src: sourceOf(c), deadline: now.Add(g.lim.Timeout)}
	_ = c.SetDeadline(gc.deadline)
	var drop []*guardedConn
	g.mu.Lock()
	su := g.sources[gc.src]
	if su == nil {
		su = &sourceUse{}
		g.sources[gc.src] = su
	}
	for su.conns >= g.lim.PerSource && su.conns > 0 {
		old := g.oldestLocked(gc.src, nil)
		g.removeLocked(old)
		g.stats.DroppedSource++
		drop = append(drop, old)
	}
	for len(g.conns) >= g.lim.Total && len(g.conns) > 0 {
		old := g.conns[0]
		g.removeLocked(old)
		g.stats.DroppedTotal++
		drop = append(drop, old)
	}
	su.conns++
	g.conns = append(g.conns, gc)
	stats := g.stats
	g.mu.Unlock()
	for _, old := range drop {
		_ = old.Conn.Close()
	}
	if len(drop) > 0 {
		g.noteDrop(stats, gc.src)
	}
	return gc
}

// noteDrop logs drops at Warn the first time and then at every power of two, so that a flood
// is visible without filling the log.
func (g *guard) noteDrop(s guardStats, src netip.Addr) {
	n := s.DroppedSource + s.DroppedTotal + s.DroppedBytes + s.OverRead
	if n&(n-1) == 0 {
		g.log.Warn("gossip connection guard: dropping inbound streams (a flood, or more peers than the limits allow)",
			"source", src, "dropped_per_source", s.DroppedSource, "dropped_total", s.DroppedTotal,
			"dropped_for_bytes", s.DroppedBytes, "over_read", s.OverRead)
	}
}

// oldestLocked returns the oldest open stream from src other than except, or nil.
func (g *guard) oldestLocked(src netip.Addr, except *guardedConn) *guardedConn {
	for _, c := range g.conns {
		if c.src == src && c != except {
			return c
		}
	}
	return nil
}

// removeLocked forgets c and releases what it held.
func (g *guard) removeLocked(c *guardedConn) {
	if c == nil || c.removed {
		return
	}
	c.removed = true
	for i, o := range g.conns {
		if o == c {
			g.conns = append(g.conns[:i], g.conns[i+1:]...)
			break
		}
	}
	su := g.sources[c.src]
	su.conns--
	su.bytes -= c.read
	if su.conns == 0 {
		delete(g.sources, c.src)
	}
	g.bytes -= c.read
}

// reserve accounts for up to want more bytes read by c and returns how many it may read:
// 0 means c must stop (it was dropped, or reached MaxRead, or no room can be made).
func (g *guard) reserve(c *guardedConn, want int64) int64 {
	var drop []*guardedConn
	g.mu.Lock()
	n := min(want, g.lim.MaxRead-c.read)
	if c.removed || n <= 0 {
		if !c.removed {
			g.removeLocked(c)
			g.stats.OverRead++
		}
		g.mu.Unlock()
		return 0
	}
	su := g.sources[c.src]
	for su.bytes+n > g.lim.SourceBytes {
		old := g.oldestLocked(c.src, c)
		if old == nil {
			break
		}
		g.removeLocked(old)
		g.stats.DroppedBytes++
		drop = append(drop, old)
	}
	for g.bytes+n > g.lim.TotalBytes && len(g.conns) > 1 {
		old := g.conns[0]
		if old == c {
			old = g.conns[1]
		}
		g.removeLocked(old)
		g.stats.DroppedBytes++
		drop = append(drop, old)
	}
	if su.bytes+n > g.lim.SourceBytes || g.bytes+n > g.lim.TotalBytes {
		g.removeLocked(c)
		g.stats.OverRead++
		n = 0
	} else {
		c.read += n
		su.bytes += n
		g.bytes += n
	}
	stats := g.stats
	g.mu.Unlock()
	for _, old := range drop {
		_ = old.Conn.Close()
	}
	if len(drop) > 0 || n == 0 {
		g.noteDrop(stats, c.src)
	}
	return n
}

// unreserve returns the part of a reservation a read did not use.
func (g *guard) unreserve(c *guardedConn, unused int64) {
	if unused <= 0 {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if c.removed {
		return
	}
	c.read -= unused
	g.sources[c.src].bytes -= unused
	g.bytes -= unused
}

// snapshot returns the number of open streams, the bytes they hold, and the stats.
func (g *guard) snapshot() (conns int, bytes int64, stats guardStats) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.conns), g.bytes, g.stats
}

func (c *guardedConn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	n := c.g.reserve(c, int64(min(len(p), readChunk)))
	if n == 0 {
		_ = c.Conn.Close()
		return 0, errStreamDropped
	}
	got, err := c.Conn.Read(p[:n])
	c.g.unreserve(c, n-int64(got))
	if c.hdrN < len(c.hdr) && got > 0 {
		c.hdrN += copy(c.hdr[c.hdrN:], p[:got])
		if c.hdrN == len(c.hdr) && c.tooLong() {
			// Refused before memberlist sees the header: it would read on (and log a warning
			// for every such stream) up to its own 20 MB cap.
			c.g.mu.Lock()
			c.g.removeLocked(c)
			c.g.stats.OverRead++
			stats := c.g.stats
			c.g.mu.Unlock()
			_ = c.Conn.Close()
			c.g.noteDrop(stats, c.src)
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
	c.g.mu.Lock()
	c.g.removeLocked(c)
	c.g.mu.Unlock()
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

// guardedTransport is memberlist's NetTransport with its inbound streams under a guard.
// Packets (UDP) and outbound streams are NetTransport's own.
type guardedTransport struct {
	*memberlist.NetTransport
	guard *guard

	streams   chan net.Conn // what memberlist reads: guarded streams
	stop      chan struct{} // closed by Shutdown: memberlist no longer reads streams
	innerDone chan struct{} // closed once NetTransport has stopped accepting
	wg        sync.WaitGroup
	once      sync.Once
}

var _ memberlist.NodeAwareTransport = (*guardedTransport)(nil)

// newGuardedTransport binds ml's address as memberlist would (retrying a dynamic port that
// turned out to be taken for UDP) and, when the port was dynamic, writes the one chosen back
// into ml.BindPort and ml.AdvertisePort, as memberlist does for its own transport.
func newGuardedTransport(ml *memberlist.Config, lim guardLimits, logger *log.Logger, slogger *slog.Logger) (*guardedTransport, error) {
	nc := &memberlist.NetTransportConfig{BindAddrs: []string{ml.BindAddr}, BindPort: ml.BindPort, Logger: logger, MetricLabels: ml.MetricLabels}
	tries := 1
	if ml.BindPort == 0 {
		tries = 10
	}
	var nt *memberlist.NetTransport
	var err error
	for range tries {
		if nt, err = memberlist.NewNetTransport(nc); err == nil || !strings.Contains(err.Error(), "address already in use") {
			break
		}
	}
	if err != nil {
		return nil, err
	}
	if ml.BindPort == 0 {
		ml.BindPort = nt.GetAutoBindPort()
		ml.AdvertisePort = ml.BindPort
	}
	t := &guardedTransport{
		NetTransport: nt,
		guard:        newGuard(lim, slogger),
		streams:      make(chan net.Conn),
		stop:         make(chan struct{}),
		innerDone:    make(chan struct{}),
	}
	t.wg.Add(1)
	go t.pump()
	return t, nil
}

// pump hands NetTransport's accepted streams to memberlist under the guard. After Shutdown it
// keeps draining (and closing) them until NetTransport has stopped, which its Shutdown waits
// for.
func (t *guardedTransport) pump() {
	defer t.wg.Done()
	for {
		select {
		case c := <-t.NetTransport.StreamCh():
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

// Shutdown stops NetTransport and the pump; it may be called more than once (memberlist
// calls it, and New does when memberlist fails to start).
func (t *guardedTransport) Shutdown() error {
	var err error
	t.once.Do(func() {
		close(t.stop)
		err = t.NetTransport.Shutdown()
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
