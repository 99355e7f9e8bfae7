package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/paf-mesh/paf-mesh/internal/termsafe"
	"github.com/paf-mesh/paf-mesh/mesh"
	"github.com/paf-mesh/paf-mesh/node"
	"github.com/paf-mesh/paf-mesh/relay"
)

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

// setup resolves the settings and acts as --as; close ends the actor's peer,
// if it started one, and then the log.
func (f *messageFlags) setup(ctx context.Context, io stdio, getenv func(string) string) (a *node.Actor, close func(), err error) {
	if f.as == "" {
		return nil, nil, usagef("--as NAME is required: the name to act as")
	}
	name, err := mesh.NormalizeName(f.as)
	if err != nil {
		return nil, nil, usagef("--as: %v", err)
	}
	if f.logLevel == "" && getenv("PAF_LOG_LEVEL") == "" {
		f.logLevel = "warn" // a shell command's stderr is for its own errors
	}
	s, err := f.resolve(getenv)
	if err != nil {
		return nil, nil, err
	}
	log, closeLog, err := s.logger(io.err)
	if err != nil {
		return nil, nil, err
	}
	if a, err = node.ActAs(ctx, s.config(log), name); err != nil {
		closeLog()
		return nil, nil, err
	}
	return a, func() { a.Close(); closeLog() }, nil
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
	a, closeActor, err := f.setup(ctx, io, getenv)
	if err != nil {
		return err
	}
	defer closeActor()
	res, err := a.Send(ctx, to, msg)
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
	case relay.StatusQueued:
		fmt.Fprintf(io.out, "queued for %s%s, not confirmed yet: %s (id %s)\n", res.To, via, res.Reason, res.ID)
	case "stored":
		peers := "peers"
		if res.Holders == 1 {
			peers = "peer"
		}
		why := ""
		if res.Reason != "" {
			why = " (" + res.Reason + ")"
		} else if res.Unanswered {
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
	if err := parseNoArgs(fs, args); err != nil {
		return err
	}
	var d time.Duration
	if timeout != "" {
		secs, err := strconv.ParseFloat(timeout, 64)
		if err != nil || secs <= 0 || secs > 24*3600 {
			return usagef("--timeout %q: want a number of seconds above 0 and at most 86400 (omit it to wait until interrupted)", timeout)
		}
		d = time.Duration(secs * float64(time.Second))
	}
	a, closeActor, err := f.setup(ctx, io, getenv)
	if err != nil {
		return err
	}
	defer closeActor()
	ms, err := a.Messages(ctx, wait, d)
	if err != nil {
		return err
	}
	if ms == nil {
		ms = []relay.JSONMessage{}
	}
	if f.jsonOut {
		err = json.NewEncoder(io.out).Encode(map[string]any{"messages": ms})
	} else {
		printMessages(io.out, a.Name(), ms)
	}
	if err != nil {
		return err
	}
	// Printed: now they are read. (Acknowledged with a fresh context, so a
	// Ctrl-C that arrives after printing still marks them read.)
	actx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := a.Ack(actx, ms); err != nil {
		return fmt.Errorf("messages shown but not marked read (they will be shown again): %w", err)
	}
	if wait && len(ms) == 0 && ctx.Err() == nil {
		fmt.Fprintf(io.err, "paf-peer listen: nothing arrived for %s within %s\n", a.Name(), d)
	}
	return nil
}

func printMessages(w io.Writer, name string, ms []relay.JSONMessage) {
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
			fmt.Fprintf(w, "intent: %s\n", termsafe.EscapeLine(m.Intent))
		}
		// A saved body's preview ends with the file's path. Escaped: another peer's text.
		fmt.Fprintln(w, termsafe.Escape(m.Body))
	}
}
