package setup

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/paf-mesh/paf-mesh/internal/statedir"
)

// Env is what install and doctor work from: the environment (HOME, XDG_*,
// PATH, the clients' CLAUDE_CONFIG_DIR, GEMINI_CLI_HOME, CODEX_HOME, the
// PAF_* settings), this binary, and the project directory.
type Env struct {
	Getenv func(string) string
	// Exe is the absolute path of this paf-peer, written into the configs:
	// a client's PATH may not be the shell's.
	Exe string
	// Dir is the project directory (the working directory) for
	// --scope project, and the folder Gemini CLI must trust.
	Dir string
}

// Change is one file install edits.
type Change struct {
	Client string
	Path   string
	Before []byte // nil: the file does not exist yet
	After  []byte
	What   string // what changes, in a phrase; "" when nothing does
	// Project: a file of the project (made readable by others, 0644, as a
	// file to commit), not of the user (0600).
	Project bool
}

// Changed reports whether the file needs writing.
func (c *Change) Changed() bool { return c.What != "" && !bytes.Equal(c.Before, c.After) }

// Plan is what install would do: every file's change, computed before
// anything is written, and notes for the user.
type Plan struct {
	Changes []Change
	Notes   []string
}

// PlanInstall reads each client's files and computes their new content.
// Any file that cannot be read or parsed fails the whole plan, so that
// nothing is written for anyone.
func PlanInstall(env Env, clients []string, scope Scope) (*Plan, error) {
	if !filepath.IsAbs(env.Exe) {
		return nil, fmt.Errorf("the path of this paf-peer (%q) is not absolute", env.Exe)
	}
	if strings.Contains(env.Exe, string(filepath.Separator)+"go-build") {
		return nil, fmt.Errorf("this paf-peer (%s) is a temporary build of `go run`, which the clients could not start later: install it first (go install ./cmd/paf-peer, or go install github.com/paf-mesh/paf-mesh/cmd/paf-peer@latest) and run that one", env.Exe)
	}
	if scope == ScopeProject && !filepath.IsAbs(env.Dir) {
		return nil, errors.New("--scope project needs the project directory: run it from the project")
	}
	p, err := env.paths()
	if err != nil {
		return nil, err
	}
	plan := &Plan{}
	for _, c := range clients {
		if c == "codex" && scope == ScopeProject && len(clients) > 1 {
			plan.Notes = append(plan.Notes, "codex: skipped: "+ErrCodexProjectScope.Error())
			continue
		}
		edits, err := p.edits(c, scope)
		if err != nil {
			return nil, err
		}
		for _, fe := range edits {
			before, err := readConfig(fe.path)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", c, err)
			}
			after, what, err := fe.edit(before, env.Exe)
			if err != nil {
				kind := "JSON"
				if strings.HasSuffix(fe.path, ".toml") {
					kind = "TOML"
				}
				return nil, fmt.Errorf("%s: %s is not %s paf-peer can edit (%v): fix it, or move it away and run install again; nothing was written", c, fe.path, kind, oneLine(err.Error()))
			}
			plan.Changes = append(plan.Changes, Change{Client: c, Path: fe.path, Before: before, After: after, What: what, Project: fe.project})
		}
		plan.Notes = append(plan.Notes, clientNotes(c, scope, env)...)
	}
	return plan, nil
}

// clientNotes is what a user must know after installing client.
func clientNotes(client string, scope Scope, env Env) []string {
	switch client {
	case "gemini":
		dir := env.Dir
		if dir == "" {
			dir = "<your project>"
		}
		return []string{fmt.Sprintf("gemini: Gemini CLI starts MCP servers only in folders it trusts (`gemini mcp list` shows paf as Disabled elsewhere): trust each project folder when Gemini asks, or add it to ~/.gemini/trustedFolders.json, e.g. {%q: \"TRUST_FOLDER\"}", dir)}
	case "claude":
		n := []string{"claude: restart running Claude Code sessions (or run /mcp) to start paf; `claude mcp list` shows it"}
		if scope == ScopeProject {
			n = append(n, "claude: Claude Code asks each user once to approve the servers of a project's .mcp.json")
		}
		return n
	case "codex":
		return []string{"codex: restart Codex; `codex mcp list` shows paf"}
	}
	return nil
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// maxConfig bounds a config file install reads: Claude Code's ~/.claude.json
// grows with history, but not to this.
const maxConfig = 64 << 20

func readConfig(path string) ([]byte, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxConfig+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if len(b) > maxConfig {
		return nil, fmt.Errorf("%s is larger than %d MiB: not a config file paf-peer edits", path, maxConfig>>20)
	}
	if b == nil {
		b = []byte{} // exists, empty: not "no file"
	}
	return b, nil
}

// Changed reports whether any file needs writing.
func (p *Plan) Changed() bool {
	for i := range p.Changes {
		if p.Changes[i].Changed() {
			return true
		}
	}
	return false
}

// Applied is a file install wrote, and its backup ("" for a new file).
type Applied struct {
	Path, Backup string
}

// Apply backs up and writes every changed file. Backups are made first, all
// of them, so that a failure leaves every file as it was or with a backup
// beside it; each file is replaced atomically, through a symbolic link to
// its target (a settings file kept in a dotfiles repository stays there).
func (p *Plan) Apply(now time.Time) ([]Applied, error) {
	var done []Applied
	type job struct {
		c      *Change
		target string
		mode   fs.FileMode
	}
	var jobs []job
	for i := range p.Changes {
		c := &p.Changes[i]
		if !c.Changed() {
			continue
		}
		j := job{c: c, target: c.Path, mode: 0o600}
		if c.Project {
			j.mode = 0o644
		}
		if c.Before != nil {
			t, err := filepath.EvalSymlinks(c.Path)
			if err != nil {
				return done, err
			}
			fi, err := os.Stat(t)
			if err != nil {
				return done, err
			}
			j.target, j.mode = t, fi.Mode().Perm()
			backup, err := writeBackup(t, c.Before, j.mode, now)
			if err != nil {
				return done, fmt.Errorf("back up %s: %w (nothing was changed)", c.Path, err)
			}
			done = append(done, Applied{Path: c.Path, Backup: backup})
		} else {
			done = append(done, Applied{Path: c.Path})
		}
		jobs = append(jobs, j)
	}
	for _, j := range jobs {
		dirMode := fs.FileMode(0o700)
		if j.c.Project {
			dirMode = 0o755
		}
		if err := os.MkdirAll(filepath.Dir(j.target), dirMode); err != nil {
			return done, err
		}
		if err := statedir.WriteFileAtomic(j.target, j.c.After, j.mode); err != nil {
			return done, err
		}
	}
	return done, nil
}

// writeBackup copies content to path.bak-YYYYMMDD-HHMMSS (-2, -3... if that
// exists), with the file's mode, and returns its name.
func writeBackup(path string, content []byte, mode fs.FileMode, now time.Time) (string, error) {
	base := path + ".bak-" + now.Format("20060102-150405")
	for i := 1; i < 100; i++ {
		name := base
		if i > 1 {
			name = fmt.Sprintf("%s-%d", base, i)
		}
		f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			return "", err
		}
		_, err = f.Write(content)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			err = os.Chmod(name, mode) // exactly, whatever the umask
		}
		return name, err
	}
	return "", fmt.Errorf("too many backups named %s-N", base)
}

// Print writes the plan for a user: for each file, what changes and (dry
// run) the diff, or that nothing does; then the notes.
func (p *Plan) Print(w io.Writer, dryRun bool, applied []Applied) {
	backups := map[string]string{}
	for _, a := range applied {
		backups[a.Path] = a.Backup
	}
	for i := range p.Changes {
		c := &p.Changes[i]
		if !c.Changed() {
			fmt.Fprintf(w, "%s: %s: already set up, nothing to change\n", c.Client, c.Path)
			continue
		}
		verb := "changed"
		if dryRun {
			verb = "would change"
		}
		if c.Before == nil {
			verb = "created"
			if dryRun {
				verb = "would create"
			}
		}
		fmt.Fprintf(w, "%s: %s %s: %s\n", c.Client, verb, c.Path, c.What)
		if b := backups[c.Path]; b != "" {
			fmt.Fprintf(w, "  backup: %s\n", b)
		}
		if dryRun {
			io.WriteString(w, unifiedDiff(c.Path, c.Before, c.After))
		}
	}
	for _, n := range p.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
	switch {
	case !p.Changed():
		fmt.Fprintln(w, "nothing changed: paf-peer is already installed there")
	case dryRun:
		fmt.Fprintln(w, "dry run: nothing was written")
	}
}

// ParseInstall reads install's arguments (one client, or all; none is all,
// as SPEC section 6 has the client optional) and --scope. Its errors are
// usage errors.
func ParseInstall(args []string, scope string) ([]string, Scope, error) {
	if scope != string(ScopeUser) && scope != string(ScopeProject) {
		return nil, "", fmt.Errorf("--scope %q: want user or project", scope)
	}
	if len(args) > 1 {
		return nil, "", fmt.Errorf("name one client: %s or all", strings.Join(Clients, ", "))
	}
	if len(args) == 0 || args[0] == "all" {
		return Clients, Scope(scope), nil
	}
	if !slices.Contains(Clients, args[0]) {
		return nil, "", fmt.Errorf("unknown client %q: want %s or all", args[0], strings.Join(Clients, ", "))
	}
	if args[0] == "codex" && Scope(scope) == ScopeProject {
		return nil, "", ErrCodexProjectScope
	}
	return []string{args[0]}, Scope(scope), nil
}

// EnvFromOS is the Env of this process: getenv, this binary's absolute path
// (symbolic links resolved: the configs name the file, not a link that may
// move), and the working directory.
func EnvFromOS(getenv func(string) string) (Env, error) {
	exe, err := os.Executable()
	if err == nil {
		exe, err = filepath.EvalSymlinks(exe)
	}
	if err != nil {
		return Env{}, fmt.Errorf("the path of this paf-peer: %w", err)
	}
	dir, _ := os.Getwd() // "" only matters for --scope project, which says so
	return Env{Getenv: getenv, Exe: exe, Dir: dir}, nil
}

// Install is `paf-peer install`: plan, print, and (unless dryRun) back up and
// write, reporting to w.
func Install(env Env, clients []string, scope Scope, dryRun bool, w io.Writer) error {
	plan, err := PlanInstall(env, clients, scope)
	if err != nil {
		return err
	}
	var applied []Applied
	if !dryRun {
		if applied, err = plan.Apply(time.Now()); err != nil {
			return fmt.Errorf("install: %w", err)
		}
	}
	plan.Print(w, dryRun, applied)
	return nil
}
