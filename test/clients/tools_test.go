package clients

import (
	"testing"
)

// pafTools are the 12 tools of SPEC section 5.
var pafTools = []string{"paf_register", "paf_rename", "paf_list_sessions", "paf_send", "paf_broadcast", "paf_check",
	"paf_listen", "paf_connect", "paf_wait_response", "paf_respond", "paf_refocus", "paf_end_session"}

// checkTools fails unless every paf tool was offered to the model.
func checkTools(t *testing.T, w *world, session string) {
	t.Helper()
	reqs := w.model.AgentRequests(session)
	if len(reqs) == 0 {
		t.Fatalf("%s: the model got no request with tools\n%s", session, w.model.Dump(session))
	}
	for _, name := range pafTools {
		if reqs[0].Tool(name) == "" {
			t.Errorf("%s: tool %s not offered to the model; offered: %q", session, name, reqs[0].Tools)
		}
	}
}

func TestToolsListed(t *testing.T) {
	done := func(r *Request) Reply { return Say("I see the tools.") }
	t.Run("claude", func(t *testing.T) {
		w := newWorld(t)
		c := w.claude("claude", done, false)
		r := c.run(t, "claude")
		r.prompt("Which tools do you have?")
		r.stdin.Close()
		r.wait()
		checkTools(t, w, "claude")
	})
	t.Run("gemini", func(t *testing.T) {
		w := newWorld(t)
		g := w.gemini("gemini", done)
		g.run(t, "gemini", "Which tools do you have?").wait()
		checkTools(t, w, "gemini")
	})
	t.Run("codex", func(t *testing.T) {
		w := newWorld(t)
		c := w.codex("codex", done)
		c.run(t, "codex", "Which tools do you have?").wait()
		checkTools(t, w, "codex")
	})
}
