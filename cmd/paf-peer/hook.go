package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/paf-mesh/paf-mesh/mesh"
	"github.com/paf-mesh/paf-mesh/node"
	"github.com/paf-mesh/paf-mesh/node/control"
)

// runHook is `paf-peer hook`: a Claude Code hook command. For
// UserPromptSubmit and SessionStart it adds a note about unread messages to
// the model's context; for Stop (configured with asyncRewake) it exits 2 with
// the note on stderr, which wakes an idle session. Messages stay unread: the
// agent reads them with paf_check, so each is shown in full exactly once.
//
// The name is --as, else PAF_NAME, else the name held by the `paf-peer mcp`
// peer that the same Claude Code process started (node.PeerStartedBy).
func runHook(ctx context.Context, args []string, io stdio, getenv func(string) string) error {
	fs := newFlagSet("hook", "[--as NAME]   (reads the hook's JSON on stdin)", io)
	var cf commonFlags
	cf.register(fs, false)
	as := fs.String("as", "", "the name whose messages to report (default: PAF_NAME, else this session's mcp peer)")
	if err := parseNoArgs(fs, args); err != nil {
		return err
	}
	in, err := node.ReadHookInput(io.in)
	if err != nil {
		return err
	}
	switch in.HookEventName {
	case "UserPromptSubmit", "SessionStart", "Stop":
	default:
		return nil // nothing to add for other events
	}
	if cf.logLevel == "" {
		cf.logLevel = "error"
	}
	s, err := cf.resolve(getenv)
	if err != nil {
		return err
	}
	name := *as
	if name == "" {
		name = getenv("PAF_NAME")
	}
	if name != "" {
		if name, err = mesh.NormalizeName(name); err != nil {
			return usagef("--as: %v", err)
		}
	}
	if in.HookEventName == "Stop" && in.StopHookActive {
		return nil // already going on because of a Stop hook: never wake in a loop
	}
	wait := time.Duration(0)
	if in.HookEventName == "SessionStart" {
		wait = node.HookPeerWait // the client may start its mcp peer after this hook
	}
	name, ctl := node.SessionPeer(ctx, s.RunDir, name, os.Getppid(), wait)
	if ctl == "" {
		return nil // no peer of ours is running: nothing to report
	}
	cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	resp, err := control.Call(cctx, ctl, control.Request{Op: control.OpCheck, As: name})
	if err != nil || len(resp.Messages) == 0 {
		return nil // a hook must never get in the way of the session
	}
	note := node.UnreadNote(name, resp.Messages)
	if in.HookEventName == "Stop" {
		// Wake once per new message: not again for ones the model left unread.
		// Without a memory (state dir not writable) it wakes: stop_hook_active stops a loop.
		if fresh, err := node.FreshForStop(s.StateDir, in.SessionID, resp.Messages); err == nil && len(fresh) == 0 {
			return nil
		}
		fmt.Fprintln(io.err, note)
		return hookWake{}
	}
	out := map[string]any{"hookSpecificOutput": map[string]string{
		"hookEventName": in.HookEventName, "additionalContext": note,
	}}
	return json.NewEncoder(io.out).Encode(out)
}

// hookWake makes run exit 2 without printing an error line: for a Stop hook,
// exit 2 with the message on stderr is how Claude Code is asked to go on.
type hookWake struct{}

func (hookWake) Error() string { return "" }
