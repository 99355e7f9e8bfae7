package clients

// The scripted models: what a listening session and a calling session do,
// the Phone-a-Friend way (SPEC section 4), whatever client runs them.

import (
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/paf-mesh/paf-mesh/internal/testutil"
)

// waitSeconds is what the scripts ask blocking tools to wait: under every
// client's tool timeout (Codex: 60 s).
const waitSeconds = 40

// lastIs reports whether r's newest tool result came from the tool suffix,
// and returns it.
func lastIs(r *Request, suffix string) (Result, bool) {
	res, ok := r.Last()
	if !ok {
		return res, false
	}
	return res, res.Name == suffix || strings.HasSuffix(res.Name, "_"+suffix)
}

// anyResultHas reports whether some tool result contains s.
func anyResultHas(r *Request, s string) bool {
	for _, res := range r.Results() {
		if strings.Contains(res.Content, s) {
			return true
		}
	}
	return false
}

// listener listens as name until the question arrives, answers it with
// paf_respond, and ends its turn.
func listener(name, question, answer string) Script {
	return func(r *Request) Reply {
		res, ok := r.Last()
		switch {
		case !ok:
			return CallTool(r, "paf_listen", map[string]any{"session_name": name, "description": "test listener", "timeout_seconds": waitSeconds})
		case strings.HasSuffix(res.Name, "paf_respond"):
			return Say("I answered the caller.")
		case anyResultHas(r, question):
			return CallTool(r, "paf_respond", map[string]any{"message": answer})
		default:
			return CallTool(r, "paf_listen", map[string]any{"timeout_seconds": waitSeconds})
		}
	}
}

// caller opens a conversation with target, asks question, waits for the
// answer and ends its turn quoting it.
func caller(name, target, question string) Script {
	return func(r *Request) Reply {
		res, ok := r.Last()
		switch {
		case !ok:
			return CallTool(r, "paf_connect", map[string]any{"target_session": target, "intent": "a question for the test", "my_name": name})
		case strings.HasSuffix(res.Name, "paf_connect"):
			return CallTool(r, "paf_send", map[string]any{"to": target, "message": question})
		case strings.HasSuffix(res.Name, "paf_wait_response") && strings.Contains(res.Content, "ANSWER-"):
			return Say("The answer came back: " + res.Content)
		default:
			return CallTool(r, "paf_wait_response", map[string]any{"timeout_seconds": waitSeconds})
		}
	}
}

// paf runs the paf-peer CLI as a user of this machine would (default run
// dir, a HOME of its own) and returns its stdout.
func (w *world) paf(args ...string) (string, error) {
	h := w.newHome("cli")
	cmd := exec.Command(pafPeer(), args...)
	cmd.Dir = h.work
	cmd.Env = h.env
	var errb strings.Builder
	cmd.Stderr = &errb
	out, err := cmd.Output()
	if err != nil {
		return string(out), fmt.Errorf("paf-peer %s: %v: %s", strings.Join(args, " "), err, errb.String())
	}
	return string(out), nil
}

// statusPeer is the part of `paf-peer status --json` the tests read.
type statusPeer struct {
	Name      string `json:"name"`
	Listening bool   `json:"listening"`
}

// peers returns the named peers the mesh shows now.
func (w *world) peers() map[string]statusPeer {
	out, err := w.paf("status", "--json")
	if err != nil {
		return nil
	}
	var st struct {
		Self  statusPeer   `json:"self"`
		Peers []statusPeer `json:"peers"`
	}
	if json.Unmarshal([]byte(out), &st) != nil {
		return nil
	}
	m := map[string]statusPeer{}
	for _, p := range append(st.Peers, st.Self) {
		if p.Name != "" {
			m[p.Name] = p
		}
	}
	return m
}

// waitListening waits until name is online and listening.
func (w *world) waitListening(t *testing.T, name string) {
	t.Helper()
	waitUntil(t, name+" listening in paf-peer status", func() bool {
		p, ok := w.peers()[name]
		return ok && p.Listening
	})
}

// waitUntil polls cond until it holds, or fails the test after clientTimeout.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testutil.WaitForEvery(t, 100*time.Millisecond, clientTimeout, what, cond)
}
