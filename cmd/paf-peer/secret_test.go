package main

import (
	"bytes"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/paf-mesh/paf-mesh/internal/keys"
)

// checkNewSecret fails t unless s is a fresh 256-bit secret that the peer accepts without a
// warning.
func checkNewSecret(t *testing.T, s string) {
	t.Helper()
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(raw) != 32 {
		t.Fatalf("secret %q: %d bytes, %v; want 32 random bytes", s, len(raw), err)
	}
	if w := keys.WeakSecretWarning([]byte(s)); w != "" {
		t.Fatalf("a new secret is warned about: %s", w)
	}
}

func TestSecretNewPrints(t *testing.T) {
	env := tempEnv(t)
	out1, errOut, code := runIn(t, env, "secret", "new")
	if code != 0 || errOut != "" {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	out2, _, _ := runIn(t, env, "secret", "new")
	checkNewSecret(t, strings.TrimSuffix(out1, "\n"))
	checkNewSecret(t, strings.TrimSuffix(out2, "\n"))
	if out1 == out2 {
		t.Fatal("two runs printed the same secret")
	}
	if _, err := os.Stat(filepath.Join(env["HOME"], ".config", "paf", "secret")); !os.IsNotExist(err) {
		t.Fatalf("printing a secret wrote the secret file: %v", err)
	}
}

func TestSecretNewWrites(t *testing.T) {
	tests := map[string]struct {
		env  func(env map[string]string) // adjusts tempEnv
		args func(env map[string]string) []string
		path func(env map[string]string) string
	}{
		"--write, default ~/.config": {
			env:  func(map[string]string) {},
			args: func(map[string]string) []string { return []string{"--write"} },
			path: func(env map[string]string) string { return filepath.Join(env["HOME"], ".config", "paf", "secret") },
		},
		"--write, XDG_CONFIG_HOME": {
			env:  func(env map[string]string) { env["XDG_CONFIG_HOME"] = filepath.Join(env["HOME"], "xdg") },
			args: func(map[string]string) []string { return []string{"--write"} },
			path: func(env map[string]string) string { return filepath.Join(env["HOME"], "xdg", "paf", "secret") },
		},
		"--file": {
			env:  func(map[string]string) {},
			args: func(env map[string]string) []string { return []string{"--file", filepath.Join(env["HOME"], "s", "k")} },
			path: func(env map[string]string) string { return filepath.Join(env["HOME"], "s", "k") },
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			env := tempEnv(t)
			tc.env(env)
			path := tc.path(env)
			args := append([]string{"secret", "new"}, tc.args(env)...)

			out, errOut, code := runIn(t, env, args...)
			if code != 0 || out != "" || !strings.Contains(errOut, path) {
				t.Fatalf("exit %d, stdout %q (want none: the secret goes to the file), stderr %q (want the path)", code, out, errOut)
			}
			st, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if st.Mode().Perm() != 0o600 {
				t.Fatalf("secret file mode %04o, want 0600", st.Mode().Perm())
			}
			first, err := keys.LoadSecretFile(path) // what a peer does with it
			if err != nil {
				t.Fatal(err)
			}
			checkNewSecret(t, strings.TrimSpace(string(first)))

			// An existing secret is never replaced without --force.
			_, errOut, code = runIn(t, env, args...)
			if code != 1 || !strings.Contains(errOut, "exists") || !strings.Contains(errOut, "--force") {
				t.Fatalf("second run: exit %d, stderr %q; want a refusal that mentions --force", code, errOut)
			}
			if now, _ := os.ReadFile(path); !bytes.Equal(now, first) {
				t.Fatal("a refused run changed the secret file")
			}

			// With --force it is replaced, still 0600, even if the old file was looser.
			if err := os.Chmod(path, 0o644); err != nil {
				t.Fatal(err)
			}
			if _, errOut, code = runIn(t, env, append(args, "--force")...); code != 0 {
				t.Fatalf("--force: exit %d, stderr %q", code, errOut)
			}
			second, err := keys.LoadSecretFile(path)
			if err != nil {
				t.Fatalf("the replaced secret file is refused: %v", err)
			}
			checkNewSecret(t, strings.TrimSpace(string(second)))
			if bytes.Equal(first, second) {
				t.Fatal("--force kept the old secret")
			}
		})
	}
}

func TestSecretUsage(t *testing.T) {
	tests := map[string][]string{
		"no subcommand":    {"secret"},
		"unknown":          {"secret", "old"},
		"extra":            {"secret", "new", "now"},
		"force, no target": {"secret", "new", "--force"},
	}
	for name, args := range tests {
		t.Run(name, func(t *testing.T) {
			out, errOut, code := runIn(t, tempEnv(t), args...)
			if code != 2 || out != "" || !strings.Contains(errOut, "paf-peer secret") {
				t.Fatalf("exit %d, stdout %q, stderr %q; want a usage error", code, out, errOut)
			}
		})
	}
	env := tempEnv(t)
	delete(env, "HOME")
	if _, errOut, code := runIn(t, env, "secret", "new", "--write"); code != 1 || !strings.Contains(errOut, "--file") {
		t.Fatalf("--write without HOME: exit %d, stderr %q", code, errOut)
	}
}

// A weak secret gets a warning that says how to make a strong one; a strong one gets none.
// The resolved settings also cache the master key in the (existing) state dir, mode 0600.
func TestWeakSecretWarning(t *testing.T) {
	tests := map[string]struct {
		secret string
		warn   bool
	}{
		"19 characters of the review": {secret: "paf-mesh-our-secret", warn: true},
		"repeated pattern":            {secret: strings.Repeat("ab12", 10), warn: true},
		"from secret new":             {secret: keys.NewSecret(), warn: false},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			env := tempEnv(t)
			env["PAF_SECRET"] = tc.secret
			if err := os.MkdirAll(env["PAF_STATE_DIR"], 0o700); err != nil { // as a peer's first start leaves it
				t.Fatal(err)
			}
			var cf commonFlags
			cf.register(newFlagSet("serve", "", stdio{out: &bytes.Buffer{}, err: &bytes.Buffer{}}), true)
			s, err := cf.resolve(func(k string) string { return env[k] })
			if err != nil {
				t.Fatal(err)
			}
			var errOut bytes.Buffer
			noticeMode(stdio{err: &errOut}, s)
			got := errOut.String()
			if warned := strings.Contains(got, "warning"); warned != tc.warn {
				t.Fatalf("warned=%v, want %v; stderr:\n%s", warned, tc.warn, got)
			}
			if tc.warn && (!strings.Contains(got, "paf-peer secret new") || strings.Contains(got, tc.secret)) {
				t.Fatalf("warning does not say how to make a strong secret, or quotes it:\n%s", got)
			}
			st, err := os.Stat(filepath.Join(env["PAF_STATE_DIR"], keys.MasterCacheFile))
			if err != nil || st.Mode().Perm() != 0o600 {
				t.Fatalf("master key cache: %v, %v; want a 0600 file in the state dir", st, err)
			}
		})
	}
}

// The default secret file (what `paf-peer secret new --write` makes) is read when neither a
// flag nor a variable gives a secret, so a client that passes no environment (Codex) still
// finds it; a variable still wins over it, and without the file the mode is open.
func TestDefaultSecretFileRead(t *testing.T) {
	env := tempEnv(t)
	resolve := func() *settings {
		t.Helper()
		var cf commonFlags
		cf.register(newFlagSet("serve", "", stdio{out: &bytes.Buffer{}, err: &bytes.Buffer{}}), true)
		s, err := cf.resolve(func(k string) string { return env[k] })
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	if resolve().Secure {
		t.Fatal("secure mode with no secret anywhere")
	}
	path, err := keys.DefaultSecretFile(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if err := keys.WriteSecretFile(path, keys.NewSecret()+"\n", false); err != nil {
		t.Fatal(err)
	}
	fromFile := resolve()
	if !fromFile.Secure {
		t.Fatalf("the default secret file %s was not read", path)
	}
	env["PAF_SECRET"] = keys.NewSecret()
	fromEnv := resolve()
	if !fromEnv.Secure || bytes.Equal(fromEnv.Keys.Gossip, fromFile.Keys.Gossip) {
		t.Fatal("PAF_SECRET did not win over the default secret file")
	}
}
