package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/paf-mesh/paf-mesh/internal/testutil"
)

// files is every file under dir with its content.
func files(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		out[p] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// install all on a fresh HOME: --dry-run prints the edits and writes
// nothing; the real run writes the configs with this binary's path; a second
// run changes nothing and says so; doctor then finds nothing wrong, and
// fails (exit 1) once a config is broken.
func TestE2EInstallAndDoctor(t *testing.T) {
	home := t.TempDir()
	exe, err := filepath.EvalSymlinks(pafPeer)
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"HOME": home}

	out, errOut, code := runCLI(t, env, "install", "all", "--dry-run")
	if code != 0 || strings.Count(out, "--- /dev/null") != 4 || !strings.Contains(out, "dry run: nothing was written") ||
		!strings.Contains(out, `+      "command": "`+exe+`",`) || !strings.Contains(out, "+command = \""+exe+"\"") {
		t.Fatalf("install all --dry-run: exit %d\n%s\n%s", code, out, errOut)
	}
	if f := files(t, home); len(f) != 0 {
		t.Fatalf("--dry-run wrote %v", f)
	}

	if out, errOut, code := runCLI(t, env, "install", "all"); code != 0 || strings.Count(out, ": created ") != 4 {
		t.Fatalf("install all: exit %d\n%s\n%s", code, out, errOut)
	}
	first := files(t, home)
	if len(first) != 4 || !strings.Contains(first[filepath.Join(home, ".claude", "settings.json")], `"command": "`+exe+` hook"`) {
		t.Fatalf("after install: %v", first)
	}
	out, errOut, code = runCLI(t, env, "install", "all")
	if code != 0 || strings.Count(out, "already set up, nothing to change") != 4 || !strings.Contains(out, "nothing changed") {
		t.Fatalf("second install all: exit %d\n%s\n%s", code, out, errOut)
	}
	if second := files(t, home); len(second) != len(first) {
		t.Fatalf("second run changed files: %d, then %d", len(first), len(second))
	} else {
		for p, c := range first {
			if second[p] != c {
				t.Fatalf("second run changed %s", p)
			}
		}
	}
	if _, errOut, code := runCLI(t, env, "install", "codex", "--scope", "project"); code != 2 || !strings.Contains(errOut, "only from its user configuration") {
		t.Fatalf("install codex --scope project: exit %d %q", code, errOut)
	}

	m := newTestMesh(t)
	denv := m.env("doctor")
	denv["HOME"] = home
	denv["PATH"] = filepath.Dir(exe) + ":" + os.Getenv("PATH")
	out, errOut, code = runCLI(t, denv, "doctor", "--json")
	var rep struct {
		OK     bool `json:"ok"`
		Checks []struct{ Name, Status, Detail, Fix string }
	}
	if code != 0 || json.Unmarshal([]byte(out), &rep) != nil || !rep.OK || len(rep.Checks) < 8 {
		t.Fatalf("doctor --json on a good set-up: exit %d\n%s\n%s", code, out, errOut)
	}
	if err := os.WriteFile(filepath.Join(home, ".gemini", "settings.json"), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, errOut, code = runCLI(t, denv, "doctor")
	if code != 1 || !strings.Contains(out, "FAIL  gemini mcp") || !strings.Contains(out, "not valid JSON") || strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
		t.Fatalf("doctor with a broken config: exit %d\n%s\n%s", code, out, errOut)
	}
}

// watch --as bob prints a line per message (and marks none read), and goes
// on after bob's peer restarts.
func TestE2EWatch(t *testing.T) {
	m := newTestMesh(t)
	m.serve("a", "--name", "alice")
	bob := m.serve("b", "--name", "bob")
	m.waitNames("alice", "bob")
	w := startPeer(t, m.env("watch"), "watch", "--as", "bob")

	m.sendJSON("alice", "bob", "hello \x1b[2Jbob")
	testutil.WaitFor(t, 30*time.Second, "watch's line", func() bool { return len(lines(w.stdout())) == 1 })
	if l := w.stdout(); !strings.Contains(l, "paf: message from alice to bob") || strings.Contains(l, "\x1b") || !strings.Contains(l, "paf_check") {
		t.Fatalf("watch printed %q", l)
	}

	bob.signal(syscall.SIGTERM)
	if _, err := bob.wait(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	m.serve("b", "--name", "bob")
	m.waitNames("alice", "bob")
	m.sendJSON("alice", "bob", "are you back?")
	testutil.WaitFor(t, 30*time.Second, "watch's line after bob's restart", func() bool { return len(lines(w.stdout())) >= 2 })
	if got := lines(w.stdout()); len(got) != 2 || !strings.Contains(got[1], "are you back?") {
		t.Fatalf("watch printed %q, want one line per message", got)
	}
	if got := m.checkJSON("bob"); len(got.Messages) != 2 {
		t.Fatalf("bob has %d unread after watch, want 2", len(got.Messages))
	}
	if w.exited() {
		t.Fatalf("watch exited: %s", w.stderr())
	}
}
