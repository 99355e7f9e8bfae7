package clients

// How each client is set up and started: what README.md tells a user to do
// (`paf-peer install CLIENT`, and trusting the folder for Gemini CLI), plus
// what pointing it at the fake model takes.

import (
	"encoding/json"
	"fmt"
	"os/exec"
	"testing"
)

// claudeSession is one Claude Code user: set up by `paf-peer install
// claude` as README says (MCP server and hooks; the hooks removed again
// unless hooks is set), and the model at base.
type claudeSession struct {
	h    *home
	bin  string
	base string
	env  []string
}

func (w *world) claude(name string, script Script, hooks bool) *claudeSession {
	t := w.t
	bin := clientBin(t, "claude")
	h := w.newHome(name)
	c := &claudeSession{h: h, bin: bin, base: w.model.Session(name, script)}
	c.env = []string{
		"ANTHROPIC_BASE_URL=" + c.base,
		"ANTHROPIC_API_KEY=sk-ant-fake-key",
		"CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1",
		"DISABLE_AUTOUPDATER=1",
		"DISABLE_TELEMETRY=1",
	}
	// README: paf-peer install claude writes the MCP server and the hooks.
	h.install(t, "claude")
	if !hooks {
		// Sessions that do not test the hooks run without them: fewer
		// processes per turn on a loaded machine, and no Stop hook waking
		// a session the test means to end.
		h.write(t, ".claude/settings.json", "{}")
	}
	return c
}

// run starts `claude -p` reading prompts as stream-json from stdin (so a
// test can hold a session open over several prompts), allowed to call the
// paf tools without asking.
func (c *claudeSession) run(t *testing.T, name string) *run {
	return c.h.start(t, name, c.env, true, c.bin, "-p", "--verbose",
		"--input-format", "stream-json", "--output-format", "stream-json", "--include-hook-events",
		"--allowedTools", "mcp__paf")
}

// prompt writes one user prompt to a stream-json session.
func (r *run) prompt(text string) {
	r.t.Helper()
	b, _ := json.Marshal(map[string]any{"type": "user", "message": map[string]any{"role": "user", "content": text}})
	if _, err := r.stdin.Write(append(b, '\n')); err != nil {
		r.t.Fatalf("%s: write prompt: %v", r.name, err)
	}
}

// geminiSession is one Gemini CLI user: set up by `paf-peer install gemini`
// (unless mcp is false), the folder trusted (README says to), the model at
// base.
type geminiSession struct {
	h    *home
	bin  string
	base string
	env  []string
}

func (w *world) gemini(name string, script Script, mcp bool) *geminiSession {
	t := w.t
	bin := clientBin(t, "gemini")
	h := w.newHome(name)
	g := &geminiSession{h: h, bin: bin, base: w.model.Session(name, script)}
	g.env = []string{
		"GOOGLE_GEMINI_BASE_URL=" + g.base,
		"GEMINI_API_KEY=fake-gemini-key",
		"GEMINI_CLI_NO_RELAUNCH=true",
	}
	// The fake model's settings first; then README: paf-peer install gemini
	// adds the server (keeping these), and the folder is trusted by hand.
	b, _ := json.MarshalIndent(map[string]any{
		"security":  map[string]any{"auth": map[string]any{"selectedType": "gemini-api-key"}},
		"general":   map[string]any{"disableAutoUpdate": true, "disableUpdateNag": true},
		"privacy":   map[string]any{"usageStatisticsEnabled": false},
		"telemetry": map[string]any{"enabled": false},
	}, "", "  ")
	h.write(t, ".gemini/settings.json", string(b))
	if mcp {
		h.install(t, "gemini")
	}
	trust, _ := json.Marshal(map[string]string{h.work: "TRUST_FOLDER"})
	h.write(t, ".gemini/trustedFolders.json", string(trust))
	return g
}

func (g *geminiSession) run(t *testing.T, name, prompt string) *run {
	return g.h.start(t, name, g.env, false, g.bin, "-p", prompt, "--approval-mode", "yolo", "--output-format", "json")
}

// codexSession is one Codex user: a model provider for the fake model in
// config.toml, then `paf-peer install codex` as README says.
type codexSession struct {
	h    *home
	bin  string
	base string
	env  []string
}

func (w *world) codex(name string, script Script) *codexSession {
	t := w.t
	bin := clientBin(t, "codex")
	h := w.newHome(name)
	c := &codexSession{h: h, bin: bin, base: w.model.Session(name, script)}
	c.env = []string{"FAKE_OPENAI_KEY=fake-openai-key"}
	provider := fmt.Sprintf(`model = "fake-model"
model_provider = "fake"

[model_providers.fake]
name = "fake model on loopback"
base_url = %q
env_key = "FAKE_OPENAI_KEY"
wire_api = "responses"
request_max_retries = 0
stream_max_retries = 0

`, c.base+"/v1")
	h.write(t, ".codex/config.toml", provider)
	// README: paf-peer install codex adds [mcp_servers.paf] with env_vars.
	h.install(t, "codex")
	return c
}

func (c *codexSession) run(t *testing.T, name, prompt string) *run {
	return c.h.start(t, name, c.env, false, c.bin, "exec", "--skip-git-repo-check",
		"--dangerously-bypass-approvals-and-sandbox", "--json", prompt)
}

// session starts a one-prompt session of client kind ("claude", "gemini",
// "codex") named name, its model scripted by script.
func (w *world) session(kind, name string, script Script, prompt string) *run {
	t := w.t
	switch kind {
	case "claude":
		r := w.claude(name, script, false).run(t, name)
		r.prompt(prompt)
		_ = r.stdin.Close() // one prompt: claude ends after its turn
		return r
	case "gemini":
		return w.gemini(name, script, true).run(t, name, prompt)
	case "codex":
		return w.codex(name, script).run(t, name, prompt)
	}
	t.Fatalf("no client %q", kind)
	return nil
}

// install runs `paf-peer install CLIENT` in h, as README's first step says.
func (h *home) install(t *testing.T, client string) {
	t.Helper()
	cmd := exec.Command(pafPeer(), "install", client)
	cmd.Dir = h.work
	cmd.Env = h.env
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("paf-peer install %s: %v\n%s", client, err, out)
	}
}
