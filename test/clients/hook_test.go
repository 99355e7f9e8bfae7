package clients

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
)

// hookEvents returns the hook_response events of event in a Claude
// stream-json output, in order: the exit code of each run.
func hookEvents(out, event string) []int {
	var codes []int
	for _, m := range jsonLines(out) {
		if m["type"] == "system" && m["subtype"] == "hook_response" && m["hook_event"] == event {
			c, _ := m["exit_code"].(float64)
			codes = append(codes, int(c))
		}
	}
	return codes
}

// results counts the turns a Claude stream-json session has finished.
func results(out string) int {
	n := 0
	for _, m := range jsonLines(out) {
		if m["type"] == "result" {
			n++
		}
	}
	return n
}

// stopWake is the text Claude Code gives the model when a Stop hook exits 2.
const stopWake = "Stop hook"

// TestClaudeHooks runs the README's hooks, as `paf-peer install claude`
// writes them (`paf-peer hook` for UserPromptSubmit, SessionStart and Stop
// with asyncRewake), in a real Claude
// Code session, which runs them through /bin/sh -c: dash on Debian, which
// does not exec the command, so the hook's parent is the shell (issue 16,
// finding 2). It shows that:
//   - a message that arrived between prompts is in the model's context with
//     the next prompt (UserPromptSubmit's additionalContext);
//   - the Stop hook wakes the idle session once for a new message, not again
//     when the woken turn ends (stop_hook_active), nor after the next turn
//     for the same message still unread, and once more for a second message
//     (issue 16, finding 4: it once woke Claude 8 times in 3 s).
func TestClaudeHooks(t *testing.T) {
	if sh, err := filepath.EvalSymlinks("/bin/sh"); err != nil || filepath.Base(sh) != "dash" {
		msg := fmt.Sprintf("/bin/sh is %q (%v), not dash: this test shows the hook run through dash", sh, err)
		if requireClients() {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	w := newWorld(t)
	script := func(r *Request) Reply {
		if _, ok := r.Last(); !ok && strings.Contains(r.LastUser(), "Register") {
			return CallTool(r, "paf_register", map[string]any{"name": "claude-h"})
		}
		return Say("ok") // never reads its messages: the hooks keep telling
	}
	c := w.claude("claude-h", script, true)
	r := c.run(t, "claude-h")
	send := func(body string) {
		t.Helper()
		if out, err := w.paf("send", "--as", "hook-sender", "claude-h", body); err != nil || !strings.Contains(out, "delivered") {
			t.Fatalf("paf-peer send: %q %v", out, err)
		}
	}
	// turn writes a prompt and waits until the session has finished turns
	// turns in all and its Stop hook has run stops times.
	turn := func(prompt string, turns, stops int) {
		t.Helper()
		r.prompt(prompt)
		waitUntil(t, fmt.Sprintf("%d turns and %d Stop hook runs", turns, stops), func() bool {
			out := r.out.String()
			return results(out) >= turns && len(hookEvents(out, "Stop")) >= stops
		})
	}
	const m1, m2 = "HOOK-one: please look at the build", "HOOK-two: the build is green again"

	turn("Register as claude-h.", 1, 1) // nothing unread: the Stop hook says nothing
	send(m1)
	turn("Anything new?", 3, 3) // the prompt's turn, then the woken turn (its Stop hook: stop_hook_active)
	turn("Go on.", 4, 4)        // m1 still unread, already announced: no wake
	send(m2)
	turn("And now?", 6, 6) // wakes once for m2
	if got, want := fmt.Sprint(hookEvents(r.out.String(), "Stop")), "[0 2 0 0 2 0]"; got != want {
		t.Fatalf("Stop hook exit codes %s, want %s (2 wakes the session)\n%s", got, want, w.model.Dump("claude-h"))
	}
	_ = r.stdin.Close()
	r.wait()
	if got, want := fmt.Sprint(hookEvents(r.out.String(), "Stop")), "[0 2 0 0 2 0]"; got != want {
		t.Errorf("Stop hook exit codes at the end %s, want %s", got, want)
	}
	// What the model was shown: the UserPromptSubmit note with the prompt
	// after m1 arrived, and exactly two wakes, the first for m1, the second
	// for m2.
	reqs := w.model.AgentRequests("claude-h")
	if len(reqs) == 0 {
		t.Fatal("no model requests")
	}
	var noted bool
	for _, q := range reqs {
		for i, tu := range q.Turns {
			if tu.Text == "Anything new?" && i+1 < len(q.Turns) {
				next := q.Turns[i+1]
				noted = strings.Contains(next.Text, "UserPromptSubmit") && strings.Contains(next.Text, "hook-sender") && strings.Contains(next.Text, m1)
			}
		}
	}
	if !noted {
		t.Errorf("the UserPromptSubmit hook's note about %q did not reach the model with the next prompt\n%s", m1, w.model.Dump("claude-h"))
	}
	var wakes []string
	for _, tu := range reqs[len(reqs)-1].Turns {
		if tu.Role == "user" && strings.Contains(tu.Text, stopWake) {
			wakes = append(wakes, tu.Text)
		}
	}
	if len(wakes) != 2 || !strings.Contains(wakes[0], m1) || strings.Contains(wakes[0], m2) || !strings.Contains(wakes[1], m2) {
		t.Errorf("want 2 Stop hook wakes, for %q then %q; the model saw %d:\n%s", m1, m2, len(wakes), strings.Join(wakes, "\n---\n"))
	}
}
