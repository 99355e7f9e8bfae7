package relay

// The child side of the cross-process benchmarks (xproc_bench_test.go). The benchmark process
// re-executes its own test binary with PAF_BENCH_CHILD set to a role; TestMain then runs
// xprocChildMain instead of the tests. A child prints one "ready ..." line on stdout, then
// serves and reads commands from stdin, one per line, until stdin closes (the parent closed it,
// or died): then it shuts down and exits. Its stdout is the channel to the parent, so it logs to
// stderr only.
//
// Roles:
//   - receiver: a mesh peer plus relay (secure-mode keys from xprocSecret) holding "bench-rx";
//     prints "ready <gossip addr>". Bodies that start with a stamp (xprocPutStamp) are timed.
//   - transport: a bare Transport (no inbox) whose handler acknowledges at once; prints
//     "ready <addr> <peer id>". Request bodies that start with a stamp are timed.
//   - tcpecho: raw TCP, echoing length-prefixed (u32) frames; prints "ready <addr>".
//
// Command "report" (receiver, transport) answers "report <json xprocReport>": the timings
// recorded since the previous report, which are then forgotten.

import (
	"crypto/sha256"

	"github.com/paf-mesh/paf-mesh/relay/wire"

	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"runtime/pprof"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/paf-mesh/paf-mesh/internal/keys"
	"github.com/paf-mesh/paf-mesh/mesh"
)

// Environment of a benchmark child.
const (
	// xprocChildEnv selects the child role; TestMain checks it.
	xprocChildEnv = "PAF_BENCH_CHILD"
	// xprocStateEnv is the receiver's state root (set by the parent to a temp dir).
	xprocStateEnv = "PAF_BENCH_STATE"
	// xprocRateLiftedEnv, set to 1, turns the receiver's per-source rate limit off.
	xprocRateLiftedEnv = "PAF_BENCH_RATE_LIFTED"
	// xprocProfileEnv, set by whoever runs the benchmarks, asks every child for a CPU profile:
	// each writes <value>.<benchmark name>.
	xprocProfileEnv = "PAF_BENCH_CHILD_CPUPROFILE"
	// xprocProfileOutEnv is the file one child writes its CPU profile to (set by the parent).
	xprocProfileOutEnv = "PAF_BENCH_CHILD_PROFILE_OUT"
)

const (
	// xprocSecret is the benchmark mesh's shared secret: secure mode, as SPEC section 10 asks.
	xprocSecret = "paf-mesh xproc benchmark secret (not a real one)"
	xprocRxName = "bench-rx"
	xprocTxName = "bench-tx"
	// Names of the identities of the bare transports of the transport role and of the parent.
	xprocRxTransport = "bench-rx-transport"
	xprocTxTransport = "bench-tx-transport"
	// xprocMaxPayload lets a transport carry what a relay does (MaxBody plus headroom).
	xprocMaxPayload = 8<<20 + 64<<10
)

// xprocChildMain runs the child role and returns the process exit code.
func xprocChildMain(role string) int {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	if path := os.Getenv(xprocProfileOutEnv); path != "" {
		f, err := os.Create(path)
		if err != nil {
			fmt.Fprintf(os.Stderr, "bench child %s: cpu profile: %v\n", role, err)
			return 1
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintf(os.Stderr, "bench child %s: cpu profile: %v\n", role, err)
			return 1
		}
		defer func() {
			pprof.StopCPUProfile()
			f.Close()
		}()
	}
	var err error
	switch role {
	case "receiver":
		err = xprocServeReceiver(log, os.Stdin, os.Stdout)
	case "transport":
		err = xprocServeTransport(log, os.Stdin, os.Stdout)
	case "tcpecho":
		err = xprocServeEcho(os.Stdin, os.Stdout)
	case "crashrx":
		err = crashServeReceiver(log, os.Stdin, os.Stdout)
	default:
		err = fmt.Errorf("unknown role %q (want receiver, transport or tcpecho)", role)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench child %s: %v\n", role, err)
		return 1
	}
	return 0
}

// xprocKeys are the secure-mode keys of every process of the benchmark.
func xprocKeys() (*keys.Keys, error) {
	return keys.FromSecret([]byte(xprocSecret))
}

// xprocNode is a mesh peer plus relay, built as cmd/paf-peer builds one in secure mode but
// bound to loopback.
type xprocNode struct {
	peer  *mesh.Peer
	relay *Relay
}

// xprocStartNode starts a peer and its relay with state under root. The relay's rate limit is
// the default unless lifted (some benchmarks send far faster than an agent, on purpose, and
// say so). wrap, when not nil, wraps the relay's handler of requests from other peers; opts
// change its config last.
func xprocStartNode(log *slog.Logger, root string, lifted bool, wrap func(wire.Handler) wire.Handler, opts ...nodeOpt) (*xprocNode, error) {
	k, err := xprocKeys()
	if err != nil {
		return nil, err
	}
	mc := mesh.DefaultLocalConfig()
	mc.Logger = log
	mc.Memberlist.SecretKey = k.Gossip
	// The identity of the state dir, as a real peer's: a receiver restarted on it is the same
	// user, and is handed what was sealed to it.
	if mc.Identity, err = keys.LoadIdentity(root); err != nil {
		return nil, err
	}
	p, err := mesh.New(mc)
	if err != nil {
		return nil, err
	}
	cfg := DefaultConfig()
	cfg.Dir, cfg.Key, cfg.StateRoot, cfg.Logger = p, k.Relay, root, log
	if lifted {
		cfg.Rate, cfg.Burst = rate.Inf, 1
	}
	cfg.wrapHandler = wrap
	for _, o := range opts {
		o(&cfg)
	}
	r, err := New(cfg)
	if err != nil {
		p.Close()
		return nil, err
	}
	n := &xprocNode{peer: p, relay: r}
	if err := p.SetMeta(context.Background(), func(m *mesh.Meta) { r.Announce(m, r.Addr()) }); err != nil {
		n.close()
		return nil, err
	}
	return n, nil
}

func (n *xprocNode) close() {
	n.relay.Close()
	n.peer.Close()
}

func xprocServeReceiver(log *slog.Logger, in io.Reader, out io.Writer) error {
	root := os.Getenv(xprocStateEnv)
	if root == "" {
		return fmt.Errorf("%s is not set", xprocStateEnv)
	}
	// Time each message on its way into the relay: wrap the relay's handler.
	var h *xprocStampHandler
	n, err := xprocStartNode(log, root, os.Getenv(xprocRateLiftedEnv) == "1", func(next wire.Handler) wire.Handler {
		h = &xprocStampHandler{next: next, messages: true}
		return h
	})
	if err != nil {
		return err
	}
	defer n.close()
	if err := n.peer.Claim(context.Background(), xprocRxName); err != nil {
		return err
	}
	if _, err := fmt.Fprintf(out, "ready %s\n", n.peer.Addr()); err != nil {
		return err
	}
	return xprocCommands(in, out, h)
}

func xprocServeTransport(log *slog.Logger, in io.Reader, out io.Writer) error {
	k, err := xprocKeys()
	if err != nil {
		return err
	}
	h := &xprocStampHandler{}
	ident := xprocIdentity(xprocRxTransport)
	tr, err := wire.NewTransport(wire.Config{
		ID: ident.NewPeerID(), Identity: ident, Key: k.Relay, MaxPayload: xprocMaxPayload, Handler: h, Logger: log,
	})
	if err != nil {
		return err
	}
	defer tr.Close()
	if _, err := fmt.Fprintf(out, "ready %s %s\n", tr.Addr(), tr.ID()); err != nil {
		return err
	}
	return xprocCommands(in, out, h)
}

// xprocCommands answers the parent's commands until stdin closes.
func xprocCommands(in io.Reader, out io.Writer, h *xprocStampHandler) error {
	sc := bufio.NewScanner(in)
	for sc.Scan() {
		switch cmd := sc.Text(); cmd {
		case "report":
			rep := h.take()
			rep.CPUNS = int64(xprocCPUTime())
			b, err := json.Marshal(rep)
			if err != nil {
				return err
			}
			if _, err := fmt.Fprintf(out, "report %s\n", b); err != nil {
				return err
			}
		default:
			return fmt.Errorf("unknown command %q", cmd)
		}
	}
	return sc.Err()
}

// xprocReport is what a child measured: nanoseconds from the sender's stamp (taken just before
// the sender's call) to the moment the receiver's handler saw the request (Wire), and to the
// moment it answered it (Answered: for a relay, after the inbox commit); and its CPU time.
type xprocReport struct {
	Wire     []int64 `json:"wire"`
	Answered []int64 `json:"answered"`
	// CPUNS is the CPU time the child had used when it reported (user and system, every
	// thread; 0 where unknown).
	CPUNS int64 `json:"cpu_ns"`
}

// xprocStampHandler times requests whose body (or, with messages, whose message body) starts
// with a stamp, then hands them to next, or acknowledges them itself when next is nil.
type xprocStampHandler struct {
	next     wire.Handler
	messages bool // request bodies are encoded Messages

	mu  sync.Mutex
	rep xprocReport
}

func (h *xprocStampHandler) HandleRequest(from string, src netip.Addr, body []byte, respond func([]byte, error)) {
	seen := time.Now().UnixNano()
	payload := body
	if h.messages {
		payload = xprocMessageBody(body)
	}
	sent, ok := xprocStamp(payload)
	if !ok { // not a timed request: pass it on untouched
		if h.next == nil {
			respond(nil, nil)
		} else {
			h.next.HandleRequest(from, src, body, respond)
		}
		return
	}
	answer := func(resp []byte, err error) {
		done := time.Now().UnixNano()
		h.mu.Lock()
		h.rep.Wire = append(h.rep.Wire, seen-sent)
		h.rep.Answered = append(h.rep.Answered, done-sent)
		h.mu.Unlock()
		respond(resp, err)
	}
	if h.next == nil {
		answer(nil, nil)
		return
	}
	h.next.HandleRequest(from, src, body, answer)
}

// take returns the timings so far and forgets them.
func (h *xprocStampHandler) take() xprocReport {
	h.mu.Lock()
	defer h.mu.Unlock()
	r := h.rep
	h.rep = xprocReport{}
	return r
}

// A stamp is time.Now().UnixNano() as xprocStampLen decimal digits, zero-padded: text, so that
// it can start a message body (which must be UTF-8), and cheap to read back.
const xprocStampLen = 19

// xprocPutStamp writes ns (>= 0) as a stamp into b[:xprocStampLen].
func xprocPutStamp(b []byte, ns int64) {
	for i := xprocStampLen - 1; i >= 0; i-- {
		b[i] = byte('0' + ns%10)
		ns /= 10
	}
}

// xprocStamp reads the stamp at the start of b; false if b does not start with one.
func xprocStamp(b []byte) (int64, bool) {
	if len(b) < xprocStampLen {
		return 0, false
	}
	var ns int64
	for _, c := range b[:xprocStampLen] {
		if c < '0' || c > '9' {
			return 0, false
		}
		ns = ns*10 + int64(c-'0')
	}
	return ns, true
}

// xprocMessageBody returns the body of an encoded message (appendMessage) without decoding or
// validating the rest, or nil if b is too short to hold one. It follows appendMessageAs: 12
// fixed bytes, six u16-prefixed strings, a u32 body length, the body.
func xprocMessageBody(b []byte) []byte {
	off := 12
	if len(b) > 2 && b[2]&(1<<2) != 0 { // wire's flagStamped: the requester's clock follows sent-at
		off = 20
	}
	for range 6 {
		if len(b)-off < 2 {
			return nil
		}
		off += 2 + int(binary.BigEndian.Uint16(b[off:]))
	}
	for range 2 { // the sender's key and signature, each u8-length-prefixed (version 2 on)
		if b[0] < 2 {
			break
		}
		if len(b)-off < 1 {
			return nil
		}
		off += 1 + int(b[off])
	}
	if len(b)-off < 4 {
		return nil
	}
	return b[off+4:]
}

// xprocServeEcho echoes length-prefixed frames on every accepted connection until in closes.
func xprocServeEcho(in io.Reader, out io.Writer) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	conns := map[net.Conn]bool{}
	wg.Go(func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns[nc] = true
			mu.Unlock()
			wg.Go(func() { xprocEcho(nc) })
		}
	})
	_, err = fmt.Fprintf(out, "ready %s\n", ln.Addr())
	if err == nil {
		_, err = io.Copy(io.Discard, in)
	}
	ln.Close()
	mu.Lock()
	for nc := range conns {
		nc.Close()
	}
	mu.Unlock()
	wg.Wait()
	return err
}

// xprocEcho answers each u32-length-prefixed frame with itself, in one write, as the relay
// writes a frame.
func xprocEcho(nc net.Conn) {
	defer nc.Close()
	br := bufio.NewReaderSize(nc, 64<<10)
	buf := make([]byte, 4, 4+64<<10)
	for {
		if _, err := io.ReadFull(br, buf[:4]); err != nil {
			return
		}
		n := int(binary.BigEndian.Uint32(buf))
		if n > xprocMaxPayload {
			return
		}
		if cap(buf) < 4+n {
			buf = append(buf[:4], make([]byte, n)...)
		}
		buf = buf[:4+n]
		if _, err := io.ReadFull(br, buf[4:]); err != nil {
			return
		}
		if _, err := nc.Write(buf); err != nil {
			return
		}
	}
}

// xprocIdentity is the identity of a benchmark role, derived from its name.
func xprocIdentity(name string) *keys.Identity {
	seed := sha256.Sum256([]byte(name))
	id, err := keys.IdentityFromSeed(seed[:])
	if err != nil {
		panic(err)
	}
	return id
}
