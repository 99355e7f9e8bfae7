package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/paf-mesh/paf-mesh/discovery"
	"github.com/paf-mesh/paf-mesh/mesh"
	"github.com/paf-mesh/paf-mesh/relay"
)

// actor is how a shell command acts as NAME: through the live peer on this
// machine that holds NAME (its control socket), or, when there is none, as a
// brief peer of its own that joins the mesh as NAME and leaves afterwards.
type actor struct {
	name string
	ctl  string // control socket of the live peer, or ""
	n    *node  // the brief peer, or nil
	// closeLog closes the log file, if any, after the brief peer.
	closeLog func()
}

func actAs(ctx context.Context, s *settings, name string, log *slog.Logger) (*actor, error) {
	name, err := normalizeName(name)
	if err != nil {
		return nil, usagef("--as: %v", err)
	}
	a := &actor{name: name}
	if a.ctl = localHolder(s, name); a.ctl != "" {
		return a, nil
	}
	n, err := startNode(ctx, s, nodeOptions{Name: name, Quiet: true}, log)
	if errors.Is(err, mesh.ErrNameTaken) {
		// Maybe a peer on this machine that started a moment ago: its
		// entry may just have appeared. Look again before giving up.
		deadline := time.Now().Add(2 * time.Second)
		for time.Now().Before(deadline) {
			if a.ctl = localHolder(s, name); a.ctl != "" {
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

// localHolder returns the control socket of the live peer on this machine
// that holds name, or "".
func localHolder(s *settings, name string) string {
	local, err := discovery.NewLocal(s.RunDir, nil)
	if err != nil {
		return ""
	}
	entries, err := local.Entries()
	if err != nil {
		return ""
	}
	for _, e := range entries {
		if e.Name == name && e.Control != "" {
			return e.Control
		}
	}
	return ""
}

func (a *actor) close() {
	if a.n != nil {
		a.n.Close()
	}
	if a.closeLog != nil {
		a.closeLog()
	}
}

func (a *actor) call(ctx context.Context, req controlRequest) (*controlResponse, error) {
	req.As = a.name
	return callControl(ctx, a.ctl, req)
}

func (a *actor) send(ctx context.Context, to, msg string) (relay.Result, error) {
	if a.n != nil {
		return a.n.relay.Send(ctx, relay.Outgoing{From: a.name, To: to, Body: msg})
	}
	resp, err := a.call(ctx, controlRequest{Op: "send", To: to, Message: msg})
	if err != nil {
		return relay.Result{}, err
	}
	return *resp.Result, nil
}

// messages returns the unread messages (waiting up to timeout for one when
// wait is set) without marking them read.
func (a *actor) messages(ctx context.Context, wait bool, timeout time.Duration) ([]jsonMessage, error) {
	if a.n != nil {
		// A brief peer: the holders of messages for this name hand them
		// over now that it is online; wait (briefly) for that.
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
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
		return toJSONMessages(ms), err
	}
	op := "check"
	if wait {
		op = "listen"
	}
	resp, err := a.call(ctx, controlRequest{Op: op, Timeout: timeout.Seconds()})
	if err != nil {
		return nil, err
	}
	return resp.Messages, nil
}

func (a *actor) ack(ctx context.Context, ms []jsonMessage) error {
	if len(ms) == 0 {
		return nil
	}
	ids := make([]string, len(ms))
	for i, m := range ms {
		ids[i] = m.ID
	}
	if a.n != nil {
		_, err := a.n.relay.Ack(a.name, ids)
		return err
	}
	_, err := a.call(ctx, controlRequest{Op: "ack", IDs: ids})
	return err
}

// messageFlags are what send, check and listen share.
type messageFlags struct {
	commonFlags
	as      string
	jsonOut bool
}

func (f *messageFlags) register(fs *flagSet) {
	f.commonFlags.register(fs, false)
	fs.StringVar(&f.as, "as", "", "the name to act as (required)")
	f.tune.register(fs, false)
	fs.BoolVar(&f.jsonOut, "json", false, "print one JSON object (the shape is stable)")
}

func (f *messageFlags) setup(ctx context.Context, io stdio, getenv func(string) string) (*actor, error) {
	if f.as == "" {
		return nil, usagef("--as NAME is required: the name to act as")
	}
	if f.logLevel == "" && getenv("PAF_LOG_LEVEL") == "" {
		f.logLevel = "warn" // a shell command's stderr is for its own errors
	}
	s, err := f.resolve(getenv)
	if err != nil {
		return nil, err
	}
	log, closeLog, err := s.logger(io.err)
	if err != nil {
		return nil, err
	}
	a, err := actAs(ctx, s, f.as, log)
	if err != nil {
		closeLog()
		return nil, err
	}
	a.closeLog = closeLog
	return a, nil
}

func runSend(ctx context.Context, args []string, io stdio, getenv func(string) string) error {
	fs := newFlagSet("send", "--as NAME TO MESSAGE [--json]   (MESSAGE - reads stdin)", io)
	var f messageFlags
	f.register(fs)
	rest, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(rest) != 2 {
		return usagef("want TO and MESSAGE, got %d argument(s); quote a message with spaces, or use - to read it from stdin", len(rest))
	}
	to, msg := rest[0], rest[1]
	if msg == "-" {
		b, err := io2string(io.in)
		if err != nil {
			return fmt.Errorf("read message from stdin: %w", err)
		}
		msg = b
	}
	if strings.TrimSpace(msg) == "" {
		if rest[1] == "-" {
			return usagef("the message read from stdin is empty: nothing was sent")
		}
		return usagef("the message is empty: nothing was sent; give its text, or - to read it from stdin")
	}
	a, err := f.setup(ctx, io, getenv)
	if err != nil {
		return err
	}
	defer a.close()
	res, err := a.send(ctx, to, msg)
	if errors.Is(err, relay.ErrNoHolders) {
		// Only this brief peer was online, and it leaves as soon as the
		// command ends: nobody could keep the message.
		return fmt.Errorf("nothing was sent: %s is offline, and no other peer is running to keep the message until it comes back (this command's own peer leaves when it ends); start a peer that stays (paf-peer serve), or send when %s is online", to, to)
	}
	if err != nil {
		return err
	}
	if f.jsonOut {
		return json.NewEncoder(io.out).Encode(res)
	}
	via := ""
	if res.ForwardedFrom != "" {
		via = fmt.Sprintf(" (sent to %s, which now forwards to %s)", res.ForwardedFrom, res.To)
	}
	switch res.Status {
	case "stored":
		peers := "peers"
		if res.Holders == 1 {
			peers = "peer"
		}
		why := ""
		if res.Unanswered {
			why = " (its peer is not answering)"
		}
		fmt.Fprintf(io.out, "stored for %s%s, held by %d %s until it comes online%s (id %s)\n", res.To, why, res.Holders, peers, via, res.ID)
	default:
		fmt.Fprintf(io.out, "delivered to %s%s (id %s)\n", res.To, via, res.ID)
	}
	return nil
}

func io2string(r io.Reader) (string, error) {
	if r == nil {
		return "", errors.New("no stdin")
	}
	b, err := io.ReadAll(io.LimitReader(r, 64<<20))
	return string(b), err
}

func runCheck(ctx context.Context, args []string, io stdio, getenv func(string) string) error {
	return readMessages(ctx, "check", "--as NAME [--json]", false, args, io, getenv)
}

func runListen(ctx context.Context, args []string, io stdio, getenv func(string) string) error {
	return readMessages(ctx, "listen", "--as NAME [--timeout S] [--json]", true, args, io, getenv)
}

func readMessages(ctx context.Context, cmd, usage string, wait bool, args []string, io stdio, getenv func(string) string) error {
	fs := newFlagSet(cmd, usage, io)
	var f messageFlags
	f.register(fs)
	var timeout string
	if wait {
		fs.StringVar(&timeout, "timeout", "", "give up after this many seconds (default: wait until interrupted)")
	}
	rest, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return usagef("unexpected argument %q", rest[0])
	}
	var d time.Duration
	if timeout != "" {
		secs, err := strconv.ParseFloat(timeout, 64)
		if err != nil || secs <= 0 || secs > 24*3600 {
			return usagef("--timeout %q: want a number of seconds above 0 and at most 86400 (omit it to wait until interrupted)", timeout)
		}
		d = time.Duration(secs * float64(time.Second))
	}
	a, err := f.setup(ctx, io, getenv)
	if err != nil {
		return err
	}
	defer a.close()
	ms, err := a.messages(ctx, wait, d)
	if err != nil {
		return err
	}
	if ms == nil {
		ms = []jsonMessage{}
	}
	if f.jsonOut {
		err = json.NewEncoder(io.out).Encode(map[string]any{"messages": ms})
	} else {
		printMessages(io.out, a.name, ms)
	}
	if err != nil {
		return err
	}
	// Printed: now they are read. (Acknowledged with a fresh context, so a
	// Ctrl-C that arrives after printing still marks them read.)
	actx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := a.ack(actx, ms); err != nil {
		return fmt.Errorf("messages shown but not marked read (they will be shown again): %w", err)
	}
	if wait && len(ms) == 0 && ctx.Err() == nil {
		fmt.Fprintf(io.err, "paf-peer listen: nothing arrived for %s within %s\n", a.name, d)
	}
	return nil
}

func printMessages(w io.Writer, name string, ms []jsonMessage) {
	if len(ms) == 0 {
		fmt.Fprintf(w, "no unread messages for %s\n", name)
		return
	}
	plural := "s"
	if len(ms) == 1 {
		plural = ""
	}
	fmt.Fprintf(w, "%d message%s for %s:\n", len(ms), plural, name)
	for _, m := range ms {
		var extra []string
		if m.Kind != "message" {
			extra = append(extra, m.Kind)
		}
		if m.Broadcast {
			extra = append(extra, "broadcast")
		}
		if m.ForwardedFrom != "" {
			extra = append(extra, "sent to "+m.ForwardedFrom)
		}
		if m.ConversationID != "" {
			extra = append(extra, "conversation "+m.ConversationID)
		}
		when := m.SentAt
		if t, err := time.Parse(time.RFC3339Nano, m.SentAt); err == nil {
			when = t.Local().Format("2006-01-02 15:04:05")
		}
		fmt.Fprintf(w, "\n── from %s at %s", m.From, when)
		if len(extra) > 0 {
			fmt.Fprintf(w, " (%s)", strings.Join(extra, ", "))
		}
		fmt.Fprintf(w, " · id %s\n", m.ID)
		if m.Intent != "" {
			fmt.Fprintf(w, "intent: %s\n", m.Intent)
		}
		// A body saved to a file is a preview ending with the file's path.
		fmt.Fprintln(w, m.Body)
	}
}
