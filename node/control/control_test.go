package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/paf-mesh/paf-mesh/internal/testutil"
	"github.com/paf-mesh/paf-mesh/relay"
)

func TestMain(m *testing.M) {
	if path := os.Getenv(otherUserEnv); path != "" {
		// Another user's process: try to act through the socket at path, speaking the
		// protocol itself (our client would refuse a server of another user first).
		c, err := net.Dial("unix", path)
		if err != nil {
			fmt.Println("dial:", err)
			os.Exit(0)
		}
		_ = json.NewEncoder(c).Encode(Request{V: Version, Op: OpCheck, As: "bob"})
		var resp Response
		err = json.NewDecoder(c).Decode(&resp)
		fmt.Printf("%+v %v\n", resp, err)
		os.Exit(0)
	}
	goleak.VerifyTestMain(m)
}

// fakePeer is a Handler that holds one name and an inbox in memory.
type fakePeer struct {
	mu      sync.Mutex
	name    string
	inbox   []relay.JSONMessage
	acked   []string
	sent    []string
	seen    []string      // what the last WaitNew was told was shown
	arrived chan struct{} // closed when a message is put in the inbox
	waiting chan struct{} // gets a value when Wait starts
	stopped chan error    // gets ctx.Err() when Wait returns
}

func newFake() *fakePeer {
	return &fakePeer{name: "bob", arrived: make(chan struct{}), waiting: make(chan struct{}, 4), stopped: make(chan error, 4)}
}

func (f *fakePeer) Status() any {
	return map[string]any{"self": map[string]string{"name": f.name}, "mode": "open"}
}

func (f *fakePeer) check(as string) error {
	if as != f.name {
		return errors.New("this peer holds " + f.name + ", not " + as)
	}
	return nil
}

func (f *fakePeer) Send(_ context.Context, as, to, body string) (relay.Result, error) {
	if err := f.check(as); err != nil {
		return relay.Result{}, err
	}
	f.mu.Lock()
	f.sent = append(f.sent, to+":"+body)
	f.mu.Unlock()
	return relay.Result{ID: "01J0000000000000000000000A", To: to, Status: "delivered"}, nil
}

func (f *fakePeer) Wait(ctx context.Context, as string) error {
	if err := f.check(as); err != nil {
		return err
	}
	f.waiting <- struct{}{}
	select {
	case <-f.arrived:
		f.stopped <- nil
	case <-ctx.Done():
		f.stopped <- ctx.Err()
	}
	return nil
}

func (f *fakePeer) WaitNew(ctx context.Context, as string, seen []string) error {
	f.mu.Lock()
	f.seen = seen
	f.mu.Unlock()
	return f.Wait(ctx, as)
}

func (f *fakePeer) Peek(as string) ([]relay.JSONMessage, error) {
	if err := f.check(as); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]relay.JSONMessage(nil), f.inbox...), nil
}

func (f *fakePeer) Ack(as string, ids []string) error {
	if err := f.check(as); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.acked = append(f.acked, ids...)
	return nil
}

func (f *fakePeer) deliver(m relay.JSONMessage) {
	f.mu.Lock()
	f.inbox = append(f.inbox, m)
	f.mu.Unlock()
	close(f.arrived)
}

func serve(t *testing.T, h Handler) *Server {
	t.Helper()
	dir, err := os.MkdirTemp("", "pafc")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	s, err := Listen(filepath.Join(dir, "c.sock"), h, testutil.QuietLogger(t, slog.LevelDebug))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// Each op reaches the handler with its fields and its answer comes back.
func TestOps(t *testing.T) {
	f := newFake()
	s := serve(t, f)
	st, err := os.Stat(s.Path())
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode %v (%v), want 0600", st.Mode().Perm(), err)
	}
	ctx := ctxT(t, 10*time.Second)

	resp, err := Call(ctx, s.Path(), Request{Op: OpStatus})
	if err != nil || resp.V != Version {
		t.Fatalf("status: %+v %v", resp, err)
	}
	var got map[string]any
	if err := json.Unmarshal(resp.Status, &got); err != nil || got["mode"] != "open" {
		t.Fatalf("status document %s (%v)", resp.Status, err)
	}

	resp, err = Call(ctx, s.Path(), Request{Op: OpSend, As: "bob", To: "alice", Message: "hi"})
	if err != nil || resp.Result == nil || resp.Result.Status != "delivered" || resp.Result.To != "alice" {
		t.Fatalf("send: %+v %v", resp, err)
	}
	if len(f.sent) != 1 || f.sent[0] != "alice:hi" {
		t.Fatalf("handler saw sends %v", f.sent)
	}

	f.inbox = []relay.JSONMessage{{ID: "m1", From: "alice", Body: "one"}}
	resp, err = Call(ctx, s.Path(), Request{Op: OpCheck, As: "bob"})
	if err != nil || len(resp.Messages) != 1 || resp.Messages[0].Body != "one" {
		t.Fatalf("check: %+v %v", resp, err)
	}
	if _, err := Call(ctx, s.Path(), Request{Op: OpAck, As: "bob", IDs: []string{"m1"}}); err != nil || len(f.acked) != 1 || f.acked[0] != "m1" {
		t.Fatalf("ack: %v, acked %v", err, f.acked)
	}
}

// Errors: the handler's, an unknown op, and another version, each as one
// error the client returns, with the response.
func TestErrors(t *testing.T) {
	s := serve(t, newFake())
	ctx := ctxT(t, 10*time.Second)
	tests := map[string]struct {
		req  Request
		want string
	}{
		"handler refuses":  {Request{Op: OpSend, As: "mallory", To: "x", Message: "y"}, "holds bob, not mallory"},
		"check refused":    {Request{Op: OpCheck, As: "mallory"}, "not mallory"},
		"listen refused":   {Request{Op: OpListen, As: "mallory"}, "not mallory"},
		"ack refused":      {Request{Op: OpAck, As: "mallory"}, "not mallory"},
		"watch refused":    {Request{Op: OpWatch, As: "mallory"}, "not mallory"},
		"unknown op":       {Request{Op: "teleport"}, `unknown op "teleport"`},
		"missing op":       {Request{}, "without op"},
		"status has no as": {Request{Op: OpStatus, As: "anyone"}, ""},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			resp, err := Call(ctx, s.Path(), tc.req)
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) || resp == nil || resp.Error != err.Error() {
				t.Fatalf("%+v: %v (resp %+v), want an error saying %q", tc.req, err, resp, tc.want)
			}
		})
	}

	// A request in another version: the client always sends Version, so
	// speak to the socket directly.
	c, err := net.Dial("unix", s.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte(`{"v":2,"op":"status"}` + "\n")); err != nil {
		t.Fatal(err)
	}
	var resp Response
	if err := json.NewDecoder(c).Decode(&resp); err != nil || !strings.Contains(resp.Error, "version 2, this peer speaks 1") {
		t.Fatalf("v2 request: %+v %v", resp, err)
	}
}

// listen waits for a message, and returns empty when its timeout passes.
func TestListen(t *testing.T) {
	f := newFake()
	s := serve(t, f)
	done := make(chan *Response, 1)
	go func() {
		resp, err := Call(ctxT(t, 20*time.Second), s.Path(), Request{Op: OpListen, As: "bob"})
		if err != nil {
			t.Error(err)
		}
		done <- resp
	}()
	<-f.waiting
	f.deliver(relay.JSONMessage{ID: "m1", From: "alice", Body: "there?"})
	resp := <-done
	if resp == nil || len(resp.Messages) != 1 || resp.Messages[0].Body != "there?" {
		t.Fatalf("listen: %+v", resp)
	}
	if err := <-f.stopped; err != nil {
		t.Fatalf("wait ended with %v, want the message", err)
	}

	g := newFake()
	s2 := serve(t, g)
	resp, err := Call(ctxT(t, 20*time.Second), s2.Path(), Request{Op: OpListen, As: "bob", Timeout: 0.05})
	if err != nil || len(resp.Messages) != 0 {
		t.Fatalf("listen with a timeout and nothing: %+v %v", resp, err)
	}
	if err := <-g.stopped; !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("wait ended with %v, want its timeout", err)
	}
}

// watch hands the ids already shown to the handler's WaitNew, returns the
// unread messages, marks nothing read, and returns empty at its timeout.
func TestWatch(t *testing.T) {
	f := newFake()
	s := serve(t, f)
	f.inbox = []relay.JSONMessage{{ID: "m0", From: "alice", Body: "old"}}
	done := make(chan *Response, 1)
	go func() {
		resp, err := Call(ctxT(t, 20*time.Second), s.Path(), Request{Op: OpWatch, As: "bob", IDs: []string{"m0"}})
		if err != nil {
			t.Error(err)
		}
		done <- resp
	}()
	<-f.waiting
	f.deliver(relay.JSONMessage{ID: "m1", From: "alice", Body: "new"})
	resp := <-done
	if resp == nil || len(resp.Messages) != 2 || resp.Messages[1].ID != "m1" {
		t.Fatalf("watch: %+v", resp)
	}
	f.mu.Lock()
	seen, acked := f.seen, f.acked
	f.mu.Unlock()
	if len(seen) != 1 || seen[0] != "m0" || len(acked) != 0 {
		t.Fatalf("handler saw seen=%v, acked=%v; want seen=[m0] and nothing acked", seen, acked)
	}
	if err := <-f.stopped; err != nil {
		t.Fatalf("wait ended with %v, want the message", err)
	}

	g := newFake()
	s2 := serve(t, g)
	resp, err := Call(ctxT(t, 20*time.Second), s2.Path(), Request{Op: OpWatch, As: "bob", Timeout: 0.05})
	if err != nil || len(resp.Messages) != 0 {
		t.Fatalf("watch with a timeout and nothing: %+v %v", resp, err)
	}
	if err := <-g.stopped; !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("wait ended with %v, want its timeout", err)
	}
}

// A client that goes away (Ctrl-C on listen) cancels the wait at once; a
// client whose context ends gets its error.
func TestClientGoesAway(t *testing.T) {
	f := newFake()
	s := serve(t, f)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := Call(ctx, s.Path(), Request{Op: OpListen, As: "bob"})
		errc <- err
	}()
	<-f.waiting
	cancel()
	if err := <-errc; err == nil {
		t.Fatal("a cancelled call returned no error")
	}
	select {
	case err := <-f.stopped:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("wait ended with %v, want canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the server kept waiting after its client went away")
	}
}

// Close is idempotent, removes the socket, and later calls fail; Listen
// replaces a stale socket file and refuses a path it cannot use.
func TestCloseAndListen(t *testing.T) {
	dir, err := os.MkdirTemp("", "pafc")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "c.sock")
	if err := os.WriteFile(path, []byte("stale"), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := Listen(path, newFake(), nil)
	if err != nil {
		t.Fatalf("listen over a stale file: %v", err)
	}
	s.Close()
	s.Close()
	if _, err := os.Lstat(path); !os.IsNotExist(err) {
		t.Fatalf("socket still there after Close: %v", err)
	}
	if _, err := Call(ctxT(t, 5*time.Second), path, Request{Op: OpStatus}); err == nil {
		t.Fatal("call to a closed server succeeded")
	}
	long := filepath.Join(dir, strings.Repeat("x", 120)+".sock")
	if _, err := Listen(long, newFake(), nil); err == nil || !strings.Contains(err.Error(), "107 bytes") {
		t.Fatalf("listen on a path too long: %v", err)
	}
}

// A response that is not JSON is an error naming the response.
func TestCallBadResponse(t *testing.T) {
	dir, err := os.MkdirTemp("", "pafc")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "c.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		_, _ = DecodeRequest(c)
		_, _ = c.Write([]byte("garbage"))
	}()
	if _, err := Call(ctxT(t, 5*time.Second), path, Request{Op: OpStatus}); err == nil || !strings.Contains(err.Error(), "read response") {
		t.Fatalf("garbage response: %v", err)
	}
}

// A Status the handler cannot encode is an error, not a broken response.
func TestStatusNotEncodable(t *testing.T) {
	s := serve(t, badStatus{newFake()})
	if _, err := Call(ctxT(t, 5*time.Second), s.Path(), Request{Op: OpStatus}); err == nil || !strings.Contains(err.Error(), "encode status") {
		t.Fatalf("unencodable status: %v", err)
	}
}

type badStatus struct{ *fakePeer }

func (badStatus) Status() any { return make(chan int) }

const otherUserEnv = "PAF_CONTROL_TEST_OTHER_USER"

// Another local user cannot act through a peer's control socket, even when the socket's
// mode and directory would let them connect: the server checks who connected
// (SO_PEERCRED) and refuses (Security I #2).
func TestServerRefusesAnotherUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root, to run a client as another user")
	}
	dir, err := os.MkdirTemp("", "pafc")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	f := newFake()
	f.inbox = []relay.JSONMessage{{ID: "01HZY0000000000000000000AB", From: "alice", To: "bob", Body: "private"}}
	srv, err := Listen(filepath.Join(dir, "c.sock"), f, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if err := os.Chmod(srv.Path(), 0o777); err != nil { // loosened by mistake
		t.Fatal(err)
	}
	self, _ := os.Executable()
	data, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "client")
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-test.run=^$")
	cmd.Env = append(os.Environ(), otherUserEnv+"="+srv.Path())
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("client: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "refused") || strings.Contains(string(out), "private") {
		t.Fatalf("another user's request: %q, want a refusal that shows nothing", out)
	}
	// Our own user is still served.
	resp, err := Call(context.Background(), srv.Path(), Request{Op: OpCheck, As: "bob"})
	if err != nil || len(resp.Messages) != 1 {
		t.Fatalf("our own request: %+v, %v", resp, err)
	}
}

// ctxWaiter is a fakePeer whose Wait, as Handler's contract and the real peer's say,
// returns nil when its context ends. (A fake that failed instead hid that the shutdown went
// unsaid: the real listen was answered "nothing arrived".)
type ctxWaiter struct{ *fakePeer }

func (w ctxWaiter) Wait(ctx context.Context, as string) error {
	w.waiting <- struct{}{}
	<-ctx.Done()
	return nil
}

// A listen with no timeout does not hold up shutdown (issue: serve still ran 18 s after
// SIGTERM with a `listen --as bob` connected): Close ends the wait, and the client is told
// in words that the peer shut down and nothing was marked read.
func TestCloseEndsWaitingListen(t *testing.T) {
	dir, err := os.MkdirTemp("", "pafc")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	f := ctxWaiter{newFake()}
	srv, err := Listen(filepath.Join(dir, "c.sock"), f, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := Call(context.Background(), srv.Path(), Request{Op: OpListen, As: "bob"})
		done <- err
	}()
	<-f.waiting
	closed := make(chan struct{})
	go func() { srv.Close(); close(closed) }()
	select {
	case err := <-done:
		if !errors.Is(err, ErrShuttingDown) && (err == nil || !strings.Contains(err.Error(), "shut down")) {
			t.Fatalf("the listen ended with %v, want the shutdown said", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a waiting listen held up Close")
	}
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not return")
	}
}
