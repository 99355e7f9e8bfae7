package node

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/paf-mesh/paf-mesh/internal/termsafe"
	"github.com/paf-mesh/paf-mesh/node/control"
	"github.com/paf-mesh/paf-mesh/relay"
)

// WatchConfig configures Watch.
type WatchConfig struct {
	RunDir string
	// Name is the name to watch; "" finds the session's peer (WatchTarget).
	Name string
	// PPID is the watcher's parent process: the agent client, or the shell
	// it ran the watcher through.
	PPID int
	// Out receives one line per new message.
	Out io.Writer
	// Logger reports why no peer is being watched (to stderr); nil: quiet.
	Logger *slog.Logger
	// Retry is the pause before looking for the peer again after it was not
	// found or went away (0: 1 s).
	Retry time.Duration
	// Poll bounds one wait at the peer, after which the watcher looks up the
	// peer again (a rename moves the session to another name) (0: 30 s).
	Poll time.Duration
}

// Watch prints one line per new message for the watched name until ctx
// ends: who wrote, a preview, and how to read it. It never marks anything
// read, and tells of each message once (the messages already announced are
// passed to the peer's watch op, which waits for others). It survives its
// peer restarting: it looks for the peer again, every Retry, for as long as
// it runs. It returns nil when ctx ends, or an error writing Out.
func Watch(ctx context.Context, cfg WatchConfig) error {
	if cfg.Retry <= 0 {
		cfg.Retry = time.Second
	}
	if cfg.Poll <= 0 {
		cfg.Poll = 30 * time.Second
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	announced := map[string]bool{}
	lastProblem := ""
	problem := func(s string) {
		if s != lastProblem {
			log.Info(s)
			lastProblem = s
		}
	}
	for {
		name, ctl := WatchTarget(cfg.RunDir, cfg.Name, cfg.PPID)
		if ctl == "" {
			if cfg.Name != "" {
				problem(fmt.Sprintf("watch: no peer on this machine holds %s yet; looking again every %v", cfg.Name, cfg.Retry))
			} else {
				problem(fmt.Sprintf("watch: no named peer of this session yet; looking again every %v", cfg.Retry))
			}
		} else {
			ids := make([]string, 0, len(announced))
			for id := range announced {
				ids = append(ids, id)
			}
			cctx, cancel := context.WithTimeout(ctx, cfg.Poll+10*time.Second)
			resp, err := control.Call(cctx, ctl, control.Request{Op: control.OpWatch, As: name, IDs: ids, Timeout: cfg.Poll.Seconds()})
			cancel()
			if ctx.Err() != nil {
				return nil
			}
			if err == nil {
				if lastProblem != "" {
					log.Info("watch: watching " + name)
					lastProblem = ""
				}
				unread := make(map[string]bool, len(resp.Messages))
				for _, m := range resp.Messages {
					unread[m.ID] = true
					if !announced[m.ID] {
						if _, err := fmt.Fprintln(cfg.Out, WatchLine(name, m)); err != nil {
							return err
						}
					}
				}
				announced = unread // what was read since is forgotten: the set stays small
				continue
			}
			problem(fmt.Sprintf("watch: the peer holding %s: %v; looking again every %v", name, err, cfg.Retry))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(cfg.Retry):
		}
	}
}

// WatchTarget finds the peer a watcher reports on: the live local holder of
// name when name is given; else the named peer started by the watcher's
// client (as a hook finds it, PeerStartedBy); else, when the client started
// no peer at all, the only named peer of this user on this machine (a
// watcher in a terminal). A client's peer that has no name yet is waited
// for, never replaced by another session's.
func WatchTarget(runDir, name string, ppid int) (peerName, ctl string) {
	if name != "" {
		return name, LocalHolder(runDir, name)
	}
	if peerName, ctl = PeerStartedBy(runDir, ppid); ctl != "" {
		return peerName, ctl
	}
	peers := LocalPeers(runDir)
	var only []int
	for i, e := range peers {
		if e.Control == "" {
			continue // a shell command's brief peer
		}
		if p := parentOf(e.PID); p > 1 && (p == ppid || p == parentOf(ppid)) {
			return "", "" // this session's peer, not named yet
		}
		if e.Name != "" {
			only = append(only, i)
		}
	}
	if len(only) == 1 {
		return peers[only[0]].Name, peers[only[0]].Control
	}
	return "", ""
}

// previewRunes is how much of a body a watch line shows.
const previewRunes = 160

// WatchLine is the line Watch prints for m, a message for name: one line,
// control characters escaped.
func WatchLine(name string, m relay.JSONMessage) string {
	what := "message"
	read := "read it with paf_check"
	switch {
	case m.Broadcast:
		what = "broadcast"
	case m.Kind == relay.KindReply.String():
		what, read = "reply", "read it with paf_check or paf_wait_response"
	case m.ConversationID != "":
		what, read = "conversation message", "read it with paf_check, answer with paf_respond"
	case m.Kind != "" && m.Kind != relay.KindMessage.String():
		what = termsafe.Clip(m.Kind, 20)
	}
	return fmt.Sprintf("paf: %s from %s to %s: \"%s\" (%s)", what, termsafe.Clip(m.From, 64), termsafe.Clip(name, 64), termsafe.Clip(m.Body, previewRunes), read)
}
