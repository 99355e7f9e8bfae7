package control

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"time"

	"github.com/paf-mesh/paf-mesh/internal/owner"
	"github.com/paf-mesh/paf-mesh/relay"
)

// Version is the protocol version. A request of another version is refused
// with an error that says so: the client and the peer are different builds.
const Version = 1

// MaxBody is the largest message body a request may carry: the upper bound
// of --max-body (node.MaxBodyLimit is this constant).
const MaxBody = 16 << 20

// MaxRequest bounds one request: a message body of MaxBody, JSON-escaped (at
// worst six bytes for one, as \u003c), plus room for the envelope. Only this
// user can connect to the socket.
const MaxRequest = 6*MaxBody + 1<<20

// The operations a request names in Op.
const (
	OpStatus = "status" // the peer's view of the mesh
	OpSend   = "send"   // send Message to To as As
	OpCheck  = "check"  // As's unread messages, not marked read
	OpListen = "listen" // as check, after waiting up to Timeout for one
	OpAck    = "ack"    // mark IDs read for As
	// OpWatch is as listen, but waits for an unread message whose id is not
	// among IDs (those the client has already shown): a watcher that never
	// marks anything read is told of each message once, not in a loop.
	OpWatch = "watch"
)

// ioTimeout bounds reading a request and writing a response: both are local
// and small, so a peer that takes longer has gone away.
const ioTimeout = 10 * time.Second

// Request is one request: one per connection.
type Request struct {
	V  int    `json:"v"`
	Op string `json:"op"`
	// For send, check, ack, listen, watch (IDs: for ack, those to mark read;
	// for watch, those already shown).
	As      string   `json:"as,omitempty"`
	To      string   `json:"to,omitempty"`
	Message string   `json:"message,omitempty"`
	Timeout float64  `json:"timeout,omitempty"` // seconds; 0: until the client goes away
	IDs     []string `json:"ids,omitempty"`
}

// Response answers a Request. Error is set on failure, with the other
// fields empty.
type Response struct {
	V     int    `json:"v"`
	Error string `json:"error,omitempty"`
	// Status is the peer's status report (a JSON object whose shape the
	// handler owns: node.Status), for op status.
	Status json.RawMessage `json:"status,omitempty"`
	// Result is the outcome of op send.
	Result *relay.Result `json:"result,omitempty"`
	// Messages are the unread messages, for check and listen.
	Messages []relay.JSONMessage `json:"messages,omitempty"`
	Unread   int                 `json:"unread,omitempty"`
}

// Handler is what the server calls into: the running peer. Its methods are
// called concurrently, one goroutine per connection. Those taking a context
// may block; the context ends when the client goes away (or, for Wait, when
// the request's timeout passes), and they must return soon after.
type Handler interface {
	// Status is the peer's view of the mesh, encoded as JSON for the client.
	Status() any
	// Send sends body from as to to.
	Send(ctx context.Context, as, to, body string) (relay.Result, error)
	// Wait blocks until as has an unread message or ctx ends. It returns
	// nil in both cases; an error only when as cannot be waited on.
	Wait(ctx context.Context, as string) error
	// WaitNew is Wait for an unread message whose id is not in seen.
	WaitNew(ctx context.Context, as string, seen []string) error
	// Peek returns as's unread messages without marking them read: the
	// client acknowledges (Ack) once it has shown them, so a client killed
	// in between loses nothing.
	Peek(as string) ([]relay.JSONMessage, error)
	// Ack marks the messages ids of as read.
	Ack(as string, ids []string) error
}

// DecodeRequest reads one request and checks its version and op. It is fuzzed.
func DecodeRequest(r io.Reader) (Request, error) {
	var req Request
	dec := json.NewDecoder(io.LimitReader(r, MaxRequest))
	if err := dec.Decode(&req); err != nil {
		return req, fmt.Errorf("control: bad request: %w", err)
	}
	if req.V != Version {
		return req, fmt.Errorf("control: request version %d, this peer speaks %d (is paf-peer the same version everywhere?)", req.V, Version)
	}
	if req.Op == "" {
		return req, errors.New("control: request without op")
	}
	return req, nil
}

// Server serves the control socket of one peer.
type Server struct {
	path string
	ln   net.Listener
	h    Handler
	log  *slog.Logger
	wg   sync.WaitGroup
	once sync.Once
	// ctx ends when Close begins, so that calls blocked in the handler (a
	// listen with no timeout) return at once instead of holding up shutdown.
	ctx  context.Context
	stop context.CancelFunc
}

// ErrShuttingDown answers a call that was waiting when the peer shut down.
var ErrShuttingDown = errors.New("control: the peer shut down while this call waited; nothing was marked read: run the command again once a peer holds the name")

// Listen creates the socket at path (mode 0600) and serves it until Close.
// log may be nil.
func Listen(path string, h Handler, log *slog.Logger) (*Server, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	_ = os.Remove(path) // a socket left by a crashed process with our (random) id: never a live one
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("control socket %s: %w (a shorter --run-dir may help: socket paths are limited to 107 bytes)", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("control socket %s: %w", path, err)
	}
	s := &Server{path: path, ln: ln, h: h, log: log}
	s.ctx, s.stop = context.WithCancel(context.Background())
	s.wg.Add(1)
	go s.serve()
	return s, nil
}

// Path is the socket's path.
func (s *Server) Path() string { return s.path }

func (s *Server) serve() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer c.Close()
			s.handle(c)
		}()
	}
}

func (s *Server) handle(c net.Conn) {
	// Only processes of this user may act through this peer: the socket is
	// 0600 in a private run dir, and the kernel's record of who connected is
	// checked as well (SPEC section 7), in case either was loosened.
	if err := owner.CheckPeer(c); err != nil {
		s.log.Warn("control: refused a connection from another user", "err", err)
		_ = c.SetWriteDeadline(time.Now().Add(ioTimeout))
		_ = json.NewEncoder(c).Encode(Response{V: Version, Error: "control: refused: " + err.Error()})
		return
	}
	_ = c.SetReadDeadline(time.Now().Add(ioTimeout))
	req, err := DecodeRequest(bufio.NewReader(c))
	resp := Response{V: Version}
	if err != nil {
		resp.Error = err.Error()
	} else {
		_ = c.SetReadDeadline(time.Time{})
		// The client sends nothing after its request: a read that returns
		// means it went away (Ctrl-C on `paf-peer listen`), so stop waiting.
		ctx, cancel := context.WithCancel(s.ctx)
		go func() {
			var b [1]byte
			_, _ = c.Read(b[:])
			cancel()
		}()
		s.dispatch(ctx, req, &resp)
		cancel()
	}
	_ = c.SetWriteDeadline(time.Now().Add(ioTimeout))
	if err := json.NewEncoder(c).Encode(resp); err != nil {
		s.log.Debug("control: write response", "err", err)
	}
}

func (s *Server) dispatch(ctx context.Context, req Request, resp *Response) {
	fail := func(err error) { resp.Error = err.Error() }
	switch req.Op {
	case OpStatus:
		b, err := json.Marshal(s.h.Status())
		if err != nil {
			fail(fmt.Errorf("control: encode status: %w", err))
			return
		}
		resp.Status = b
	case OpSend:
		res, err := s.h.Send(ctx, req.As, req.To, req.Message)
		if err != nil {
			fail(err)
			return
		}
		resp.Result = &res
	case OpListen, OpWatch:
		if req.Timeout > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, time.Duration(req.Timeout*float64(time.Second)))
			defer cancel()
		}
		wait := func() error { return s.h.Wait(ctx, req.As) }
		if req.Op == OpWatch {
			wait = func() error { return s.h.WaitNew(ctx, req.As, req.IDs) }
		}
		err := wait()
		if s.ctx.Err() != nil {
			// The peer is shutting down (Wait returns nil when its context
			// ends): what arrived meanwhile is answered, and otherwise the
			// client is told, rather than answered "nothing arrived".
			if ms, perr := s.h.Peek(req.As); perr == nil && len(ms) > 0 {
				resp.Messages = ms
				return
			}
			fail(ErrShuttingDown)
			return
		}
		if err != nil {
			fail(err)
			return
		}
		fallthrough
	case OpCheck:
		ms, err := s.h.Peek(req.As)
		if err != nil {
			fail(err)
			return
		}
		resp.Messages = ms
	case OpAck:
		if err := s.h.Ack(req.As, req.IDs); err != nil {
			fail(err)
		}
	default:
		resp.Error = fmt.Sprintf("control: unknown op %q", req.Op)
	}
}

// Close stops serving, waits for the connections in progress to finish and
// removes the socket. It is idempotent.
func (s *Server) Close() {
	s.once.Do(func() {
		s.stop()
		s.ln.Close()
		s.wg.Wait()
		_ = os.Remove(s.path)
	})
}

// Call sends one request to the control socket at path and returns the
// response; a response with Error set is returned with that error too. V is
// set to Version. ctx bounds the whole exchange.
func Call(ctx context.Context, path string, req Request) (*Response, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	// A socket that another user listens on is never spoken to: it would see
	// our messages and could answer with forged ones.
	if err := owner.CheckPeer(c); err != nil {
		return nil, fmt.Errorf("control socket %s: %w", path, err)
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = c.SetDeadline(time.Now()) })
	defer stop()
	req.V = Version
	if err := json.NewEncoder(c).Encode(req); err != nil {
		return nil, err
	}
	var resp Response
	if err := json.NewDecoder(io.LimitReader(c, MaxRequest)).Decode(&resp); err != nil {
		return nil, fmt.Errorf("control: read response: %w", err)
	}
	if resp.Error != "" {
		return &resp, errors.New(resp.Error)
	}
	return &resp, nil
}
