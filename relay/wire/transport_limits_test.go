package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/paf-mesh/paf-mesh/internal/testutil"
)

// The limits on connections that have not authenticated, each at its edge and one past it.

// tpWaitPending waits until srv has n connections awaiting their hello.
func tpWaitPending(t *testing.T, srv *Transport, n int) {
	t.Helper()
	testutil.WaitFor(t, 20*time.Second, fmt.Sprintf("%d pending connections", n), func() bool {
		return srv.Stats().Pending == n
	})
}

// tpIsOpen reports whether the peer has not closed nc: a read finds nothing yet (rather than
// EOF or a reset) before a short deadline. It is only ever asked after the closing it checks
// for would already have happened (the limiter closes synchronously in the accept loop, before
// the Stats the test waited for changed).
func tpIsOpen(nc net.Conn) bool {
	_ = nc.SetReadDeadline(time.Now().Add(5 * time.Millisecond))
	_, err := nc.Read(make([]byte, 1))
	ne, ok := errors.AsType[net.Error](err)
	return ok && ne.Timeout()
}

func tpDialFrom(t *testing.T, src, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	nc, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return nc
}

func TestTransportPendingPerSourceLimit(t *testing.T) {
	srv := tpNew(t, "srv", tpEcho, func(c *Config) { c.HandshakeTimeout = time.Hour })
	conns := make([]net.Conn, 0, maxPendingPerSource+1)
	for range maxPendingPerSource {
		conns = append(conns, tpDialFrom(t, "127.0.0.2", srv.Addr()))
	}
	other := tpDialFrom(t, "127.0.0.3", srv.Addr())
	tpWaitPending(t, srv, maxPendingPerSource+1) // at the limit: all held
	if s := srv.Stats(); s.PendingDroppedSource != 0 || s.PendingDroppedTotal != 0 {
		t.Fatalf("stats %+v at the limit, want nothing dropped", s)
	}
	conns = append(conns, tpDialFrom(t, "127.0.0.2", srv.Addr())) // one past
	testutil.WaitFor(t, 20*time.Second, "one pending connection dropped", func() bool {
		return srv.Stats().PendingDroppedSource == 1
	})
	tpExpectClosed(t, conns[0]) // the oldest of that source
	for i, nc := range conns[1:] {
		if !tpIsOpen(nc) {
			t.Fatalf("connection %d of the source was closed, want only the oldest", i+1)
		}
	}
	if !tpIsOpen(other) {
		t.Fatal("another source's connection was closed")
	}
	if s := srv.Stats(); s.Pending != maxPendingPerSource+1 || s.PendingDroppedTotal != 0 {
		t.Fatalf("stats %+v, want %d pending and no drop for the total", s, maxPendingPerSource+1)
	}
	tpMustServe(t, srv)
}

func TestTransportPendingTotalLimit(t *testing.T) {
	srv := tpNew(t, "srv", tpEcho, func(c *Config) { c.HandshakeTimeout = time.Hour })
	const sources = maxPending / maxPendingPerSource
	conns := make([]net.Conn, 0, maxPending+1)
	for i := range sources {
		for range maxPendingPerSource {
			conns = append(conns, tpDialFrom(t, fmt.Sprintf("127.0.0.%d", 2+i), srv.Addr()))
		}
	}
	tpWaitPending(t, srv, maxPending) // at the limit: all held
	if s := srv.Stats(); s.PendingDroppedSource != 0 || s.PendingDroppedTotal != 0 {
		t.Fatalf("stats %+v at the limit, want nothing dropped", s)
	}
	conns = append(conns, tpDialFrom(t, fmt.Sprintf("127.0.0.%d", 2+sources), srv.Addr())) // one past
	testutil.WaitFor(t, 20*time.Second, "one pending connection dropped", func() bool {
		return srv.Stats().PendingDroppedTotal == 1
	})
	tpExpectClosed(t, conns[0]) // the oldest of all
	for _, i := range []int{1, maxPendingPerSource, maxPending - 1, maxPending} {
		if !tpIsOpen(conns[i]) {
			t.Fatalf("connection %d was closed, want only the oldest", i)
		}
	}
	if s := srv.Stats(); s.Pending != maxPending || s.PendingDroppedSource != 0 {
		t.Fatalf("stats %+v, want %d pending, no drop per source", s, maxPending)
	}
	// The legitimate client is the newest: it pushes out the oldest flood connection and is
	// served.
	tpMustServe(t, srv)
}

// A machine's own peers all connect from 127.0.0.1, dozens at once: all are served, none is
// dropped by the per-source limit.
func TestTransportPendingBurstOfLocalPeers(t *testing.T) {
	srv := tpNew(t, "srv", tpEcho, nil)
	const peers = 48
	clients := make([]*Transport, peers)
	for i := range clients {
		clients[i] = tpNew(t, fmt.Sprintf("local-%d", i), nil, nil)
	}
	var wg sync.WaitGroup
	errs := make(chan error, peers)
	start := make(chan struct{})
	for _, c := range clients {
		wg.Go(func() {
			<-start
			got, err := c.Request(tpCtx(t), srv.cfg.ID, srv.Addr(), []byte(c.cfg.ID))
			if err == nil && string(got) != c.cfg.ID {
				err = fmt.Errorf("%s: answer %q", c.cfg.ID, got)
			}
			errs <- err
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if s := srv.Stats(); s.PendingDroppedSource != 0 || s.PendingDroppedTotal != 0 || s.ConnsIn != peers {
		t.Fatalf("stats %+v, want %d connections in and nothing dropped", s, peers)
	}
}

// The first message of a connection is bounded by the largest hello: one of exactly that size
// is read (and here refused: it does not authenticate), one byte more is refused at its length
// prefix, before its body is read or allocated.
func TestTransportPendingFrameBound(t *testing.T) {
	tests := map[string]struct {
		size     int
		sendBody bool
		reason   string
	}{
		"largest hello, read whole":                {size: maxMsg1Len, sendBody: true, reason: "bad-mac"},
		"one byte more, refused at the prefix":     {size: maxMsg1Len + 1, sendBody: false, reason: "too-large"},
		"the largest frame, refused at the prefix": {size: frameOverhead + DefaultMaxPayload, sendBody: false, reason: "too-large"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			// No deadline to speak of: only the bound can end the prefix-only cases.
			srv := tpNew(t, "srv", tpEcho, func(c *Config) { c.HandshakeTimeout = time.Hour })
			nc := tpDialFrom(t, "127.0.0.2", srv.Addr())
			msg := binary.BigEndian.AppendUint32(nil, uint32(tc.size))
			if tc.sendBody {
				msg = append(msg, bytes.Repeat([]byte{0x5a}, tc.size)...)
			}
			if _, err := nc.Write(msg); err != nil {
				t.Fatal(err)
			}
			tpExpectClosed(t, nc)
			if got := srv.Stats().Rejected; got[tc.reason] != 1 || len(got) != 1 {
				t.Fatalf("rejected %v, want %s 1", got, tc.reason)
			}
		})
	}
	t.Run("largest real hello", func(t *testing.T) {
		// A hello for a server id of the largest length is the largest hello, and passes the
		// bound: the server authenticates it and answers (with its own id: not the one asked for).
		srv := tpNew(t, "srv", tpEcho, func(c *Config) { c.HandshakeTimeout = time.Hour })
		r := tpDialRaw(t, srv)
		r.msg(appendHello1(nil, hello1{serverID: strings.Repeat("s", maxIDLen)}))
		if n := len(r.sent[0]) - lenPrefixLen; n != maxMsg1Len {
			t.Fatalf("largest hello is %d bytes, maxMsg1Len is %d", n, maxMsg1Len)
		}
		if h := r.answer(); h.serverID != srv.cfg.ID {
			t.Fatalf("answered as %q", h.serverID)
		}
		tpExpectClosed(t, r.nc)
		if got := srv.Stats().Rejected; len(got) != 0 {
			t.Fatalf("rejected %v", got)
		}
	})
}

// A dialler reads the answer to its hello bounded by the largest answer: a server that
// announces a huge first message is refused at the prefix.
func TestTransportClientAckBound(t *testing.T) {
	for name, size := range map[string]int{"one past the largest answer": maxMsg2Len + 1, "largest frame": frameOverhead + DefaultMaxPayload} {
		t.Run(name, func(t *testing.T) {
			addr := tpRawServer(t, "srv", testKey, func(s *tpRawSrv) {
				_, _ = s.nc.Write(binary.BigEndian.AppendUint32(nil, uint32(size)))
			})
			cli := tpNew(t, "cli", nil, func(c *Config) { c.HandshakeTimeout = time.Hour })
			_, err := cli.Request(tpCtx(t), tid("srv"), addr, nil)
			if !errors.Is(err, ErrUnreachable) {
				t.Fatalf("err = %v, want ErrUnreachable", err)
			}
			if got := cli.Stats().Rejected; got["too-large"] != 1 {
				t.Fatalf("rejected %v, want too-large 1", got)
			}
		})
	}
}

// The handshake deadline: an idle connection is closed after HandshakeTimeout, with the
// default set when none is given.
func TestTransportPendingDeadline(t *testing.T) {
	srv := tpNew(t, "srv", tpEcho, func(c *Config) { c.HandshakeTimeout = 100 * time.Millisecond })
	nc := tpDialFrom(t, "127.0.0.2", srv.Addr())
	tpExpectClosed(t, nc)
	if s := srv.Stats(); s.Rejected["handshake"] != 1 || s.Pending != 0 {
		t.Fatalf("stats %+v, want handshake 1 and none pending", s)
	}
	if def := tpNew(t, "def", nil, nil); def.cfg.HandshakeTimeout != DefaultHandshakeTimeout {
		t.Fatalf("default HandshakeTimeout %v, want %v", def.cfg.HandshakeTimeout, DefaultHandshakeTimeout)
	}
}
