package setup

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/paf-mesh/paf-mesh/internal/keys"
	"github.com/paf-mesh/paf-mesh/internal/owner"
	"github.com/paf-mesh/paf-mesh/node"
)

// Status is a check's outcome.
type Status string

const (
	StatusOK   Status = "ok"
	StatusInfo Status = "info" // nothing wrong; worth knowing (not set up, not checked)
	StatusWarn Status = "warn" // works, but not as it should
	StatusFail Status = "fail" // broken: doctor exits 1
)

// Check is one line of the doctor's report: what was checked, what was
// found and, when something is wrong, what to do.
type Check struct {
	Name   string `json:"name"`
	Status Status `json:"status"`
	Detail string `json:"detail"`
	Fix    string `json:"fix,omitempty"`
}

// Report is `paf-peer doctor --json`.
type Report struct {
	OK     bool    `json:"ok"` // no check failed
	Checks []Check `json:"checks"`
}

// Doctor checks this machine's set-up for env: the binary, the run and
// state directories, the peers, the secret, each client's configuration and
// the Claude Code hooks. It reads only; it changes nothing.
func Doctor(env Env) Report {
	d := &doctor{env: env}
	d.binary()
	runDir := env.Getenv("PAF_RUN_DIR")
	if runDir == "" {
		runDir = node.DefaultRunDir()
	}
	d.dir("run dir", runDir, "PAF_RUN_DIR")
	d.peers(runDir)
	stateDir := env.Getenv("PAF_STATE_DIR")
	if stateDir == "" {
		var err error
		if stateDir, err = node.DefaultStateDir(env.Getenv); err != nil {
			d.add("state dir", StatusFail, err.Error(), "set HOME, or PAF_STATE_DIR")
		}
	}
	if stateDir != "" {
		d.dir("state dir", stateDir, "PAF_STATE_DIR")
	}
	secretFromEnv := d.secret()
	if p, err := env.paths(); err != nil {
		d.add("clients", StatusFail, err.Error(), "set HOME")
	} else {
		d.claude(p)
		d.gemini(p)
		d.codex(p, secretFromEnv)
	}
	d.clocks(runDir)
	r := Report{OK: true, Checks: d.checks}
	for _, c := range r.Checks {
		if c.Status == StatusFail {
			r.OK = false
		}
	}
	return r
}

type doctor struct {
	env    Env
	checks []Check
}

func (d *doctor) add(name string, s Status, detail, fix string) {
	d.checks = append(d.checks, Check{Name: name, Status: s, Detail: detail, Fix: fix})
}

// sameFile reports whether a and b are the same file (through symbolic links).
func sameFile(a, b string) bool {
	fa, err1 := os.Stat(a)
	fb, err2 := os.Stat(b)
	return err1 == nil && err2 == nil && os.SameFile(fa, fb)
}

// lookPath finds name in the PATH of env (not of this process).
func (d *doctor) lookPath(name string) string {
	for _, dir := range filepath.SplitList(d.env.Getenv("PATH")) {
		if dir == "" || !filepath.IsAbs(dir) {
			continue
		}
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0 {
			return p
		}
	}
	return ""
}

func (d *doctor) binary() {
	onPath := d.lookPath("paf-peer")
	link := "ln -s " + shellQuote(d.env.Exe) + " ~/.local/bin/paf-peer (with ~/.local/bin on PATH)"
	switch {
	case onPath == "":
		d.add("binary", StatusWarn, "paf-peer is not on PATH (this one is "+d.env.Exe+"); the Claude Code plugin and the Gemini CLI extension run `paf-peer` from PATH", link)
	case !sameFile(onPath, d.env.Exe):
		d.add("binary", StatusWarn, "the paf-peer on PATH is "+onPath+", not this one ("+d.env.Exe+")", "run that one's doctor, or put this one first on PATH: "+link)
	default:
		d.add("binary", StatusOK, d.env.Exe+" (on PATH as "+onPath+")", "")
	}
}

// dir checks a directory paf-peer keeps: ours, private, writable; or, if it
// does not exist yet, creatable.
func (d *doctor) dir(name, path, envVar string) {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		anc := filepath.Dir(path)
		for anc != filepath.Dir(anc) {
			if _, err := os.Stat(anc); err == nil {
				break
			}
			anc = filepath.Dir(anc)
		}
		if err := writable(anc); err != nil {
			d.add(name, StatusFail, fmt.Sprintf("%s does not exist and cannot be created: %v", path, err), "choose another with "+envVar)
			return
		}
		d.add(name, StatusOK, path+" (made when the first peer starts)", "")
		return
	}
	if err != nil {
		d.add(name, StatusFail, err.Error(), "choose another with "+envVar)
		return
	}
	if err := owner.Check(path, fi); err != nil {
		d.add(name, StatusFail, err.Error(), "remove it (as its owner), or choose another with "+envVar)
		return
	}
	if fi.Mode()&fs.ModeSymlink != 0 {
		if fi, err = os.Stat(path); err != nil {
			d.add(name, StatusFail, err.Error(), "remove the broken link "+path)
			return
		}
		if err := owner.Check(path, fi); err != nil {
			d.add(name, StatusFail, err.Error(), "remove it, or choose another with "+envVar)
			return
		}
	}
	if !fi.IsDir() {
		d.add(name, StatusFail, path+" is not a directory", "remove it, or choose another with "+envVar)
		return
	}
	if fi.Mode().Perm()&0o022 != 0 {
		d.add(name, StatusFail, fmt.Sprintf("%s is writable by other users (mode %04o): they could plant files there", path, fi.Mode().Perm()), "chmod 700 "+shellQuote(path))
		return
	}
	if err := writable(path); err != nil {
		d.add(name, StatusFail, fmt.Sprintf("%s is not writable: %v", path, err), "chmod u+rwx "+shellQuote(path))
		return
	}
	d.add(name, StatusOK, path, "")
}

// writable tries to create and remove a file in dir.
func writable(dir string) error {
	f, err := os.CreateTemp(dir, ".paf-doctor-*")
	if err != nil {
		return err
	}
	f.Close()
	return os.Remove(f.Name())
}

func (d *doctor) peers(runDir string) {
	var named []string
	unnamed := 0
	for _, e := range node.LocalPeers(runDir) {
		switch {
		case e.Control == "":
			// a shell command's brief peer, or another user's entry: not listed
		case e.Name != "":
			named = append(named, e.Name)
		default:
			unnamed++
		}
	}
	slices.Sort(named)
	switch {
	case len(named)+unnamed == 0:
		d.add("peers", StatusInfo, "no peer is running on this machine (in "+runDir+")", "start an agent session, or `paf-peer serve --name NAME`")
	default:
		desc := fmt.Sprintf("%d running here", len(named)+unnamed)
		if len(named) > 0 {
			desc += ": " + strings.Join(named, ", ")
		}
		if unnamed > 0 {
			desc += fmt.Sprintf(" (%d without a name yet)", unnamed)
		}
		d.add("peers", StatusOK, desc, "")
	}
}

// clocks reports what a running peer of this machine has learnt of the other peers' clocks
// (from the times their requests carry): a peer whose clock is outside the accepted window
// cannot exchange messages with this machine's peers.
func (d *doctor) clocks(runDir string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := node.FetchStatus(ctx, node.Config{RunDir: runDir})
	switch {
	case err != nil:
		d.add("clocks", StatusWarn, "not checked: no running peer answered ("+err.Error()+")", "")
		return
	case st.Self == nil:
		d.add("clocks", StatusInfo, "not checked: no peer is running on this machine to compare clocks with", "")
		return
	}
	var off, known []string
	for _, p := range st.Peers {
		if p.ClockSkew == "" {
			continue
		}
		who := cmp.Or(p.Name, p.ID)
		known = append(known, who)
		if p.ClockOutside {
			off = append(off, fmt.Sprintf("%s on %s (%s)", who, p.Host, p.ClockSkew))
		}
	}
	switch {
	case len(off) > 0:
		d.add("clocks", StatusFail, "clocks outside the accepted window: "+strings.Join(off, "; "),
			"turn on time synchronisation (NTP: timedatectl set-ntp true) on the machine whose clock is off; their messages wait with holders or queued until then")
	case len(known) > 0:
		d.add("clocks", StatusOK, fmt.Sprintf("within the accepted window for the %d peers measured (%s)", len(known), strings.Join(known, ", ")), "")
	default:
		d.add("clocks", StatusInfo, "no peer's clock measured yet (they are, from the times their messages carry)", "")
	}
}

// secret checks the shared secret the way a peer finds it, and reports
// whether it comes from the environment (which Codex drops unless told).
func (d *doctor) secret() (fromEnv bool) {
	secret, source := keys.SecretFromEnv(d.env.Getenv)
	if source == "" {
		path, err := keys.DefaultSecretFile(d.env.Getenv)
		if err != nil {
			d.add("secret", StatusInfo, "none: open mode, this machine only", "")
			return false
		}
		if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
			d.add("secret", StatusInfo, "none ("+path+" does not exist): open mode, peers of this machine only", "for a LAN: paf-peer secret new --write, then copy the file to your other machines")
			return false
		}
		if secret, err = keys.LoadSecretFile(path); err != nil {
			d.add("secret", StatusFail, err.Error(), "fix the file as it says, or make a new one: paf-peer secret new --write --force")
			return false
		}
		source = path
	}
	trimmed := bytes.TrimSpace(secret)
	switch {
	case len(trimmed) < keys.MinSecretLen:
		d.add("secret", StatusFail, fmt.Sprintf("the secret from %s has %d characters, under %d: peers refuse to start with it", source, len(trimmed), keys.MinSecretLen), newSecret(source))
	case keys.WeakSecretWarning(secret) != "":
		d.add("secret", StatusWarn, "from "+source+": "+keys.WeakSecretWarning(secret), newSecret(source))
	default:
		d.add("secret", StatusOK, fmt.Sprintf("from %s, strong (about %.0f bits estimated)", source, keys.SecretStrength(secret)), "")
	}
	return source == keys.EnvSecret || source == keys.EnvSecretLegacy
}

// newSecret says how to replace the secret from source.
func newSecret(source string) string {
	if source == keys.EnvSecret || source == keys.EnvSecretLegacy {
		return "set " + source + " to the output of `paf-peer secret new`, the same on every peer"
	}
	return "paf-peer secret new --write --force, then copy the file to every peer's machine"
}

// target checks a configured command: it must exist, and be this binary.
// It returns a check status and a phrase.
func (d *doctor) target(cmd string) (Status, string) {
	path := cmd
	if !filepath.IsAbs(cmd) {
		if path = d.lookPath(cmd); path == "" {
			return StatusFail, fmt.Sprintf("runs %q, which is not on PATH", cmd)
		}
	}
	fi, err := os.Stat(path)
	if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
		return StatusFail, fmt.Sprintf("runs %s, which does not exist or is not executable", path)
	}
	if !sameFile(path, d.env.Exe) {
		return StatusWarn, fmt.Sprintf("runs %s, not this paf-peer (%s)", path, d.env.Exe)
	}
	return StatusOK, "runs " + path
}

// readJSON reads a client's JSON file: nil, nil when it does not exist.
func readJSON(path string) (*object, error) {
	b, err := readConfig(path)
	if err != nil || b == nil {
		return nil, err
	}
	o, err := parseObject(b)
	if err != nil {
		return nil, fmt.Errorf("%s is not valid JSON: %v", path, err)
	}
	return o, nil
}

// jsonServer returns mcpServers.paf of a JSON file, or nil.
func jsonServer(path string) (*mcpServer, error) {
	o, err := readJSON(path)
	if err != nil || o == nil {
		return nil, err
	}
	servers, err := o.child("mcpServers")
	if err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	raw, ok := servers.get("paf")
	if !ok {
		return nil, nil
	}
	var s mcpServer
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, fmt.Errorf("%s: mcpServers.paf is not a server entry: %v", path, err)
	}
	return &s, nil
}

// server checks a client's mcpServers.paf in the user file and the project
// file; it returns whether one is configured.
func (d *doctor) server(client string, files []string, present bool) bool {
	name := client + " mcp"
	fix := "paf-peer install " + client
	found := false
	for _, f := range files {
		if f == "" {
			continue
		}
		s, err := jsonServer(f)
		if err != nil {
			d.add(name, StatusFail, err.Error(), "fix the file, then: "+fix)
			found = true
			continue
		}
		if s == nil {
			continue
		}
		found = true
		st, what := d.target(s.Command)
		if st == StatusOK && (len(s.Args) == 0 || s.Args[0] != "mcp") {
			st, what = StatusFail, fmt.Sprintf("runs %s with arguments %q, not mcp", s.Command, s.Args)
		}
		if st == StatusOK {
			fix = ""
		}
		d.add(name, st, f+": "+what, fix)
	}
	if !found {
		if present {
			d.add(name, StatusWarn, "not configured", fix)
		} else {
			d.add(name, StatusInfo, "not configured (no sign of the client in this HOME)", fix)
		}
	}
	return found
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func (d *doctor) claude(p paths) {
	present := exists(p.claudeJSON) || exists(filepath.Dir(p.claudeSettings))
	if plugin := pafPlugin(p); plugin != "" {
		// The plugin brings the server, the hooks and the monitor, run from PATH.
		st, what := d.target("paf-peer")
		fix := ""
		if st != StatusOK {
			fix = "put paf-peer on PATH: the plugin runs it from there"
		}
		d.add("claude plugin", st, plugin+" is enabled: it "+what, fix)
		for _, f := range []string{p.claudeJSON, p.projectMCP} {
			if s, err := jsonServer(f); err == nil && s != nil {
				d.add("claude mcp", StatusWarn, f+" also runs paf: with the plugin, each session starts two peers",
					"keep one: claude mcp remove paf (from "+f+"), or claude plugin uninstall "+plugin)
				return
			}
		}
		return
	}
	if !d.server("claude", []string{p.claudeJSON, p.projectMCP}, present) {
		return
	}
	// The hooks: each event runs paf-peer hook once, Stop with asyncRewake.
	var missing []string
	var notes []string
	status := StatusOK
	for _, ev := range hookEvents {
		var found []hook
		for _, f := range []string{p.claudeSettings, p.projectClaude} {
			if f == "" {
				continue
			}
			o, err := readJSON(f)
			if err != nil {
				d.add("claude hooks", StatusFail, err.Error(), "fix the file, then: paf-peer install claude")
				return
			}
			found = append(found, pafHooks(o, ev)...)
		}
		if len(found) == 0 {
			missing = append(missing, ev)
			continue
		}
		for _, h := range found {
			if st, what := d.target(hookBinary(h.Command)); st != StatusOK {
				status = worse(status, st)
				notes = append(notes, ev+" "+what)
			}
			if ev == "Stop" && !h.AsyncRewake {
				status = worse(status, StatusWarn)
				notes = append(notes, "the Stop hook lacks asyncRewake, so it cannot wake an idle session")
			}
		}
	}
	switch {
	case len(missing) > 0:
		d.add("claude hooks", StatusWarn, "no paf-peer hook for "+strings.Join(missing, ", ")+": an idle session does not hear of new messages", "paf-peer install claude (or install the Claude Code plugin)")
	case status != StatusOK:
		d.add("claude hooks", status, strings.Join(slices.Compact(notes), "; "), "paf-peer install claude")
	default:
		d.add("claude hooks", StatusOK, strings.Join(hookEvents, ", ")+" run paf-peer hook", "")
	}
}

// worse is the worse of two statuses.
func worse(a, b Status) Status {
	order := map[Status]int{StatusOK: 0, StatusInfo: 1, StatusWarn: 2, StatusFail: 3}
	if order[b] > order[a] {
		return b
	}
	return a
}

// pafPlugin returns the paf plugin ("paf@MARKETPLACE") if Claude Code's
// settings (the user's or the project's) enable it, else "".
func pafPlugin(p paths) string {
	for _, f := range []string{p.claudeSettings, p.projectClaude} {
		o, err := readJSON(f)
		if err != nil || o == nil {
			continue
		}
		raw, ok := o.get("enabledPlugins")
		if !ok {
			continue
		}
		var enabled map[string]any
		_ = json.Unmarshal(raw, &enabled)
		for k, v := range enabled {
			if strings.HasPrefix(k, "paf@") && v == true {
				return k
			}
		}
	}
	return ""
}

// pafHooks returns the paf-peer hooks of event ev in settings o.
func pafHooks(o *object, ev string) []hook {
	if o == nil {
		return nil
	}
	hooks, err := o.child("hooks")
	if err != nil {
		return nil
	}
	raw, ok := hooks.get(ev)
	if !ok {
		return nil
	}
	var groups []struct {
		Hooks []hook `json:"hooks"`
	}
	_ = json.Unmarshal(raw, &groups)
	var out []hook
	for _, g := range groups {
		for _, h := range g.Hooks {
			if isPafHook(h.Command) {
				out = append(out, h)
			}
		}
	}
	return out
}

// hookBinary is the program of a hook command line ("'/a b/paf-peer' hook").
func hookBinary(cmd string) string {
	cmd = strings.TrimSpace(cmd)
	if strings.HasPrefix(cmd, "'") {
		if i := strings.Index(cmd[1:], "' "); i >= 0 {
			return strings.ReplaceAll(cmd[1:i+1], `'\''`, "'")
		}
	}
	if f := strings.Fields(cmd); len(f) > 0 {
		return f[0]
	}
	return cmd
}

func (d *doctor) gemini(p paths) {
	present := exists(filepath.Dir(p.geminiSettings))
	if !d.server("gemini", []string{p.geminiSettings, p.projectGemini}, present) || d.env.Dir == "" {
		return
	}
	trust := d.env.Getenv("GEMINI_CLI_TRUSTED_FOLDERS_PATH")
	if trust == "" {
		trust = filepath.Join(filepath.Dir(p.geminiSettings), "trustedFolders.json")
	}
	o, err := readJSON(trust)
	if err != nil {
		d.add("gemini trust", StatusFail, err.Error(), "fix the file, or trust the folder from Gemini CLI")
		return
	}
	level := ""
	if o != nil {
		// The longest rule that covers the project folder decides.
		best := -1
		for _, k := range o.keys {
			var v string
			_ = json.Unmarshal(o.vals[k], &v)
			covered := k
			if v == "TRUST_PARENT" {
				covered = filepath.Dir(k)
			}
			if (d.env.Dir == covered || strings.HasPrefix(d.env.Dir, strings.TrimSuffix(covered, "/")+"/")) && len(covered) > best {
				best, level = len(covered), v
			}
		}
	}
	switch level {
	case "TRUST_FOLDER", "TRUST_PARENT":
		d.add("gemini trust", StatusOK, d.env.Dir+" is trusted ("+trust+")", "")
	case "DO_NOT_TRUST":
		d.add("gemini trust", StatusWarn, d.env.Dir+" is marked DO_NOT_TRUST: Gemini CLI will not start paf here", "trust it with /permissions in Gemini CLI, or edit "+trust)
	default:
		d.add("gemini trust", StatusInfo, d.env.Dir+" is not in "+trust+": Gemini CLI asks whether to trust it, and starts paf only if you do", "")
	}
}

func (d *doctor) codex(p paths, secretFromEnv bool) {
	b, err := readConfig(p.codexConfig)
	if err != nil {
		d.add("codex mcp", StatusFail, err.Error(), "")
		return
	}
	if b == nil {
		st := StatusInfo
		if exists(filepath.Dir(p.codexConfig)) {
			st = StatusWarn
		}
		d.add("codex mcp", st, "not configured", "paf-peer install codex")
		return
	}
	s, err := readCodex(b)
	if err != nil {
		d.add("codex mcp", StatusFail, p.codexConfig+" is not valid TOML: "+oneLine(err.Error()), "fix it, then: paf-peer install codex")
		return
	}
	if s == nil {
		d.add("codex mcp", StatusWarn, "not configured", "paf-peer install codex")
		return
	}
	st, what := d.target(s.Command)
	fix := ""
	if st != StatusOK {
		fix = "paf-peer install codex"
	}
	if st == StatusOK && secretFromEnv && !slices.Contains(s.EnvVars, keys.EnvSecret) && !slices.Contains(s.EnvVars, keys.EnvSecretLegacy) {
		st, what, fix = StatusFail, what+", but env_vars does not list PAF_SECRET: Codex drops it, and its peer runs in open mode apart from your others", "paf-peer install codex (or keep the secret in ~/.config/paf/secret)"
	}
	d.add("codex mcp", st, p.codexConfig+": "+what, fix)
}

// ErrChecksFailed is Write's answer when a check failed: doctor exits 1.
var ErrChecksFailed = errors.New("some checks failed: see the fix under each")

// Write writes the report, as JSON or for a terminal, and returns
// ErrChecksFailed when a check failed.
func (r Report) Write(w io.Writer, asJSON bool) error {
	if asJSON {
		if err := json.NewEncoder(w).Encode(r); err != nil {
			return err
		}
	} else {
		r.Print(w)
	}
	if !r.OK {
		return ErrChecksFailed
	}
	return nil
}

// Print writes the report for a terminal: one line per check, the fix under
// it, and a summary.
func (r Report) Print(w io.Writer) {
	fails, warns := 0, 0
	for _, c := range r.Checks {
		label := map[Status]string{StatusOK: "ok", StatusInfo: "--", StatusWarn: "WARN", StatusFail: "FAIL"}[c.Status]
		fmt.Fprintf(w, "%-4s  %-13s %s\n", label, c.Name, c.Detail)
		if c.Fix != "" && c.Status != StatusOK {
			label := "fix:"
			if c.Status == StatusInfo {
				label = "hint:"
			}
			fmt.Fprintf(w, "      %-13s %s %s\n", "", label, c.Fix)
		}
		switch c.Status {
		case StatusFail:
			fails++
		case StatusWarn:
			warns++
		}
	}
	switch {
	case fails > 0:
		fmt.Fprintf(w, "%d problem(s) to fix, %d warning(s)\n", fails, warns)
	case warns > 0:
		fmt.Fprintf(w, "no problems, %d warning(s)\n", warns)
	default:
		fmt.Fprintln(w, "everything looks right")
	}
}
