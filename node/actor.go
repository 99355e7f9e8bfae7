package node

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/paf-mesh/paf-mesh/discovery"
	"github.com/paf-mesh/paf-mesh/mesh"
	"github.com/paf-mesh/paf-mesh/node/control"
	"github.com/paf-mesh/paf-mesh/relay"
)

// Actor is how a shell command acts as a name: through the live peer on
// this machine that holds the name (its control socket), or, when there is
// none, as a brief peer of its own that joins the mesh as the name and
// leaves at Close (SPEC section 6, send/check/listen).
type Actor struct {
	name   string
	runDir string
	ctl    string // control socket of the live peer, or ""
	n      *Node  // the brief peer, or nil
}

// localRetry is how long ActAs looks again for a local holder of a name the
// mesh says is taken: a peer on this machine that started a moment ago may
// hold it while its rendezvous entry is still being written.
const localRetry = 2 * time.Second

// ActAs returns an Actor for name (already normalized). The brief peer, if
// one is needed, runs with cfg (Brief and Name set here). A name held by a
// peer on another machine is an error that says to act from there.
func ActAs(ctx context.Context, cfg Config, name string) (*Actor, error) {
	a := &Actor{name: name, runDir: cfg.RunDir}
	if a.ctl = LocalHolder(cfg.RunDir, name); a.ctl != "" {
		return a, nil
	}
	cfg.Name, cfg.Brief = name, true
	// A fixed port (PAF_BIND) belongs to the machine's long-lived peer: a brief
	// one taking it would make that peer's restart fail (issue 17 item 4).
	if cfg.Bind.IsValid() {
		cfg.Bind = netip.AddrPortFrom(cfg.Bind.Addr(), 0)
	}
	n, err := New(ctx, cfg)
	if errors.Is(err, mesh.ErrNameTaken) {
		deadline := time.Now().Add(localRetry)
		for time.Now().Before(deadline) {
			if a.ctl = LocalHolder(cfg.RunDir, name); a.ctl != "" {
				return a, nil
			}
			time.Sleep(50 * time.Millisecond)
		}
		return nil, fmt.Errorf("%v; a peer elsewhere holds it, so act as %s from that peer's machine, or use your own name", err, name)
	}
	if err != nil {
		return nil, err
	}
	a.n = n
	return a, nil
}

// LocalHolder returns the control socket of the live peer on this machine
// (advertised in runDir) that holds name, or "".
func LocalHolder(runDir, name string) string {
	for _, e := range LocalPeers(runDir) {
		if e.Name == name && e.Control != "" {
			return e.Control
		}
	}
	return ""
}

// LocalPeers lists the live peers advertised in runDir; nil when it cannot
// be read. An entry's control socket is kept only if it is where this run
// dir's peers put theirs and is a socket of this user (discovery's
// ControlSocket); otherwise Control is "": nothing planted is spoken to.
func LocalPeers(runDir string) []discovery.Entry {
	local, err := discovery.NewLocal(runDir, nil)
	if err != nil {
		return nil
	}
	entries, err := local.Entries()
	if err != nil {
		return nil
	}
	for i, e := range entries {
		if entries[i].Control, err = local.ControlSocket(e); err != nil {
			entries[i].Control = ""
		}
	}
	return entries
}

// Name is the name acted as.
func (a *Actor) Name() string { return a.name }

// Brief reports whether the actor runs a brief peer of its own (no live
// peer on this machine holds the name).
func (a *Actor) Brief() bool { return a.n != nil }

// Close leaves the mesh if the actor joined it. It is idempotent.
func (a *Actor) Close() {
	if a.n != nil {
		a.n.Close()
	}
}

// yielded reports whether the brief peer gave the name up to a long-lived
// peer that wants it, or lost it to one that claimed it at the same moment
// (claim.go).
func (a *Actor) yielded() bool {
	if a.n == nil {
		return false
	}
	select {
	case <-a.n.Yielded():
		return true
	default:
		return a.n.Name() != a.name
	}
}

// follow goes on through the long-lived peer on this machine that took the
// name from the brief peer: the brief peer leaves, and the actor waits (up to
// followPatience, or ctx) for the long-lived peer's control socket.
func (a *Actor) follow(ctx context.Context) error {
	a.n.Close()
	a.n = nil
	deadline := time.Now().Add(followPatience)
	for {
		if a.ctl = LocalHolder(a.runDir, a.name); a.ctl != "" {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("a long-lived peer took the name %s while this command ran, and it is not on this machine (or has not started yet); act as %s from that peer's machine, or run the command again", a.name, a.name)
		}
		time.Sleep(50 * time.Millisecond) // polling the run dir
	}
}

// followPatience bounds how long an actor whose brief peer gave its name up
// waits for the long-lived peer that took it to serve its control socket: it
// claims at once, then opens the socket and advertises it.
const followPatience = 10 * time.Second

// handoffPatience bounds a brief peer's last try to deliver or store its queued messages
// before it exits.
const handoffPatience = 5 * time.Second

// handoff is what a brief peer does with a queued message before it exits (SPEC section 3):
// one more try to deliver or store everything queued; what still is not confirmed stays in
// the brief peer's outbox file in the state dir, for the state dir's long-lived peer (serve,
// mcp) to take over and send. The result says which.
func (a *Actor) handoff(ctx context.Context, res relay.Result) relay.Result {
	hctx, cancel := context.WithTimeout(ctx, handoffPatience)
	defer cancel()
	h := a.n.relay.Handoff(hctx)
	if sent, ok := h.Sent[res.ID]; ok {
		return sent
	}
	where := "no long-lived peer (paf-peer serve, or an agent session's) runs on this machine now: it is sent when one starts with this state dir"
	for _, e := range LocalPeers(a.n.cfg.RunDir) {
		if e.Control != "" && e.ID != a.n.ID() {
			where = "a long-lived peer runs on this machine: one that uses this state dir takes it over within seconds and retries it"
			break
		}
	}
	res.Reason += fmt.Sprintf("; this command's brief peer exits now, so it left the message in %s: %s", h.File, where)
	return res
}

func (a *Actor) call(ctx context.Context, req control.Request) (*control.Response, error) {
	req.As = a.name
	return control.Call(ctx, a.ctl, req)
}

// Send sends msg to to. A brief peer that finds nobody to keep a message for
// an offline name returns relay.ErrNoHolders.
func (a *Actor) Send(ctx context.Context, to, msg string) (relay.Result, error) {
	if a.yielded() {
		if err := a.follow(ctx); err != nil {
			return relay.Result{}, err
		}
	}
	if a.n != nil {
		res, err := a.n.relay.Send(ctx, relay.Outgoing{From: a.name, To: to, Body: msg})
		if err == nil && res.Status == relay.StatusQueued {
			res = a.handoff(ctx, res)
		}
		return res, err
	}
	resp, err := a.call(ctx, control.Request{Op: control.OpSend, To: to, Message: msg})
	if err != nil {
		return relay.Result{}, err
	}
	if resp.Result == nil {
		return relay.Result{}, errors.New("control: send answered without a result")
	}
	return *resp.Result, nil
}

// Messages returns the unread messages (waiting up to timeout for one when
// wait is set; 0 waits until ctx ends) without marking them read: call Ack
// once they are shown.
func (a *Actor) Messages(ctx context.Context, wait bool, timeout time.Duration) ([]relay.JSONMessage, error) {
	start := time.Now()
	if a.n != nil && !a.yielded() {
		// A brief peer, until a long-lived peer wants the name.
		yctx, cancel := context.WithCancel(ctx)
		yielded := a.n.Yielded()
		go func() {
			select {
			case <-yielded:
				cancel()
			case <-yctx.Done():
			}
		}()
		ms, err := a.briefMessages(yctx, wait, timeout)
		cancel()
		if !a.yielded() {
			return ms, err
		}
	}
	if a.yielded() {
		if err := a.follow(ctx); err != nil {
			return nil, err
		}
		if timeout > 0 {
			// What the brief peer waited counts against the timeout.
			timeout = max(timeout-time.Since(start), time.Millisecond)
		}
	}
	op := control.OpCheck
	if wait {
		op = control.OpListen
	}
	resp, err := a.call(ctx, control.Request{Op: op, Timeout: timeout.Seconds()})
	if err != nil {
		return nil, err
	}
	return resp.Messages, nil
}

// briefMessages is Messages through the brief peer: the holders of messages
// for this name hand them over now that it is online; it waits (briefly) for
// that, and then, for listen, for a message.
func (a *Actor) briefMessages(ctx context.Context, wait bool, timeout time.Duration) ([]relay.JSONMessage, error) {
	cctx, cancel := context.WithTimeout(ctx, BriefCollectPatience)
	err := a.n.relay.Collect(cctx, a.name)
	cancel()
	if err != nil && ctx.Err() == nil {
		return nil, fmt.Errorf("collect stored messages: %w", err)
	}
	if wait {
		wctx := ctx
		if timeout > 0 {
			var cancel context.CancelFunc
			wctx, cancel = context.WithTimeout(ctx, timeout)
			defer cancel()
		}
		if err := a.n.relay.Wait(wctx, a.name); err != nil && wctx.Err() == nil {
			return nil, err
		}
	}
	ms, err := a.n.relay.Peek(a.name)
	return JSONMessages(ms), err
}

// Ack marks ms read.
func (a *Actor) Ack(ctx context.Context, ms []relay.JSONMessage) error {
	if len(ms) == 0 {
		return nil
	}
	ids := make([]string, len(ms))
	for i, m := range ms {
		ids[i] = m.ID
	}
	if a.yielded() {
		if err := a.follow(ctx); err != nil {
			return err
		}
	}
	if a.n != nil {
		_, err := a.n.relay.Ack(a.name, ids)
		return err
	}
	_, err := a.call(ctx, control.Request{Op: control.OpAck, IDs: ids})
	return err
}

// PeerStartedBy finds the live named peer on this machine (advertised in
// runDir) started by the same client process as the caller, and returns its
// name and control socket, or "", "". A hook command uses it to find the
// `paf-peer mcp` peer of its own agent session: both descend from the same
// client process. ppid is the caller's parent: the client itself, or a shell
// the client ran the hook through (Claude Code runs hooks with `/bin/sh -c`,
// and dash does not exec the command), so the peer's parent is matched against
// ppid and then ppid's parent. No further: an ancestor beyond that (the
// terminal's shell) may have started peers of other sessions.
func PeerStartedBy(runDir string, ppid int) (name, control string) {
	peers := LocalPeers(runDir)
	for _, anc := range []int{ppid, parentOf(ppid)} {
		if anc <= 1 {
			break
		}
		for _, e := range peers {
			if e.Name != "" && e.Control != "" && parentOf(e.PID) == anc {
				return e.Name, e.Control
			}
		}
	}
	return "", ""
}
