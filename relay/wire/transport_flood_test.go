package wire

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/paf-mesh/paf-mesh/internal/testutil"
)

// The attacks of Security I #4 on a real Transport listening on 127.0.0.1, from other
// loopback addresses (127.0.0.2 and up stand for other hosts), bounded in count and time.
// They use nothing but the Transport's listening socket and the test helpers, so that the same
// file can be run against the code before the fix.

// tpFlood is a set of attacker connections from one address, each read by a goroutine that
// counts it closed when the peer closes it (or resets it). All are closed at cleanup.
type tpFlood struct {
	mu     sync.Mutex
	conns  []net.Conn
	closed atomic.Int64
	wg     sync.WaitGroup
}

func tpNewFlood(t *testing.T) *tpFlood {
	f := &tpFlood{}
	t.Cleanup(func() {
		f.mu.Lock()
		for _, nc := range f.conns {
			nc.Close()
		}
		f.mu.Unlock()
		f.wg.Wait()
	})
	return f
}

// dial opens n connections from src to addr, writing first (if any) on each.
func (f *tpFlood) dial(t *testing.T, src, addr string, n int, first []byte) {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	for range n {
		nc, err := d.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("flood dial from %s: %v", src, err)
		}
		f.mu.Lock()
		f.conns = append(f.conns, nc)
		f.mu.Unlock()
		if len(first) > 0 {
			if _, err := nc.Write(first); err != nil {
				t.Fatalf("flood write: %v", err)
			}
		}
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			_, _ = io.Copy(io.Discard, nc)
			f.closed.Add(1)
		}()
	}
}

// tpHandshaking is the number of accepted connections whose handshake is in progress.
func tpHandshaking(srv *Transport) int {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	return len(srv.handshaking)
}

// tpWaitTakenIn waits until srv has accepted each of the flood's n connections: each is
// either closed by srv or still in its handshake.
func tpWaitTakenIn(t *testing.T, srv *Transport, f *tpFlood, n int) {
	t.Helper()
	testutil.WaitFor(t, 20*time.Second, "the server to take in every flood connection", func() bool {
		return int(f.closed.Load())+tpHandshaking(srv) >= n
	})
}

// Attack (a): 320 idle connections from one host. Before the fix, a global cap of 256
// connections awaiting their hello was full and every new connection, from any host, was
// refused until the idle ones timed out: a legitimate peer's request failed.
func TestTransportFloodIdleOneSource(t *testing.T) {
	srv := tpNew(t, "srv", tpEcho, nil)
	f := tpNewFlood(t)
	const n = 320
	f.dial(t, "127.0.0.2", srv.Addr(), n, nil)
	tpWaitTakenIn(t, srv, f, n)
	t.Logf("flood of %d idle connections from 127.0.0.2: %d closed by the peer, %d awaiting their hello",
		n, f.closed.Load(), tpHandshaking(srv))
	tpMustServe(t, srv) // a legitimate peer, from 127.0.0.1, dials and is answered
}

// Attack (a), from many hosts: 8 sources with 40 idle connections each (320, each source
// under the per-source limit, all together over the total). A legitimate peer still connects.
func TestTransportFloodIdleManySources(t *testing.T) {
	srv := tpNew(t, "srv", tpEcho, nil)
	f := tpNewFlood(t)
	const sources, perSource = 8, 40
	for i := range sources {
		f.dial(t, "127.0.0."+strconv.Itoa(2+i), srv.Addr(), perSource, nil)
	}
	tpWaitTakenIn(t, srv, f, sources*perSource)
	t.Logf("flood of %d idle connections from %d sources: %d closed by the peer, %d awaiting their hello",
		sources*perSource, sources, f.closed.Load(), tpHandshaking(srv))
	tpMustServe(t, srv)
}

// tpMem is a process's memory: Go heap in use and resident set size, in bytes.
type tpMem struct{ Heap, RSS uint64 }

// tpMemNow measures this process: runtime.ReadMemStats and VmRSS of /proc/self/status.
func tpMemNow() (tpMem, error) {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	m := tpMem{Heap: ms.HeapInuse}
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return m, err
	}
	for line := range strings.Lines(string(status)) {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				return m, fmt.Errorf("VmRSS %q: %w", rest, err)
			}
			m.RSS = kb << 10
			return m, nil
		}
	}
	return m, errors.New("no VmRSS in /proc/self/status")
}

func (m tpMem) String() string { return fmt.Sprintf("heap %d MiB, RSS %d MiB", m.Heap>>20, m.RSS>>20) }

// floodVictimEnv makes the test binary the peer under attack (runFloodVictim).
const floodVictimEnv = "PAF_WIRE_FLOOD_VICTIM"

// victimReport is what the victim answers a request "mem" with: its memory before the attack,
// at its peak (sampled every few milliseconds) and now, and its transport's counters.
type victimReport struct {
	Before, Peak, Now tpMem
	Rejected          map[string]uint64
}

// runFloodVictim is a peer in a process of its own, so that its RSS is its own: a transport
// on 127.0.0.1 that prints its address, samples its memory until it ends, answers "mem" with
// a victimReport and any other request with its body. It ends when its stdin closes (or it is
// killed).
func runFloodVictim(string) int {
	var (
		mu     sync.Mutex
		report victimReport
		tr     *Transport
	)
	sample := func() {
		m, err := tpMemNow()
		if err != nil {
			fmt.Fprintln(os.Stderr, "flood victim:", err)
			os.Exit(2)
		}
		mu.Lock()
		defer mu.Unlock()
		report.Now = m
		report.Peak.Heap, report.Peak.RSS = max(report.Peak.Heap, m.Heap), max(report.Peak.RSS, m.RSS)
	}
	runtime.GC()
	sample()
	report.Before = report.Now
	h := tpFunc(func(_ string, body []byte, respond func([]byte, error)) {
		if string(body) != "mem" {
			respond(bytes.Clone(body), nil)
			return
		}
		sample()
		mu.Lock()
		r := report
		mu.Unlock()
		r.Rejected = tr.Stats().Rejected
		b, err := json.Marshal(r)
		respond(b, err)
	})
	tr, err := NewTransport(Config{ID: tid("victim"), Identity: testIdentity("victim"), Key: testKey, Handler: h})
	if err != nil {
		fmt.Fprintln(os.Stderr, "flood victim:", err)
		return 2
	}
	defer tr.Close()
	fmt.Println(tr.Addr())
	go func() {
		for {
			sample()
			time.Sleep(2 * time.Millisecond) // the sampling period of a peak, not synchronisation
		}
	}()
	_, _ = io.Copy(io.Discard, os.Stdin)
	return 0
}

// Attack (b): 250 connections, each sending the first 6 bytes of a frame whose length prefix
// announces the largest frame (8 MiB and more), then nothing, at a peer in a process of its
// own. Before the fix the peer allocated the whole announced frame for each before reading a
// byte of it or knowing who sent it: 250 connections grew its heap by 2 GiB (measured here:
// 2,050 MiB, held until the handshakes timed out and the next GC; RSS grows as the pages are
// touched: to 95 MiB after 50 connections with -race). Now the first message of a connection is
// bounded by the largest hello (maxPendingFrame), so each is refused at its length prefix.
func TestTransportFloodHugeHeaders(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the victim reads its RSS from /proc/self/status")
	}
	_, addr := testutil.StartSelf(t, testutil.LogWriter(t), floodVictimEnv+"=1")
	cli := tpNew(t, "asker", nil, nil)
	ask := func() victimReport {
		t.Helper()
		b, err := cli.Request(tpCtx(t), tid("victim"), addr, []byte("mem"))
		if err != nil {
			t.Fatalf("the victim does not answer: %v", err)
		}
		var r victimReport
		if err := json.Unmarshal(b, &r); err != nil {
			t.Fatalf("victim report %q: %v", b, err)
		}
		return r
	}
	header := binary.BigEndian.AppendUint32(nil, uint32(frameOverhead+DefaultMaxPayload))
	header = append(header, 1, 1)

	const (
		n, batch = 250, 25
		// Bounds with a wide margin: the connections themselves (goroutines, descriptors, a
		// hello-sized buffer each) need a few MiB; before the fix, the heap grew by 8 MiB per
		// connection. The victim's RSS before the attack is about 8 MiB (24 MiB with -race).
		maxHeapGrowth = 48 << 20
		maxRSS        = 100 << 20
		// abortGrowth stops the attack early when the peer is clearly vulnerable, so that a
		// run against vulnerable code does not take the machine's memory.
		abortGrowth = 256 << 20
	)
	growth := func(r victimReport) uint64 { return r.Peak.Heap - min(r.Peak.Heap, r.Before.Heap) }
	f := tpNewFlood(t)
	sent := 0
	for r := ask(); sent < n && growth(r) < abortGrowth; r = ask() {
		f.dial(t, "127.0.0.2", addr, batch, header)
		sent += batch
	}
	testutil.WaitFor(t, 30*time.Second, "the victim to close every attacking connection", func() bool {
		return int(f.closed.Load()) == sent
	})
	r := ask()
	t.Logf("%d connections announcing %d-byte frames: victim before %v; peak %v; after %v; rejected %v",
		sent, frameOverhead+DefaultMaxPayload, r.Before, r.Peak, r.Now, r.Rejected)
	if sent < n {
		t.Fatalf("attack stopped after %d connections: the victim's heap grew by %d MiB", sent, growth(r)>>20)
	}
	if growth(r) > maxHeapGrowth {
		t.Errorf("the victim's heap grew by %d MiB under the attack, want under %d MiB", growth(r)>>20, maxHeapGrowth>>20)
	}
	if r.Peak.RSS > maxRSS {
		t.Errorf("the victim's RSS peaked at %d MiB under the attack, want under %d MiB", r.Peak.RSS>>20, maxRSS>>20)
	}
	if r.Rejected["too-large"] != uint64(n) {
		t.Errorf("rejected %v, want too-large %d: every announced frame refused at its length prefix", r.Rejected, n)
	}
}

// Attack (d): a connection that sends its first frame a byte at a time, forever (bounded
// here), is dropped at the handshake deadline: the deadline runs from the accept and is not
// extended by progress, so a trickle cannot hold the connection open.
func TestTransportFloodTrickleHitsDeadline(t *testing.T) {
	srv := tpNew(t, "srv", tpEcho, func(c *Config) { c.HandshakeTimeout = 200 * time.Millisecond })
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}
	nc, err := d.Dial("tcp", srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	// A hello of the largest size: 305 bytes, 15 s at one byte per 50 ms, so only the
	// deadline can end it within the 10 s tpExpectClosed allows.
	first := binary.BigEndian.AppendUint32(nil, uint32(maxMsg1Len))
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(50 * time.Millisecond) // the attacker's pace, not synchronisation
		defer tick.Stop()
		for i := 0; i < 1000; i++ {
			b := byte(0x5a)
			if i < len(first) {
				b = first[i]
			}
			if _, err := nc.Write([]byte{b}); err != nil {
				return
			}
			select {
			case <-tick.C:
			case <-stop:
				return
			}
		}
	}()
	tpExpectClosed(t, nc)
	close(stop)
	<-done
	if got := srv.Stats().Rejected; got["handshake"] != 1 {
		t.Fatalf("rejected %v, want handshake 1 (no hello within the deadline)", got)
	}
	tpMustServe(t, srv)
}
