package clients

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// repoRoot is the repository, which is the plugin's marketplace and the
// Gemini extension's source.
func repoRoot(t *testing.T) string {
	t.Helper()
	p, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// cli runs a client command to its end in h and returns its stdout and
// stderr together; it fails the test on a non-zero exit.
func (h *home) cli(t *testing.T, name string, env []string, bin string, args ...string) string {
	t.Helper()
	r := h.start(t, name, env, false, bin, args...)
	r.wait()
	return r.out.String() + r.errb.String()
}

// TestClaudePlugin: `claude plugin validate --strict` accepts the repository's
// marketplace and plugin; installed from the repository as a user would
// (`claude plugin marketplace add <repo>`, `claude plugin install`), a
// headless Claude session gets the plugin's MCP server (every paf tool
// offered) and its hooks (a message that arrived between prompts is in the
// model's context with the next prompt).
//
// The plugin's monitor (`paf-peer watch`) is not tested here: Claude Code
// 2.1.197 arms plugin monitors only in an interactive session and only when
// its server-side feature flag (tengu_amber_sentinel, default off) is on; a
// `claude -p` session never starts them (its debug log has no monitor line).
func TestClaudePlugin(t *testing.T) {
	w := newWorld(t)
	root := repoRoot(t)
	var market struct {
		Name    string `json:"name"`
		Plugins []struct {
			Name string `json:"name"`
		} `json:"plugins"`
	}
	b, err := os.ReadFile(filepath.Join(root, ".claude-plugin", "marketplace.json"))
	if err == nil {
		err = json.Unmarshal(b, &market)
	}
	if err != nil || len(market.Plugins) != 1 {
		t.Fatalf(".claude-plugin/marketplace.json: %v (want one plugin): %s", err, b)
	}
	const body = "PLUGIN-hello: a message for the plugin's hooks"
	var script Script = func(r *Request) Reply {
		if _, ok := r.Last(); !ok && strings.Contains(r.LastUser(), "Register") {
			return CallTool(r, "paf_register", map[string]any{"name": "claude-p"})
		}
		return Say("ok")
	}
	bin := clientBin(t, "claude")
	h := w.newHome("claude-p")
	base := w.model.Session("claude-p", script)
	env := []string{"ANTHROPIC_BASE_URL=" + base, "ANTHROPIC_API_KEY=sk-ant-fake-key",
		"CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1", "DISABLE_AUTOUPDATER=1", "DISABLE_TELEMETRY=1"}

	for _, target := range []string{root, filepath.Join(root, ".claude-plugin", "plugin.json")} {
		if out := h.cli(t, "validate", env, bin, "plugin", "validate", "--strict", target); !strings.Contains(out, "Validation passed") {
			t.Fatalf("claude plugin validate --strict %s:\n%s", target, out)
		}
	}
	if out := h.cli(t, "marketplace-add", env, bin, "plugin", "marketplace", "add", root); !strings.Contains(out, "Successfully added") {
		t.Fatalf("claude plugin marketplace add %s:\n%s", root, out)
	}
	id := market.Plugins[0].Name + "@" + market.Name
	if out := h.cli(t, "install", env, bin, "plugin", "install", id); !strings.Contains(out, "Successfully installed") {
		t.Fatalf("claude plugin install %s:\n%s", id, out)
	}

	r := h.start(t, "claude-p", env, true, bin, "-p", "--verbose",
		"--input-format", "stream-json", "--output-format", "stream-json", "--include-hook-events",
		"--allowedTools", "mcp__plugin_"+market.Plugins[0].Name+"_paf")
	r.prompt("Register as claude-p.")
	// The first turn over, with its Stop hook run: nothing unread then.
	waitUntil(t, "the first turn and its Stop hook", func() bool {
		out := r.out.String()
		return results(out) >= 1 && len(hookEvents(out, "Stop")) >= 1
	})
	if out, err := w.paf("send", "--as", "plugin-sender", "claude-p", body); err != nil || !strings.Contains(out, "delivered") {
		t.Fatalf("paf-peer send: %q %v", out, err)
	}
	r.prompt("Anything new?")
	noted := func() bool {
		for _, q := range w.model.AgentRequests("claude-p") {
			for i, tu := range q.Turns {
				if tu.Text == "Anything new?" && i+1 < len(q.Turns) {
					next := q.Turns[i+1].Text
					if strings.Contains(next, "UserPromptSubmit") && strings.Contains(next, "plugin-sender") && strings.Contains(next, body) {
						return true
					}
				}
			}
		}
		return false
	}
	waitUntil(t, "the plugin's UserPromptSubmit note in the model's context", noted)
	_ = r.stdin.Close()
	r.wait()
	checkTools(t, w, "claude-p")
}
