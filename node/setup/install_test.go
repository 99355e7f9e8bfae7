package setup

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pelletier/go-toml/v2"
)

// testEnv is an Env with a fresh HOME, a project dir and a fake paf-peer
// binary; getenv sees only HOME and what vars adds.
func testEnv(t *testing.T, vars ...string) (Env, string) {
	t.Helper()
	root := t.TempDir()
	home := filepath.Join(root, "home")
	for _, d := range []string{home, filepath.Join(root, "proj"), filepath.Join(root, "bin")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	exe := filepath.Join(root, "bin", "paf-peer")
	if err := os.WriteFile(exe, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"HOME": home}
	for i := 0; i+1 < len(vars); i += 2 {
		env[vars[i]] = strings.ReplaceAll(vars[i+1], "$ROOT", root)
	}
	return Env{Getenv: func(k string) string { return env[k] }, Exe: exe, Dir: filepath.Join(root, "proj")}, root
}

func install(t *testing.T, env Env, clients []string, scope Scope) *Plan {
	t.Helper()
	p, err := PlanInstall(env, clients, scope)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Apply(time.Date(2026, 12, 6, 14, 0, 0, 0, time.UTC)); err != nil {
		t.Fatal(err)
	}
	return p
}

func readJSONFile(t *testing.T, path string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("%s: %v\n%s", path, err, b)
	}
	return m
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// snapshot is every file under dir with its content.
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	files := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		files[p] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// On a fresh HOME, install all writes what each client's own `mcp add`
// writes (checked by hand against Claude Code 2.1.197 and Gemini CLI
// 0.61.0), the hooks and Codex's table; a second run changes nothing.
func TestInstallFreshHomeTwice(t *testing.T) {
	env, root := testEnv(t)
	home := env.Getenv("HOME")
	p := install(t, env, Clients, ScopeUser)
	if len(p.Changes) != 4 || !p.Changed() {
		t.Fatalf("plan %+v, want 4 new files", p.Changes)
	}
	srv := readJSONFile(t, filepath.Join(home, ".claude.json"))["mcpServers"].(map[string]any)["paf"].(map[string]any)
	if srv["type"] != "stdio" || srv["command"] != env.Exe || srv["args"].([]any)[0] != "mcp" {
		t.Fatalf("claude server %v", srv)
	}
	hooks := readJSONFile(t, filepath.Join(home, ".claude", "settings.json"))["hooks"].(map[string]any)
	for _, ev := range hookEvents {
		h := hooks[ev].([]any)[0].(map[string]any)["hooks"].([]any)[0].(map[string]any)
		if h["command"] != env.Exe+" hook" || h["type"] != "command" || (ev == "Stop") != (h["asyncRewake"] == true) {
			t.Fatalf("%s hook %v", ev, h)
		}
	}
	gem := readJSONFile(t, filepath.Join(home, ".gemini", "settings.json"))["mcpServers"].(map[string]any)["paf"].(map[string]any)
	if gem["command"] != env.Exe || gem["type"] != nil {
		t.Fatalf("gemini server %v", gem)
	}
	b, _ := os.ReadFile(filepath.Join(home, ".codex", "config.toml"))
	var codex struct {
		MCPServers map[string]struct {
			Command string   `toml:"command"`
			Args    []string `toml:"args"`
			EnvVars []string `toml:"env_vars"`
		} `toml:"mcp_servers"`
	}
	if err := toml.Unmarshal(b, &codex); err != nil {
		t.Fatal(err)
	}
	if c := codex.MCPServers["paf"]; c.Command != env.Exe || len(c.Args) != 1 || len(c.EnvVars) != len(codexEnvVars) {
		t.Fatalf("codex table %+v\n%s", c, b)
	}
	for _, path := range []string{filepath.Join(home, ".claude.json"), filepath.Join(home, ".codex", "config.toml")} {
		if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s mode %v, want 0600", path, fi.Mode().Perm())
		}
	}

	before := snapshot(t, root)
	p2, err := PlanInstall(env, Clients, ScopeUser)
	if err != nil {
		t.Fatal(err)
	}
	if p2.Changed() {
		t.Fatalf("second plan changes %+v", p2.Changes)
	}
	var out bytes.Buffer
	p2.Print(&out, false, nil)
	if !strings.Contains(out.String(), "nothing changed") || strings.Count(out.String(), "already set up") != 4 {
		t.Fatalf("second run says:\n%s", out.String())
	}
	install(t, env, Clients, ScopeUser)
	if after := snapshot(t, root); len(after) != len(before) {
		t.Fatalf("second run changed the files: %d before, %d after", len(before), len(after))
	}
}

// What the user had stays: other keys in their order, other servers, other
// programs' hooks, Codex comments and tables; an older paf-peer entry (the
// README's bare `paf-peer`) is updated in place, keeping what was added to it.
func TestInstallKeepsUserSettings(t *testing.T) {
	env, _ := testEnv(t)
	home := env.Getenv("HOME")
	claudeJSON := filepath.Join(home, ".claude.json")
	writeFile(t, claudeJSON, `{"zeta": 1, "numStartups": 12345678901234567890, "mcpServers": {"other": {"command": "x"}, "paf": {"type": "stdio", "command": "paf-peer", "args": ["mcp", "--log-file", "/tmp/l"], "env": {"A": "b"}}}, "alpha": "<&>"}`)
	settings := filepath.Join(home, ".claude", "settings.json")
	writeFile(t, settings, `{"model": "opus", "hooks": {"Stop": [{"hooks": [{"type": "command", "command": "notify-send done"}, {"type": "command", "command": "paf-peer hook", "asyncRewake": true}]}], "PreToolUse": [{"matcher": "Bash", "hooks": [{"type": "command", "command": "audit"}]}]}}`)
	codex := filepath.Join(home, ".codex", "config.toml")
	writeFile(t, codex, "# my codex\nmodel = \"o3\" # fast\n\n[mcp_servers.paf]\n# keep me\ncommand = \"paf-peer\"\nargs = [\n  \"mcp\",\n  \"--name\", \"cx\",\n]\nstartup_timeout_sec = 20\n\n[mcp_servers.paf.env]\nFOO = \"1\"\n\n[profiles.x]\nmodel = \"y\"\n")

	install(t, env, []string{"claude", "codex"}, ScopeUser)

	b, _ := os.ReadFile(claudeJSON)
	s := string(b)
	if !(strings.Index(s, `"zeta"`) < strings.Index(s, `"numStartups"`) && strings.Index(s, `"mcpServers"`) < strings.Index(s, `"alpha"`)) {
		t.Fatalf("key order lost:\n%s", s)
	}
	for _, want := range []string{`12345678901234567890`, `"<&>"`, `"other"`, `"--log-file"`, `"A": "b"`, `"command": "` + env.Exe + `"`} {
		if !strings.Contains(s, want) {
			t.Fatalf(".claude.json lost %s:\n%s", want, s)
		}
	}
	hooks := readJSONFile(t, settings)
	if hooks["model"] != "opus" {
		t.Fatalf("settings lost model: %v", hooks)
	}
	hs := hooks["hooks"].(map[string]any)
	stop, _ := json.Marshal(hs["Stop"])
	if strings.Count(string(stop), "paf-peer") != 1 || !strings.Contains(string(stop), "notify-send done") || !strings.Contains(string(stop), env.Exe+" hook") {
		t.Fatalf("Stop hooks: %s", stop)
	}
	if pre, _ := json.Marshal(hs["PreToolUse"]); !strings.Contains(string(pre), "audit") {
		t.Fatalf("PreToolUse lost: %s", pre)
	}
	b, _ = os.ReadFile(codex)
	s = string(b)
	for _, want := range []string{"# my codex\nmodel = \"o3\" # fast\n", "# keep me", "startup_timeout_sec = 20", "[mcp_servers.paf.env]\nFOO = \"1\"", "[profiles.x]", `args = ["mcp", "--name", "cx"]`, "command = \"" + env.Exe + "\""} {
		if !strings.Contains(s, want) {
			t.Fatalf("config.toml lost %q:\n%s", want, s)
		}
	}
	if strings.Count(s, "command =") != 1 {
		t.Fatalf("config.toml has the command twice:\n%s", s)
	}
	// Backups hold what was there.
	bak, _ := filepath.Glob(codex + ".bak-20261206-140000")
	if len(bak) != 1 {
		t.Fatalf("backups %v", bak)
	}
	if b, _ := os.ReadFile(bak[0]); !strings.Contains(string(b), "command = \"paf-peer\"") {
		t.Fatalf("backup holds %s", b)
	}
	// And a second run in the same second keeps both backups apart.
	writeFile(t, codex, "[mcp_servers.paf]\ncommand = \"/old/paf-peer\"\nargs = [\"mcp\"]\n")
	install(t, env, []string{"codex"}, ScopeUser)
	if bak, _ := filepath.Glob(codex + ".bak-*"); len(bak) != 2 {
		t.Fatalf("backups %v, want 2", bak)
	}
}

// A file that does not parse (or that install cannot edit safely) stops
// everything: an error naming it, and not one file written for any client.
func TestInstallBadFilesWriteNothing(t *testing.T) {
	tests := map[string]struct{ file, content, want string }{
		"claude.json":           {".claude.json", `{"mcpServers": `, ".claude.json is not JSON"},
		"settings not object":   {".claude/settings.json", `[1]`, "settings.json is not JSON"},
		"hooks not object":      {".claude/settings.json", `{"hooks": []}`, `"hooks" is not a JSON object`},
		"gemini comments":       {".gemini/settings.json", "{\n// c\n}", "settings.json is not JSON"},
		"codex toml":            {".codex/config.toml", "[mcp_servers.paf\n", "config.toml is not TOML"},
		"codex inline table":    {".codex/config.toml", "mcp_servers.paf = { command = \"x\" }\n", "not as a [mcp_servers.paf] table"},
		"codex dotted":          {".codex/config.toml", "[mcp_servers]\npaf.command = \"x\"\n", "not as a [mcp_servers.paf] table"},
		"codex servers is text": {".codex/config.toml", "mcp_servers = \"x\"\n", "mcp_servers is not a table"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			env, root := testEnv(t)
			writeFile(t, filepath.Join(env.Getenv("HOME"), tc.file), tc.content)
			before := snapshot(t, root)
			_, err := PlanInstall(env, Clients, ScopeUser)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "nothing was written") {
				t.Fatalf("error %v, want one saying %q and that nothing was written", err, tc.want)
			}
			if after := snapshot(t, root); len(after) != len(before) {
				t.Fatalf("files written: %d before, %d after", len(before), len(after))
			}
		})
	}
}

// --dry-run prints a diff of each file and writes nothing.
func TestInstallDryRun(t *testing.T) {
	env, root := testEnv(t)
	writeFile(t, filepath.Join(env.Getenv("HOME"), ".gemini", "settings.json"), "{\n  \"theme\": \"dark\"\n}\n")
	before := snapshot(t, root)
	var out bytes.Buffer
	if err := Install(env, Clients, ScopeUser, true, &out); err != nil {
		t.Fatal(err)
	}
	if after := snapshot(t, root); len(after) != len(before) || after[filepath.Join(env.Getenv("HOME"), ".gemini", "settings.json")] != "{\n  \"theme\": \"dark\"\n}\n" {
		t.Fatal("dry run wrote files")
	}
	s := out.String()
	for _, want := range []string{
		"--- /dev/null\n+++ " + filepath.Join(env.Getenv("HOME"), ".claude.json"),
		"would change " + filepath.Join(env.Getenv("HOME"), ".gemini", "settings.json"),
		"@@ -1,3 +1,11 @@\n {\n-  \"theme\": \"dark\"\n+  \"theme\": \"dark\",\n+  \"mcpServers\": {",
		"+command = \"" + env.Exe + "\"",
		"dry run: nothing was written",
	} {
		if !strings.Contains(s, want) {
			t.Fatalf("dry run output lacks %q:\n%s", want, s)
		}
	}
}

// --scope project writes the project's files; Codex has none, and says so.
func TestInstallProjectScope(t *testing.T) {
	env, _ := testEnv(t)
	p := install(t, env, Clients, ScopeProject)
	for _, f := range []string{".mcp.json", ".claude/settings.json", ".gemini/settings.json"} {
		path := filepath.Join(env.Dir, f)
		fi, err := os.Stat(path)
		if err != nil || fi.Mode().Perm() != 0o644 {
			t.Fatalf("%s: %v %v, want a 0644 file", f, err, fi)
		}
	}
	if _, err := os.Stat(filepath.Join(env.Getenv("HOME"), ".claude.json")); err == nil {
		t.Fatal("project scope wrote the user's .claude.json")
	}
	if !strings.Contains(strings.Join(p.Notes, "\n"), "codex: skipped: codex reads MCP servers only from its user configuration") {
		t.Fatalf("notes %q", p.Notes)
	}
	if _, _, err := ParseInstall([]string{"codex"}, "project"); !errors.Is(err, ErrCodexProjectScope) {
		t.Fatalf("codex --scope project: %v", err)
	}
}

// The clients' own variables move their files; a settings file that is a
// symbolic link (dotfiles) is written through, the link kept.
func TestInstallClientHomesAndLinks(t *testing.T) {
	env, root := testEnv(t, "CLAUDE_CONFIG_DIR", "$ROOT/cc", "CODEX_HOME", "$ROOT/cx", "GEMINI_CLI_HOME", "$ROOT/gh")
	real := filepath.Join(root, "dotfiles", "settings.json")
	writeFile(t, real, `{"theme": "light"}`)
	link := filepath.Join(root, "cc", "settings.json")
	if err := os.MkdirAll(filepath.Dir(link), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	install(t, env, Clients, ScopeUser)
	for _, f := range []string{"cc/.claude.json", "cx/config.toml", "gh/.gemini/settings.json"} {
		if _, err := os.Stat(filepath.Join(root, f)); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
	}
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Fatalf("the link was replaced: %v %v", fi, err)
	}
	if b, _ := os.ReadFile(real); !strings.Contains(string(b), "asyncRewake") || !strings.Contains(string(b), "light") {
		t.Fatalf("the link's target: %s", b)
	}
	if _, err := os.Stat(filepath.Join(env.Getenv("HOME"), ".claude.json")); err == nil {
		t.Fatal("wrote ~/.claude.json despite CLAUDE_CONFIG_DIR")
	}
}

// A binary of `go run` lives in a temporary directory: configs must not
// point at it.
func TestInstallRefusesGoRun(t *testing.T) {
	env, _ := testEnv(t)
	env.Exe = "/tmp/go-build123456/b001/exe/paf-peer"
	if _, err := PlanInstall(env, Clients, ScopeUser); err == nil || !strings.Contains(err.Error(), "go install") {
		t.Fatalf("go run binary: %v", err)
	}
}

func TestParseInstall(t *testing.T) {
	tests := map[string]struct {
		args  []string
		scope string
		want  int
		err   string
	}{
		"all":           {[]string{"all"}, "user", 3, ""},
		"one":           {[]string{"gemini"}, "project", 1, ""},
		"none is all":   {nil, "user", 3, ""},
		"two":           {[]string{"claude", "codex"}, "user", 0, "name one client"},
		"unknown":       {[]string{"cursor"}, "user", 0, `unknown client "cursor"`},
		"bad scope":     {[]string{"all"}, "global", 0, `--scope "global"`},
		"codex project": {[]string{"codex"}, "project", 0, "install it without --scope project"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, _, err := ParseInstall(tc.args, tc.scope)
			if (err == nil) != (tc.err == "") || (err != nil && !strings.Contains(err.Error(), tc.err)) || len(got) != tc.want {
				t.Fatalf("%v %q: %v %v", tc.args, tc.scope, got, err)
			}
		})
	}
}

// The Codex editor on the shapes a config.toml can have.
func TestEditCodex(t *testing.T) {
	const exe = `/opt/my "paf"/paf-peer`
	tests := map[string]struct{ in, want string }{
		"empty":            {"", "[mcp_servers.paf]\ncommand = \"/opt/my \\\"paf\\\"/paf-peer\"\n"},
		"no final newline": {"model = \"x\"", "model = \"x\"\n\n[mcp_servers.paf]\n"},
		"header last line": {"[mcp_servers.paf]", "[mcp_servers.paf]\ncommand ="},
		"quoted header":    {"[mcp_servers.\"paf\"] # ours\nenabled = true\ncommand = \"x\"\n", "[mcp_servers.\"paf\"] # ours\ncommand = \"/opt"},
		"other servers":    {"[mcp_servers.git]\ncommand = \"g\"\n", "[mcp_servers.git]\ncommand = \"g\"\n\n[mcp_servers.paf]\n"},
		"user env_vars":    {"[mcp_servers.paf]\nenv_vars = [\"MY_VAR\"]\n", "env_vars = [\"MY_VAR\", \"PAF_SECRET\""},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			out, changed, err := editCodex([]byte(tc.in), exe)
			if err != nil || !changed || !strings.Contains(string(out), tc.want) {
				t.Fatalf("%v %v:\n%s", changed, err, out)
			}
			got, err := readCodex(out)
			if err != nil || got.Command != exe || got.Args[0] != "mcp" {
				t.Fatalf("result %+v %v", got, err)
			}
			again, changed, err := editCodex(out, exe)
			if err != nil || changed || !bytes.Equal(again, out) {
				t.Fatalf("second edit changed it (%v):\n%s", err, again)
			}
		})
	}
}

// A binary whose path needs quoting gets a hook command /bin/sh runs, that
// doctor reads back and install recognises as its own.
func TestHookCommandQuoting(t *testing.T) {
	for _, exe := range []string{"/usr/local/bin/paf-peer", "/home/me/my tools/paf-peer", "/tmp/it's/paf-peer"} {
		cmd := hookCommand(exe)
		if !isPafHook(cmd) || hookBinary(cmd) != exe {
			t.Fatalf("%q: hook %q, read back as %q", exe, cmd, hookBinary(cmd))
		}
	}
	if isPafHook("notify-send hook") || isPafHook("paf-peer mcp") {
		t.Fatal("other commands taken for paf-peer hook")
	}
}

func TestUnifiedDiff(t *testing.T) {
	a := []byte("1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n11\n12\n")
	b := []byte("1\n2\nthree\n4\n5\n6\n7\n8\n9\n10\n11\n12\n13\n")
	want := "--- f\n+++ f\n@@ -1,6 +1,6 @@\n 1\n 2\n-3\n+three\n 4\n 5\n 6\n@@ -10,3 +10,4 @@\n 10\n 11\n 12\n+13\n"
	if got := unifiedDiff("f", a, b); got != want {
		t.Fatalf("diff:\n%s\nwant:\n%s", got, want)
	}
}
