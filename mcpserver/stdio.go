package mcpserver

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"
)

// The stdio transport of ServeStdio. mcp-go's own StdioServer parsed every
// line five times before its MCPServer parsed it again (a full validation,
// three tries as a response to a server request, the method), started a
// goroutine per line to read it and passed each tool call through a worker
// queue: about a fifth of a session's CPU on the question -> answer path of
// SPEC section 10, and two goroutine hand-offs per call. This loop decodes a
// line's envelope once, answers the requests that never block on the reading
// goroutine, hands each of the others to a worker goroutine of its own (a
// paf_listen may block for minutes) and writes each message with one write.

// MaxLine is the default bound of one input line (Config.MaxLine): a
// paf_send of the largest body --max-body allows (16 MiB), JSON-escaped at
// worst six bytes for one (\u003c), plus room for the envelope. mcp-go's
// stdio reader had no bound at all.
const MaxLine = 6*(16<<20) + 1<<20

// notificationQueue is how many notifications may wait for the writer, as
// mcp-go's stdio session: past it mcp-go drops them (push.go and progress
// treat a notification as a hint that the next one repeats).
const notificationQueue = 100

// backlog is how many requests past Config.Workers may run at once before the
// reading goroutine runs a request itself (and so stops reading until it is
// done): mcp-go queued 100 tool calls behind its workers before it did so.
const backlog = 100

// idleWorkers is how many goroutines that served a request wait for the next
// one rather than end. A goroutine started for each call began with the
// smallest stack and grew it, copying it three or four times, on every call
// (through the relay's send and inbox: 4 % of a session's CPU on the
// question -> answer path of SPEC section 10); a waiting worker keeps the
// stack it grew. An agent makes one or two calls at a time (a blocked
// paf_listen and the call beside it), so a few suffice.
const idleWorkers = 4

// stdioSession is the one client of a stdio transport, as mcp-go sees it.
type stdioSession struct {
	notes       chan mcp.JSONRPCNotification
	initialized atomic.Bool
	level       atomic.Value // mcp.LoggingLevel
	info        atomic.Value // mcp.Implementation
	caps        atomic.Value // mcp.ClientCapabilities
	version     atomic.Value // string
}

var (
	_ server.ClientSession              = (*stdioSession)(nil)
	_ server.SessionWithLogging         = (*stdioSession)(nil)
	_ server.SessionWithClientInfo      = (*stdioSession)(nil)
	_ server.SessionWithProtocolVersion = (*stdioSession)(nil)
)

func (s *stdioSession) SessionID() string { return "stdio" }

func (s *stdioSession) NotificationChannel() chan<- mcp.JSONRPCNotification { return s.notes }

func (s *stdioSession) Initialize() {
	s.level.Store(mcp.LoggingLevelError)
	s.initialized.Store(true)
}

func (s *stdioSession) Initialized() bool { return s.initialized.Load() }

func (s *stdioSession) SetLogLevel(level mcp.LoggingLevel) { s.level.Store(level) }

func (s *stdioSession) GetLogLevel() mcp.LoggingLevel {
	if l, ok := s.level.Load().(mcp.LoggingLevel); ok {
		return l
	}
	return mcp.LoggingLevelError
}

func (s *stdioSession) GetClientInfo() mcp.Implementation {
	v, _ := s.info.Load().(mcp.Implementation)
	return v
}

func (s *stdioSession) SetClientInfo(v mcp.Implementation) { s.info.Store(v) }

func (s *stdioSession) GetClientCapabilities() mcp.ClientCapabilities {
	v, _ := s.caps.Load().(mcp.ClientCapabilities)
	return v
}

func (s *stdioSession) SetClientCapabilities(v mcp.ClientCapabilities) { s.caps.Store(v) }

func (s *stdioSession) ProtocolVersion() string {
	v, _ := s.version.Load().(string)
	return v
}

// SetProtocolVersion is how mcp-go records the negotiated version
// (its unexported sessionProtocolVersionSetter).
func (s *stdioSession) SetProtocolVersion(v string) { s.version.Store(v) }

// envelope is what the loop needs of a line to route it; mcp-go's
// HandleMessage decodes the rest.
type envelope struct {
	JSONRPC json.RawMessage `json:"jsonrpc"`
	ID      json.RawMessage `json:"id"`
	Method  string          `json:"method"`
	Result  json.RawMessage `json:"result"`
	Error   json.RawMessage `json:"error"`
	Params  json.RawMessage `json:"params"`
}

func (e *envelope) hasID() bool { return len(e.ID) > 0 && string(e.ID) != "null" }

// isResponse: a line with a result or an error and no method answers a
// request of the server's. This server sends none (no sampling, elicitation,
// roots or ping requests), so such a line is a client's mistake.
func (e *envelope) isResponse() bool { return e.Method == "" && (e.Result != nil || e.Error != nil) }

// inlineMethods are the requests answered on the reading goroutine: this
// server answers them from memory without waiting for anything. Every other
// request (tools/call, resources/read, which waits for the peer to join,
// subscriptions/listen, unknown methods) runs on its own goroutine.
var inlineMethods = map[string]bool{
	string(mcp.MethodInitialize):             true,
	string(mcp.MethodPing):                   true,
	string(mcp.MethodToolsList):              true,
	string(mcp.MethodResourcesList):          true,
	string(mcp.MethodResourcesTemplatesList): true,
	string(mcp.MethodResourcesSubscribe):     true,
	string(mcp.MethodResourcesUnsubscribe):   true,
	string(mcp.MethodPromptsList):            true,
	string(mcp.MethodPromptsGet):             true,
	string(mcp.MethodSetLogLevel):            true,
}

// routeKey carries a request's decoded method and tool name to
// checkToolName, so that it does not decode the request again.
type routeKey struct{}

type route struct {
	method string
	tool   *string
}

// stdioConn is one ServeStdio: the session, the output and the requests in
// flight.
type stdioConn struct {
	s       *Server
	sess    *stdioSession
	out     io.Writer
	writeMu sync.Mutex
	slots   chan struct{} // one per request running on its own goroutine
	reqs    sync.WaitGroup
	// work hands a request to an idle worker (worker); idle counts them.
	work    chan func()
	idle    atomic.Int32
	stop    chan struct{} // closed once no request runs: the workers end
	workers sync.WaitGroup
	calls   inflight // the tool calls served by callTool

	// closeMu is read-held by the reading goroutine while it dispatches a
	// line, so that once closed is set no request starts (reqs.Add never
	// races reqs.Wait).
	closeMu sync.RWMutex
	closed  bool
}

var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// write sends one JSON-RPC message as one line, in one write.
func (c *stdioConn) write(msg any) {
	buf := bufPool.Get().(*bytes.Buffer)
	defer bufPool.Put(buf)
	buf.Reset()
	// Encode is json.Marshal plus the newline.
	if err := json.NewEncoder(buf).Encode(msg); err != nil {
		c.s.log.Error("mcp: encode a message for the client", "err", err)
		return
	}
	c.writeBytes(buf.Bytes())
}

// writeBytes writes b, one or more whole lines, in one write.
func (c *stdioConn) writeBytes(b []byte) {
	c.writeMu.Lock()
	_, err := c.out.Write(b)
	c.writeMu.Unlock()
	if err != nil {
		c.s.log.Warn("mcp: write to the client", "err", err)
	}
}

// writeNotes writes the notifications mcp-go queues for the client until
// stop is closed, then those still queued.
func (c *stdioConn) writeNotes(stop <-chan struct{}) {
	for {
		select {
		case n := <-c.sess.notes:
			c.write(n)
		case <-stop:
			for {
				select {
				case n := <-c.sess.notes:
					c.write(n)
				default:
					return
				}
			}
		}
	}
}

// errorResponse is a JSON-RPC error as mcp-go's transports write it.
func errorResponse(id any, code int, msg string) mcp.JSONRPCMessage {
	return mcp.JSONRPCError{JSONRPC: mcp.JSONRPC_VERSION, ID: mcp.NewRequestId(id), Error: mcp.NewJSONRPCErrorDetails(code, msg, nil)}
}

// handle runs one message through mcp-go and writes its answer, if any.
// A panic becomes an internal error answer (for a request) as in mcp-go's
// stdio server, so that it does not end the process.
func (c *stdioConn) handle(ctx context.Context, id json.RawMessage, line []byte) {
	var resp mcp.JSONRPCMessage
	func() {
		defer func() {
			if r := recover(); r != nil {
				c.s.log.Error("mcp: panic serving a message", "panic", r)
				if len(id) > 0 && string(id) != "null" {
					var v any
					_ = json.Unmarshal(id, &v)
					resp = errorResponse(v, mcp.INTERNAL_ERROR, fmt.Sprintf("internal panic: %v", r))
				}
			}
		}()
		resp = c.s.mcp.HandleMessage(ctx, line)
	}()
	if resp != nil {
		c.write(resp)
	}
}

// dispatch routes one input line.
func (c *stdioConn) dispatch(ctx context.Context, line []byte) {
	if call, ok := c.s.plainCall(line); ok {
		c.serveCall(ctx, call)
		return
	}
	var e envelope
	if err := json.Unmarshal(line, &e); err != nil {
		if !json.Valid(line) {
			c.write(errorResponse(nil, mcp.PARSE_ERROR, "Parse error"))
			return
		}
		// JSON, but not the shape of a message (an array, a number for a
		// method...): mcp-go answers it, at once.
		c.handle(ctx, nil, line)
		return
	}
	switch {
	case e.isResponse():
		c.s.log.Debug("mcp: dropped a response to a request this server never sent", "id", clip(string(e.ID), 64))
		return
	case !e.hasID():
		// Notifications are served in order and at once: notifications/cancelled
		// must reach the call it cancels while that call runs.
		if e.Method == string(mcp.MethodNotificationCancelled) {
			c.calls.cancel(e.Params)
		}
		c.handle(ctx, nil, line)
		return
	}
	call, direct := c.s.directCall(&e)
	if direct || e.Method != string(mcp.MethodToolsCall) {
		// A tools/call left to mcp-go is decoded again by checkToolName, as
		// mcp-go decodes it (keys in any case).
		ctx = context.WithValue(ctx, routeKey{}, route{method: e.Method, tool: &call.name})
	}
	if inlineMethods[e.Method] {
		c.handle(ctx, e.ID, line)
		return
	}
	if direct {
		c.serveCall(ctx, call)
		return
	}
	c.serve(ctx, func(ctx context.Context) { c.handle(ctx, e.ID, line) })
}

// serveCall runs a tool call the loop serves itself (callTool).
func (c *stdioConn) serveCall(ctx context.Context, call toolCall) {
	// Registered before the next line is read, so that a
	// notifications/cancelled right behind the call finds it.
	ctx, cancel := context.WithCancel(ctx)
	forget := c.calls.add(call.key, cancel)
	c.serve(ctx, func(ctx context.Context) {
		defer forget()
		defer cancel()
		c.callTool(ctx, call)
	})
}

// serve runs a request on a worker, or on the reading goroutine when too
// many run already.
func (c *stdioConn) serve(ctx context.Context, serve func(context.Context)) {
	select {
	case c.slots <- struct{}{}:
	default:
		c.s.log.Warn("mcp: too many requests at once; serving this one before reading more", "limit", cap(c.slots))
		serve(ctx)
		return
	}
	c.reqs.Add(1)
	job := func() {
		defer func() {
			<-c.slots
			c.reqs.Done()
		}()
		serve(ctx)
	}
	select {
	case c.work <- job: // an idle worker takes it
	default:
		c.workers.Add(1)
		go c.worker(job)
	}
}

// worker runs job, then the requests dispatch hands it while it is one of
// the idleWorkers waiting, until the connection ends.
func (c *stdioConn) worker(job func()) {
	defer c.workers.Done()
	for {
		job()
		if c.idle.Add(1) > idleWorkers {
			c.idle.Add(-1)
			return
		}
		select {
		case job = <-c.work:
			c.idle.Add(-1)
		case <-c.stop:
			c.idle.Add(-1)
			return
		}
	}
}

func newStdioConn(s *Server, sess *stdioSession, out io.Writer, slots int) *stdioConn {
	return &stdioConn{
		s: s, sess: sess, out: out,
		slots: make(chan struct{}, slots),
		work:  make(chan func()),
		stop:  make(chan struct{}),
	}
}

// endWorkers ends the idle workers and waits for them; call it once no
// request runs (reqs.Wait).
func (c *stdioConn) endWorkers() {
	close(c.stop)
	c.workers.Wait()
}

// serveStdio serves the session on in and out until in ends or ctx is
// cancelled; requests still running are then cancelled and waited for.
func (s *Server) serveStdio(ctx context.Context, in io.Reader, out io.Writer) error {
	out, unpollOut := pollableOut(out)
	defer unpollOut()
	c := newStdioConn(s, &stdioSession{notes: make(chan mcp.JSONRPCNotification, notificationQueue)}, out, s.cfg.Workers+backlog)
	if err := s.mcp.RegisterSession(ctx, c.sess); err != nil {
		return fmt.Errorf("register the stdio session: %w", err)
	}
	defer s.mcp.UnregisterSession(context.WithoutCancel(ctx), c.sess.SessionID())
	ctx, cancel := context.WithCancel(s.mcp.WithContext(ctx, c.sess))
	defer cancel()

	in, unpoll := pollable(in)
	defer unpoll()

	stopNotes := make(chan struct{})
	notesDone := make(chan struct{})
	go func() {
		defer close(notesDone)
		c.writeNotes(stopNotes)
	}()

	// The reading goroutine dispatches each line itself. It is left blocked
	// in Read if ctx ends first (as mcp-go's was): nothing can unblock a
	// read of a pipe but its writer, and the process is ending then.
	readDone := make(chan error, 1)
	go func() {
		lr := newLineReader(in, s.cfg.MaxLine)
		for {
			line, err := lr.next()
			if errors.Is(err, errLineTooLong) {
				c.write(errorResponse(nil, mcp.INVALID_REQUEST, fmt.Sprintf(
					"message too long: a line of input is at most %d bytes; this one was not read (send a smaller message, e.g. a shorter paf_send body)", s.cfg.MaxLine)))
				continue
			}
			if err != nil {
				readDone <- err
				return
			}
			if len(bytes.TrimSpace(line)) == 0 {
				continue
			}
			c.closeMu.RLock()
			if c.closed {
				c.closeMu.RUnlock()
				readDone <- ctx.Err()
				return
			}
			c.dispatch(ctx, line)
			c.closeMu.RUnlock()
		}
	}()
	var err error
	select {
	case err = <-readDone:
	case <-ctx.Done():
		err = ctx.Err()
	}
	cancel() // first: a request served by the reading goroutine returns
	c.closeMu.Lock()
	c.closed = true
	c.closeMu.Unlock()
	c.reqs.Wait()
	c.endWorkers()
	close(stopNotes)
	<-notesDone
	if errors.Is(err, io.EOF) {
		return nil
	}
	return err
}

var errLineTooLong = errors.New("line too long")

// lineReader reads newline-delimited lines of at most max bytes (the newline
// not counted).
type lineReader struct {
	r   *bufio.Reader
	max int
}

func newLineReader(r io.Reader, max int) *lineReader {
	return &lineReader{r: bufio.NewReaderSize(r, 64<<10), max: max}
}

// next returns the next line without its newline, in a new slice the caller
// keeps. A line longer than max is read to its end and dropped: next returns
// errLineTooLong and the reader is ready for the line after it. At the end of
// the input, an unterminated last line is dropped (a client that ends in the
// middle of a message sent no message) and io.EOF returned.
func (lr *lineReader) next() ([]byte, error) {
	var line []byte
	tooLong := false
	for {
		frag, err := lr.r.ReadSlice('\n')
		if !tooLong {
			n := len(frag)
			if err == nil {
				n-- // the newline
			}
			if len(line)+n > lr.max {
				tooLong, line = true, nil
			} else if line == nil && err == nil {
				return append(make([]byte, 0, len(frag)-1), frag[:len(frag)-1]...), nil
			} else {
				line = append(line, frag[:n]...)
			}
		}
		switch {
		case err == nil && tooLong:
			return nil, errLineTooLong
		case err == nil:
			return line, nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		default:
			return nil, err
		}
	}
}
