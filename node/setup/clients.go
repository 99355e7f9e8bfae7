package setup

import (
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
)

// Clients are the agent clients install and doctor know, in the order `all`
// handles them.
var Clients = []string{"claude", "gemini", "codex"}

// Scope says which configuration files install writes.
type Scope string

const (
	// ScopeUser: the user's own files, for every project.
	ScopeUser Scope = "user"
	// ScopeProject: files in the project directory, for that project only
	// (Claude Code's .mcp.json and .claude/settings.json, Gemini CLI's
	// .gemini/settings.json). Codex has none.
	ScopeProject Scope = "project"
)

// ErrCodexProjectScope answers `install codex --scope project`.
var ErrCodexProjectScope = errors.New("codex reads MCP servers only from its user configuration (~/.codex/config.toml, or $CODEX_HOME/config.toml): install it without --scope project")

// paths are where one environment keeps each client's files.
type paths struct {
	claudeJSON     string // Claude Code's user MCP servers (~/.claude.json)
	claudeSettings string // Claude Code's user settings (hooks)
	geminiSettings string
	codexConfig    string
	// project files, under Env.Dir
	projectMCP, projectClaude, projectGemini string
}

func (e Env) paths() (paths, error) {
	home := e.Getenv("HOME")
	if home == "" || !filepath.IsAbs(home) {
		return paths{}, errors.New("$HOME is not set to an absolute path: it says where the clients keep their configuration")
	}
	claudeDir := filepath.Join(home, ".claude")
	claudeJSON := filepath.Join(home, ".claude.json")
	if d := e.Getenv("CLAUDE_CONFIG_DIR"); d != "" {
		claudeDir, claudeJSON = d, filepath.Join(d, ".claude.json")
	}
	geminiHome := home
	if d := e.Getenv("GEMINI_CLI_HOME"); d != "" {
		geminiHome = d
	}
	codexHome := filepath.Join(home, ".codex")
	if d := e.Getenv("CODEX_HOME"); d != "" {
		codexHome = d
	}
	p := paths{
		claudeJSON:     claudeJSON,
		claudeSettings: filepath.Join(claudeDir, "settings.json"),
		geminiSettings: filepath.Join(geminiHome, ".gemini", "settings.json"),
		codexConfig:    filepath.Join(codexHome, "config.toml"),
	}
	if e.Dir != "" {
		p.projectMCP = filepath.Join(e.Dir, ".mcp.json")
		p.projectClaude = filepath.Join(e.Dir, ".claude", "settings.json")
		p.projectGemini = filepath.Join(e.Dir, ".gemini", "settings.json")
	}
	return p, nil
}

// fileEdit is one file install changes: edit turns its content (nil: no
// file) into the new content, and says what it changed ("" when nothing).
type fileEdit struct {
	client, path string
	project      bool
	edit         func(before []byte, exe string) (after []byte, what string, err error)
}

// edits lists the files install changes for client in scope.
func (p paths) edits(client string, scope Scope) ([]fileEdit, error) {
	proj := scope == ScopeProject
	switch client {
	case "claude":
		mcp, settings := p.claudeJSON, p.claudeSettings
		if proj {
			mcp, settings = p.projectMCP, p.projectClaude
		}
		return []fileEdit{
			{client, mcp, proj, editMCPServer(true)},
			{client, settings, proj, editHooks},
		}, nil
	case "gemini":
		path := p.geminiSettings
		if proj {
			path = p.projectGemini
		}
		return []fileEdit{{client, path, proj, editMCPServer(false)}}, nil
	case "codex":
		if proj {
			return nil, ErrCodexProjectScope
		}
		return []fileEdit{{client, p.codexConfig, false, func(b []byte, exe string) ([]byte, string, error) {
			out, changed, err := editCodex(b, exe)
			if err != nil || !changed {
				return b, "", err
			}
			return out, "[mcp_servers.paf] runs " + exe + " mcp, env_vars passes the PAF_* variables", nil
		}}}, nil
	}
	return nil, fmt.Errorf("unknown client %q: want %s or all", client, strings.Join(Clients, ", "))
}

// mcpServer is the part of an mcpServers entry install looks at.
type mcpServer struct {
	Command string   `json:"command"`
	Args    []string `json:"args"`
}

// pointsAt reports whether s runs exe's MCP server.
func (s mcpServer) pointsAt(exe string) bool {
	return s.Command == exe && len(s.Args) > 0 && s.Args[0] == "mcp"
}

// editMCPServer sets mcpServers.paf of a JSON settings file to run
// `exe mcp`, in the shape the client's own `mcp add` writes (Claude Code adds
// "type" and "env"). Of an existing entry it keeps what the user added: more
// arguments after "mcp", an env, a timeout.
func editMCPServer(claude bool) func([]byte, string) ([]byte, string, error) {
	return func(b []byte, exe string) ([]byte, string, error) {
		root, err := parseObject(b)
		if err != nil {
			return nil, "", err
		}
		servers, err := root.child("mcpServers")
		if err != nil {
			return nil, "", err
		}
		entry, err := servers.child("paf")
		if err != nil {
			return nil, "", fmt.Errorf("mcpServers.%w", err)
		}
		var cur mcpServer
		if raw, ok := servers.get("paf"); ok {
			_ = json.Unmarshal(raw, &cur) // a wrong type is simply replaced below
		}
		if cur.pointsAt(exe) {
			return b, "", nil
		}
		what := "mcpServers.paf added: " + exe + " mcp"
		if _, ok := servers.get("paf"); ok {
			what = fmt.Sprintf("mcpServers.paf now runs %s mcp (was %q)", exe, strings.TrimSpace(cur.Command+" "+strings.Join(cur.Args, " ")))
		}
		args := []string{"mcp"}
		if len(cur.Args) > 0 && cur.Args[0] == "mcp" {
			args = cur.Args
		}
		if _, ok := entry.get("type"); claude && !ok {
			_ = entry.set("type", "stdio")
		}
		if err := entry.set("command", exe); err != nil {
			return nil, "", err
		}
		if err := entry.set("args", args); err != nil {
			return nil, "", err
		}
		if _, ok := entry.get("env"); claude && !ok {
			_ = entry.set("env", map[string]string{})
		}
		if err := servers.set("paf", entry); err != nil {
			return nil, "", err
		}
		if err := root.set("mcpServers", servers); err != nil {
			return nil, "", err
		}
		out, err := root.encode()
		return out, what, err
	}
}

// hookEvents are the Claude Code events paf-peer hooks, in order.
var hookEvents = []string{"UserPromptSubmit", "SessionStart", "Stop"}

// hookCommand is the command line of the hook: Claude Code runs it with
// /bin/sh -c, so the path is quoted when it needs to be.
func hookCommand(exe string) string { return shellQuote(exe) + " hook" }

// isPafHook reports whether a hook command line runs `paf-peer hook` (this
// binary or another, by any path): what install replaces.
func isPafHook(cmd string) bool {
	cmd = strings.TrimSpace(cmd)
	return strings.Contains(cmd, "paf-peer") && (strings.HasSuffix(cmd, " hook") || strings.Contains(cmd, " hook "))
}

// hook is a Claude Code command hook.
type hook struct {
	Type        string `json:"type"`
	Command     string `json:"command"`
	AsyncRewake bool   `json:"asyncRewake,omitempty"`
}

// editHooks makes a Claude Code settings file run `exe hook` on
// UserPromptSubmit, SessionStart and Stop (asyncRewake, so that a message
// wakes an idle session). Hooks of other programs are kept; an earlier
// paf-peer hook (another path, the README's bare `paf-peer hook`) is
// replaced, so that each event runs it exactly once.
func editHooks(b []byte, exe string) ([]byte, string, error) {
	root, err := parseObject(b)
	if err != nil {
		return nil, "", err
	}
	hooks, err := root.child("hooks")
	if err != nil {
		return nil, "", err
	}
	var changed []string
	for _, ev := range hookEvents {
		want := hook{Type: "command", Command: hookCommand(exe), AsyncRewake: ev == "Stop"}
		var groups []json.RawMessage
		if raw, ok := hooks.get(ev); ok {
			if err := json.Unmarshal(raw, &groups); err != nil {
				return nil, "", fmt.Errorf("hooks.%s is not a list", ev)
			}
		}
		var ours []hook
		for _, g := range groups {
			var gh struct {
				Hooks []hook `json:"hooks"`
			}
			_ = json.Unmarshal(g, &gh)
			for _, h := range gh.Hooks {
				if isPafHook(h.Command) {
					ours = append(ours, h)
				}
			}
		}
		if len(ours) == 1 && ours[0] == want {
			continue
		}
		// Drop every paf-peer hook (and groups left empty by that), then add ours.
		var kept []any
		for _, g := range groups {
			obj, err := parseObject(g)
			if err != nil {
				kept = append(kept, g) // not ours to judge
				continue
			}
			var list []json.RawMessage
			if raw, ok := obj.get("hooks"); ok {
				_ = json.Unmarshal(raw, &list)
			}
			var rest []json.RawMessage
			for _, h := range list {
				var hh hook
				if json.Unmarshal(h, &hh) == nil && isPafHook(hh.Command) {
					continue
				}
				rest = append(rest, h)
			}
			if len(rest) == len(list) {
				kept = append(kept, g)
				continue
			}
			if len(rest) == 0 {
				continue
			}
			if err := obj.set("hooks", rest); err != nil {
				return nil, "", err
			}
			kept = append(kept, obj)
		}
		kept = append(kept, map[string]any{"hooks": []hook{want}})
		if err := hooks.set(ev, kept); err != nil {
			return nil, "", err
		}
		changed = append(changed, ev)
	}
	if len(changed) == 0 {
		return b, "", nil
	}
	if err := root.set("hooks", hooks); err != nil {
		return nil, "", err
	}
	out, err := root.encode()
	return out, "hooks " + strings.Join(changed, ", ") + " run " + hookCommand(exe), err
}

// shellQuote quotes s for /bin/sh when it holds anything but plain path characters.
func shellQuote(s string) string {
	if s != "" && !strings.ContainsFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("/._-+:@%,=", r))
	}) {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
