package setup

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/paf-mesh/paf-mesh/internal/keys"
	"github.com/paf-mesh/paf-mesh/internal/testutil"
	"github.com/paf-mesh/paf-mesh/node"
	"github.com/paf-mesh/paf-mesh/node/control"
)

// doctorEnv is a machine set up as install leaves it: this binary on PATH,
// every client configured, a run dir and a state dir of the test's own.
func doctorEnv(t *testing.T, vars ...string) (Env, string) {
	t.Helper()
	base := []string{"PATH", "$ROOT/bin", "PAF_RUN_DIR", "$ROOT/run", "PAF_STATE_DIR", "$ROOT/state"}
	env, root := testEnv(t, append(base, vars...)...)
	install(t, env, Clients, ScopeUser)
	return env, root
}

func findCheck(t *testing.T, r Report, name string) Check {
	t.Helper()
	for _, c := range r.Checks {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no check %q in %+v", name, r.Checks)
	return Check{}
}

func TestDoctorHealthy(t *testing.T) {
	env, _ := doctorEnv(t)
	r := Doctor(env)
	if !r.OK {
		t.Fatalf("a healthy set-up fails: %+v", r.Checks)
	}
	for _, name := range []string{"binary", "run dir", "state dir", "claude mcp", "claude hooks", "gemini mcp", "codex mcp"} {
		if c := findCheck(t, r, name); c.Status != StatusOK {
			t.Fatalf("%s: %+v", name, c)
		}
	}
	if c := findCheck(t, r, "clocks"); c.Status != StatusInfo || !strings.Contains(c.Detail, "not checked") {
		t.Fatalf("clocks: %+v", c)
	}
	if c := findCheck(t, r, "peers"); c.Status != StatusInfo || !strings.Contains(c.Detail, "no peer") {
		t.Fatalf("peers: %+v", c)
	}
}

// Each broken case doctor can meet: the check that says so, its status, and
// whether the whole report fails (exit 1).
func TestDoctorBrokenCases(t *testing.T) {
	tests := map[string]struct {
		vars    []string
		breakIt func(t *testing.T, env Env, root string)
		check   string
		status  Status
		want    string
	}{
		"not on PATH": {[]string{"PATH", "/nonexistent"}, nil, "binary", StatusWarn, "not on PATH"},
		"another on PATH": {[]string{"PATH", "$ROOT/other"}, func(t *testing.T, env Env, root string) {
			writeFile(t, filepath.Join(root, "other", "paf-peer"), "#!/bin/sh\n")
			os.Chmod(filepath.Join(root, "other", "paf-peer"), 0o755)
		}, "binary", StatusWarn, "not this one"},
		"config points at a missing binary": {nil, func(t *testing.T, env Env, root string) {
			writeFile(t, filepath.Join(env.Getenv("HOME"), ".claude.json"), `{"mcpServers": {"paf": {"command": "/gone/paf-peer", "args": ["mcp"]}}}`)
		}, "claude mcp", StatusFail, "does not exist"},
		"config points at another binary": {nil, func(t *testing.T, env Env, root string) {
			other := filepath.Join(root, "old", "paf-peer")
			writeFile(t, other, "#!/bin/sh\n")
			os.Chmod(other, 0o755)
			writeFile(t, filepath.Join(env.Getenv("HOME"), ".gemini", "settings.json"), `{"mcpServers": {"paf": {"command": "`+other+`", "args": ["mcp"]}}}`)
		}, "gemini mcp", StatusWarn, "not this paf-peer"},
		"bare command not on PATH": {[]string{"PATH", "/nonexistent"}, func(t *testing.T, env Env, root string) {
			writeFile(t, filepath.Join(env.Getenv("HOME"), ".codex", "config.toml"), "[mcp_servers.paf]\ncommand = \"paf-peer\"\nargs = [\"mcp\"]\n")
		}, "codex mcp", StatusFail, "not on PATH"},
		"wrong arguments": {nil, func(t *testing.T, env Env, root string) {
			writeFile(t, filepath.Join(env.Getenv("HOME"), ".claude.json"), `{"mcpServers": {"paf": {"command": "`+env.Exe+`", "args": ["serve"]}}}`)
		}, "claude mcp", StatusFail, "not mcp"},
		"client not configured": {nil, func(t *testing.T, env Env, root string) {
			writeFile(t, filepath.Join(env.Getenv("HOME"), ".gemini", "settings.json"), `{"theme": "x"}`)
		}, "gemini mcp", StatusWarn, "not configured"},
		"bad JSON": {nil, func(t *testing.T, env Env, root string) {
			writeFile(t, filepath.Join(env.Getenv("HOME"), ".claude", "settings.json"), `{"hooks":`)
		}, "claude hooks", StatusFail, "not valid JSON"},
		"bad TOML": {nil, func(t *testing.T, env Env, root string) {
			writeFile(t, filepath.Join(env.Getenv("HOME"), ".codex", "config.toml"), "[x\n")
		}, "codex mcp", StatusFail, "not valid TOML"},
		"hooks missing": {nil, func(t *testing.T, env Env, root string) {
			writeFile(t, filepath.Join(env.Getenv("HOME"), ".claude", "settings.json"), `{}`)
		}, "claude hooks", StatusWarn, "no paf-peer hook for UserPromptSubmit, SessionStart, Stop"},
		"Stop without asyncRewake": {nil, func(t *testing.T, env Env, root string) {
			b, _ := os.ReadFile(filepath.Join(env.Getenv("HOME"), ".claude", "settings.json"))
			writeFile(t, filepath.Join(env.Getenv("HOME"), ".claude", "settings.json"), strings.Replace(string(b), `"asyncRewake": true`, `"asyncRewake": false`, 1))
		}, "claude hooks", StatusWarn, "lacks asyncRewake"},
		"run dir writable by others": {nil, func(t *testing.T, env Env, root string) {
			os.Mkdir(filepath.Join(root, "run"), 0o700)
			os.Chmod(filepath.Join(root, "run"), 0o777)
		}, "run dir", StatusFail, "writable by other users"},
		"run dir of another user": {nil, func(t *testing.T, env Env, root string) {
			if os.Geteuid() != 0 {
				t.Skip("needs root to give a directory to another user")
			}
			os.Mkdir(filepath.Join(root, "run"), 0o700)
			os.Chown(filepath.Join(root, "run"), 65534, 65534)
		}, "run dir", StatusFail, "owned by uid 65534"},
		"run dir is a file": {nil, func(t *testing.T, env Env, root string) {
			writeFile(t, filepath.Join(root, "run"), "x")
		}, "run dir", StatusFail, "not a directory"},
		"state dir cannot be made": {[]string{"PAF_STATE_DIR", "$ROOT/afile/state"}, func(t *testing.T, env Env, root string) {
			writeFile(t, filepath.Join(root, "afile"), "x")
		}, "state dir", StatusFail, "not a directory"},
		"secret file readable by others": {[]string{"XDG_CONFIG_HOME", "$ROOT/cfg"}, func(t *testing.T, env Env, root string) {
			writeFile(t, filepath.Join(root, "cfg", "paf", "secret"), keys.NewSecret())
			os.Chmod(filepath.Join(root, "cfg", "paf", "secret"), 0o644)
		}, "secret", StatusFail, "chmod 600"},
		"secret too short": {[]string{"PAF_SECRET", "short"}, nil, "secret", StatusFail, "under 16"},
		"secret weak":      {[]string{"PAF_SECRET", "aaaaaaaaaaaaaaaaaaaa"}, nil, "secret", StatusWarn, "looks weak"},
		"secret in env, Codex drops it": {[]string{"PAF_SECRET", keys.NewSecret()}, func(t *testing.T, env Env, root string) {
			writeFile(t, filepath.Join(env.Getenv("HOME"), ".codex", "config.toml"), "[mcp_servers.paf]\ncommand = \""+env.Exe+"\"\nargs = [\"mcp\"]\n")
		}, "codex mcp", StatusFail, "does not list PAF_SECRET"},
		"plugin and install both": {nil, func(t *testing.T, env Env, root string) {
			path := filepath.Join(env.Getenv("HOME"), ".claude", "settings.json")
			b, _ := os.ReadFile(path)
			writeFile(t, path, strings.Replace(string(b), "{", `{"enabledPlugins": {"paf@paf-mesh": true},`, 1))
		}, "claude mcp", StatusWarn, "two peers"},
		"plugin without paf-peer on PATH": {[]string{"PATH", "/nonexistent"}, func(t *testing.T, env Env, root string) {
			os.Remove(filepath.Join(env.Getenv("HOME"), ".claude.json"))
			writeFile(t, filepath.Join(env.Getenv("HOME"), ".claude", "settings.json"), `{"enabledPlugins": {"paf@paf-mesh": true}}`)
		}, "claude plugin", StatusFail, "not on PATH"},
		"gemini folder distrusted": {nil, func(t *testing.T, env Env, root string) {
			writeFile(t, filepath.Join(env.Getenv("HOME"), ".gemini", "trustedFolders.json"), `{"`+env.Dir+`": "DO_NOT_TRUST"}`)
		}, "gemini trust", StatusWarn, "DO_NOT_TRUST"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			env, root := doctorEnv(t, tc.vars...)
			if tc.breakIt != nil {
				tc.breakIt(t, env, root)
			}
			r := Doctor(env)
			c := findCheck(t, r, tc.check)
			if c.Status != tc.status || !strings.Contains(c.Detail, tc.want) || c.Fix == "" {
				t.Fatalf("%s: %+v, want %s saying %q, with a fix", tc.check, c, tc.status, tc.want)
			}
			if r.OK != (tc.status != StatusFail) {
				t.Fatalf("report ok=%v with %s %s", r.OK, tc.check, tc.status)
			}
			var out strings.Builder
			if err := r.Write(&out, false); (err != nil) != (tc.status == StatusFail) || !strings.Contains(out.String(), "fix: ") {
				t.Fatalf("Write: %v\n%s", err, out.String())
			}
		})
	}
}

// A strong secret, a trusted folder, and the peers running here are seen.
func TestDoctorSeesPeersAndSecret(t *testing.T) {
	root, err := os.MkdirTemp("", "pafd") // short: control socket paths are limited
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	env, _ := doctorEnv(t, "PAF_SECRET", keys.NewSecret(), "PAF_RUN_DIR", root+"/run")
	writeFile(t, filepath.Join(env.Getenv("HOME"), ".gemini", "trustedFolders.json"), `{"`+filepath.Dir(env.Dir)+`": "TRUST_FOLDER"}`)
	cfg := node.DefaultConfig()
	cfg.RunDir, cfg.StateDir, cfg.Name, cfg.Version = root+"/run", root+"/state", "alice", "test"
	cfg.Logger = testutil.QuietLogger(t, slog.LevelInfo)
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	n, err := node.New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	testutil.WaitFor(t, 15*time.Second, "alice's entry", func() bool { return node.LocalHolder(cfg.RunDir, "alice") != "" })
	r := Doctor(env)
	if c := findCheck(t, r, "peers"); c.Status != StatusOK || !strings.Contains(c.Detail, "1 running here: alice") {
		t.Fatalf("peers: %+v", c)
	}
	if c := findCheck(t, r, "secret"); c.Status != StatusOK || !strings.Contains(c.Detail, "from PAF_SECRET, strong") {
		t.Fatalf("secret: %+v", c)
	}
	if c := findCheck(t, r, "gemini trust"); c.Status != StatusOK {
		t.Fatalf("gemini trust: %+v", c)
	}
	if c := findCheck(t, r, "codex mcp"); c.Status != StatusOK {
		t.Fatalf("codex with env_vars and a secret in the environment: %+v", c)
	}
}

// A peer whose clock is outside the accepted window is flagged, with how far off it is and
// how to fix it.
func TestDoctorFlagsClockSkew(t *testing.T) {
	root, err := os.MkdirTemp("", "pafc") // short: control socket paths are limited
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	env, _ := doctorEnv(t, "PAF_RUN_DIR", root+"/run")
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	start := func(name string, skew time.Duration) *node.Node {
		cfg := node.DefaultConfig()
		cfg.RunDir, cfg.StateDir, cfg.Name, cfg.Version = root+"/run", root+"/state-"+name, name, "test"
		cfg.Logger = testutil.QuietLogger(t, slog.LevelInfo)
		if skew != 0 {
			cfg.Clock = func() time.Time { return time.Now().Add(skew) }
		}
		n, err := node.New(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(n.Close)
		return n
	}
	alice := start("alice", 0)
	start("bob", 10*time.Minute)
	testutil.WaitFor(t, 15*time.Second, "both peers to see each other", func() bool {
		return len(alice.Members()) == 2 && node.LocalHolder(root+"/run", "bob") != ""
	})
	// Bob's clock is 10 minutes ahead: alice's peer refuses his message for it (it is queued
	// or stored, not lost), and both peers learn of it.
	res, err := control.Call(ctx, node.LocalHolder(root+"/run", "bob"), control.Request{Op: control.OpSend, As: "bob", To: "alice", Message: "hello from the future"})
	if err != nil || res.Result == nil || res.Result.Status == "delivered" {
		t.Fatalf("send from the skewed peer: %+v %v", res, err)
	}
	var last Check
	defer func() {
		if t.Failed() {
			t.Logf("last clocks check: %+v; the send's result: %+v", last, res.Result)
		}
	}()
	testutil.WaitFor(t, 15*time.Second, "the doctor to flag bob's clock", func() bool {
		last = findCheck(t, Doctor(env), "clocks")
		// Whichever peer the doctor asks names the other: the pair is outside the window.
		return last.Status == StatusFail && (strings.Contains(last.Detail, "bob") || strings.Contains(last.Detail, "alice")) &&
			strings.Contains(last.Detail, "outside") && strings.Contains(last.Fix, "NTP")
	})
}
