package clients

// How each client is set up and started: the configuration README.md gives
// for it, plus what pointing it at the fake model takes.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// claudeSession is one Claude Code user: `claude mcp add` as README says,
// the README's hooks when hooks is set, and the model at base.
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
	c.addMCP(t)
	if hooks {
		h.write(t, ".claude/settings.json", readmeBlock(t, "### The Claude Code hook", "json"))
	}
	return c
}

// claudeProject is what README's `claude mcp add` line wrote into
// ~/.claude.json for its project (the working dir) the first time a test ran
// it: later sessions get the same entry written for their own working dir,
// rather than paying a `claude` start (up to 10 s on a loaded machine) each.
var (
	claudeProjectMu sync.Mutex
	claudeProject   json.RawMessage
)

// addMCP configures the session's MCP server as README's Claude Code block
// says: `claude mcp add paf -- paf-peer mcp`, run for real once per test run.
func (c *claudeSession) addMCP(t *testing.T) {
	t.Helper()
	claudeProjectMu.Lock()
	defer claudeProjectMu.Unlock()
	if claudeProject == nil {
		add := strings.Fields(readmeBlock(t, "**Claude Code**", "sh"))
		if len(add) < 3 || add[0] != "claude" {
			t.Fatalf("README's Claude Code block is not a `claude mcp add` line: %q", add)
		}
		r := c.h.start(t, "claude-mcp-add", c.env, false, c.bin, add[1:]...)
		r.wait()
		var cfg struct {
			Projects map[string]json.RawMessage `json:"projects"`
		}
		b, err := os.ReadFile(filepath.Join(c.h.dir, ".claude.json"))
		if err == nil {
			err = json.Unmarshal(b, &cfg)
		}
		if err != nil || len(cfg.Projects) != 1 || !bytes.Contains(cfg.Projects[c.h.work], []byte(`"paf-peer"`)) {
			t.Fatalf("after %q, ~/.claude.json has no paf server for %s (%v):\n%s", add, c.h.work, err, b)
		}
		claudeProject = cfg.Projects[c.h.work]
		return
	}
	b, _ := json.Marshal(map[string]any{"projects": map[string]json.RawMessage{c.h.work: claudeProject}})
	c.h.write(t, ".claude.json", string(b))
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

// geminiSession is one Gemini CLI user: README's settings.json, the folder
// trusted (README says to), the model at base.
type geminiSession struct {
	h    *home
	bin  string
	base string
	env  []string
}

func (w *world) gemini(name string, script Script) *geminiSession {
	t := w.t
	bin := clientBin(t, "gemini")
	h := w.newHome(name)
	g := &geminiSession{h: h, bin: bin, base: w.model.Session(name, script)}
	g.env = []string{
		"GOOGLE_GEMINI_BASE_URL=" + g.base,
		"GEMINI_API_KEY=fake-gemini-key",
		"GEMINI_CLI_NO_RELAUNCH=true",
	}
	var settings map[string]any
	if err := json.Unmarshal([]byte(readmeBlock(t, "**Gemini CLI**", "json")), &settings); err != nil {
		t.Fatalf("README's Gemini CLI settings.json is not JSON: %v", err)
	}
	maps.Copy(settings, map[string]any{
		"security":  map[string]any{"auth": map[string]any{"selectedType": "gemini-api-key"}},
		"general":   map[string]any{"disableAutoUpdate": true, "disableUpdateNag": true},
		"privacy":   map[string]any{"usageStatisticsEnabled": false},
		"telemetry": map[string]any{"enabled": false},
	})
	b, _ := json.MarshalIndent(settings, "", "  ")
	h.write(t, ".gemini/settings.json", string(b))
	trust, _ := json.Marshal(map[string]string{h.work: "TRUST_FOLDER"})
	h.write(t, ".gemini/trustedFolders.json", string(trust))
	return g
}

func (g *geminiSession) run(t *testing.T, name, prompt string) *run {
	return g.h.start(t, name, g.env, false, g.bin, "-p", prompt, "--approval-mode", "yolo", "--output-format", "json")
}

// codexSession is one Codex user: README's config.toml, plus a model
// provider for the fake model.
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
	h.write(t, ".codex/config.toml", provider+readmeBlock(t, "**Codex**", "toml"))
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
		return w.gemini(name, script).run(t, name, prompt)
	case "codex":
		return w.codex(name, script).run(t, name, prompt)
	}
	t.Fatalf("no client %q", kind)
	return nil
}
