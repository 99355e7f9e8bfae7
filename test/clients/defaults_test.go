package clients

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCodexAndClaudeWithDefaults is issue 16's first finding: Codex passes
// its MCP servers only HOME, LANG, PATH, SHELL, TERM (plus env_vars), so on
// a systemd desktop its peer once picked another run dir than Claude's and
// saw nobody. Here both clients run as a user has them (XDG_RUNTIME_DIR set
// for everyone, no PAF_* variable, Codex configured as README says). The
// test shows Codex's peer really lacks XDG_RUNTIME_DIR, that Codex's
// paf_register lists the Claude session online, and that a paf_send from
// Codex to Claude is delivered (not stored) and read by Claude's paf_listen.
func TestCodexAndClaudeWithDefaults(t *testing.T) {
	w := newWorld(t)
	const body = "DEFAULTS-hello from codex"
	claude := func(r *Request) Reply {
		res, ok := r.Last()
		switch {
		case !ok:
			return CallTool(r, "paf_listen", map[string]any{"session_name": "claude-d", "timeout_seconds": waitSeconds})
		case strings.Contains(res.Content, body):
			return Say("codex wrote to me")
		default:
			return CallTool(r, "paf_listen", map[string]any{"timeout_seconds": waitSeconds})
		}
	}
	mcpSeen := make(chan struct{})
	codex := func(r *Request) Reply {
		res, ok := r.Last()
		switch {
		case !ok:
			<-mcpSeen // hold the session until the test has read its peer's environment
			return CallTool(r, "paf_register", map[string]any{"name": "codex-d"})
		case strings.HasSuffix(res.Name, "paf_register"):
			return CallTool(r, "paf_send", map[string]any{"to": "claude-d", "message": body})
		default:
			return Say("sent")
		}
	}
	crun := w.session("claude", "claude-d", claude, "Wait for a message.")
	w.waitListening(t, "claude-d")
	xrun := w.session("codex", "codex-d", codex, "Say hello to claude-d.")

	// Codex's paf-peer mcp, while it runs: its environment has nothing of
	// XDG_RUNTIME_DIR or ours.
	var env string
	waitUntil(t, "Codex's paf-peer mcp process", func() bool {
		env = mcpEnviron(xrun.cmd.Process.Pid)
		return env != ""
	})
	close(mcpSeen)
	for _, v := range []string{"XDG_RUNTIME_DIR=", "PAF_"} {
		if strings.Contains(env, "\x00"+v) || strings.HasPrefix(env, v) {
			t.Errorf("Codex passed %s to its MCP server; this test means to show the defaults without it: %q", v, env)
		}
	}
	xrun.wait()

	var registered, delivered bool
	for _, r := range w.model.AgentRequests("codex-d") {
		if res, ok := lastIs(r, "paf_register"); ok {
			registered = strings.Contains(res.Content, "claude-d")
		}
		if res, ok := lastIs(r, "paf_send"); ok {
			delivered = strings.Contains(res.Content, `"status":"delivered"`)
		}
	}
	if !registered || !delivered {
		t.Fatalf("codex: claude-d online in paf_register: %v, paf_send delivered: %v\n%s", registered, delivered, w.model.Dump("codex-d"))
	}
	crun.wait()
	var read bool
	for _, r := range w.model.AgentRequests("claude-d") {
		if res, ok := lastIs(r, "paf_listen"); ok && strings.Contains(res.Content, body) && strings.Contains(res.Content, "codex-d") {
			read = true
		}
	}
	if !read {
		t.Errorf("claude-d's paf_listen never returned codex-d's message\n%s", w.model.Dump("claude-d"))
	}
}

// mcpEnviron returns the environment (NUL-separated) of a `paf-peer mcp`
// process that descends from pid, or "" if there is none yet.
func mcpEnviron(pid int) string {
	for _, p := range descendants(pid) {
		cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", p))
		args := bytes.Split(bytes.TrimRight(cmdline, "\x00"), []byte{0})
		if len(args) >= 2 && filepath.Base(string(args[0])) == "paf-peer" && string(args[1]) == "mcp" {
			env, _ := os.ReadFile(fmt.Sprintf("/proc/%d/environ", p))
			return string(env)
		}
	}
	return ""
}
