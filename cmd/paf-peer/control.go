package main

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

	"github.com/paf-mesh/paf-mesh/relay"
)

// The control socket lets the shell commands (status, and later send, check,
// listen) act through a live peer on this machine instead of joining the
// mesh themselves. It is a Unix socket in the run dir (mode 0700), so only
// this user reaches it. One request per connection, JSON in and JSON out.

const controlVersion = 1

// maxControlRequest bounds one request: a message body of the largest
// --max-body allowed, JSON-escaped (at worst six bytes for one, as \u003c),
// plus room for the envelope. Only this user can connect to the socket.
const maxControlRequest = 6*maxBodyLimit + 1<<20

type controlRequest struct {
	V  int    `json:"v"`
	Op string `json:"op"`
	// For send, check, ack, listen (see ops.go).
	As      string   `json:"as,omitempty"`
	To      string   `json:"to,omitempty"`
	Message string   `json:"message,omitempty"`
	Timeout float64  `json:"timeout,omitempty"` // seconds; 0: until the client goes away
	IDs     []string `json:"ids,omitempty"`
}

type controlResponse struct {
	V      int           `json:"v"`
	Error  string        `json:"error,omitempty"`
	Status *statusReport `json:"status,omitempty"`
	// For send.
	Result *relay.Result `json:"result,omitempty"`
	// For check and listen.
	Messages []jsonMessage `json:"messages,omitempty"`
	Unread   int           `json:"unread,omitempty"`
}

// decodeControlRequest reads one request; it is fuzzed.
func decodeControlRequest(r io.Reader) (controlRequest, error) {
	var req controlRequest
	dec := json.NewDecoder(io.LimitReader(r, maxControlRequest))
	if err := dec.Decode(&req); err != nil {
		return req, fmt.Errorf("control: bad request: %w", err)
	}
	if req.V != controlVersion {
		return req, fmt.Errorf("control: request version %d, this peer speaks %d (is paf-peer the same version everywhere?)", req.V, controlVersion)
	}
	if req.Op == "" {
		return req, errors.New("control: request without op")
	}
	return req, nil
}

type controlServer struct {
	path string
	ln   net.Listener
	n    *node
	log  *slog.Logger
	wg   sync.WaitGroup
	once sync.Once
}

func listenControl(path string, n *node, log *slog.Logger) (*controlServer, error) {
	_ = os.Remove(path) // a socket left by a crashed process with our (random) id: never a live one
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("control socket %s: %w (a shorter --run-dir may help: socket paths are limited to 107 bytes)", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("control socket %s: %w", path, err)
	}
	s := &controlServer{path: path, ln: ln, n: n, log: log}
	s.wg.Add(1)
	go s.serve()
	return s, nil
}

func (s *controlServer) serve() {
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

func (s *controlServer) handle(c net.Conn) {
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	req, err := decodeControlRequest(bufio.NewReader(c))
	resp := controlResponse{V: controlVersion}
	if err != nil {
		resp.Error = err.Error()
	} else {
		_ = c.SetReadDeadline(time.Time{})
		// The client sends nothing after its request: a read that returns
		// means it went away (Ctrl-C on `paf-peer listen`), so stop waiting.
		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			var b [1]byte
			_, _ = c.Read(b[:])
			cancel()
		}()
		switch req.Op {
		case "status":
			r := s.n.status()
			resp.Status = &r
		default:
			s.n.op(ctx, req, &resp)
		}
		cancel()
	}
	_ = c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if err := json.NewEncoder(c).Encode(resp); err != nil {
		s.log.Debug("control: write response", "err", err)
	}
}

func (s *controlServer) Close() {
	s.once.Do(func() {
		s.ln.Close()
		s.wg.Wait()
		_ = os.Remove(s.path)
	})
}

// callControl sends one request to the control socket at path.
func callControl(ctx context.Context, path string, req controlRequest) (*controlResponse, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = c.SetDeadline(time.Now()) })
	defer stop()
	req.V = controlVersion
	if err := json.NewEncoder(c).Encode(req); err != nil {
		return nil, err
	}
	var resp controlResponse
	if err := json.NewDecoder(io.LimitReader(c, maxControlRequest)).Decode(&resp); err != nil {
		return nil, fmt.Errorf("control: read response: %w", err)
	}
	if resp.Error != "" {
		return &resp, errors.New(resp.Error)
	}
	return &resp, nil
}
