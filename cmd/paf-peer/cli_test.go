package main

// In-process tests of the command line: exit codes, usage, and how flags,
// environment and defaults combine. Nothing here starts a peer.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/paf-mesh/paf-mesh/internal/buildinfo"
	"github.com/paf-mesh/paf-mesh/node"
)

// runIn runs one command line in process with env as the whole environment.
func runIn(t *testing.T, env map[string]string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb bytes.Buffer
	getenv := func(k string) string { return env[k] }
	code = run(context.Background(), args, stdio{in: strings.NewReader(""), out: &out, err: &errb}, getenv)
	return out.String(), errb.String(), code
}

// tempEnv is an environment whose every default directory is private to t.
func tempEnv(t *testing.T) map[string]string {
	dir := t.TempDir()
	return map[string]string{
		"HOME":          filepath.Join(dir, "home"),
		"PAF_STATE_DIR": filepath.Join(dir, "state"),
		"PAF_RUN_DIR":   filepath.Join(dir, "run"),
	}
}

func TestRunUsage(t *testing.T) {
	tests := map[string]struct {
		args     []string
		wantCode int
		wantOut  string // substring of stdout ("" : stdout must be empty)
		wantErr  string // substring of stderr ("" : stderr must be empty)
	}{
		"no command":          {args: nil, wantCode: 2, wantErr: "Usage: paf-peer COMMAND"},
		"--help":              {args: []string{"--help"}, wantCode: 0, wantOut: "Usage: paf-peer COMMAND"},
		"-h":                  {args: []string{"-h"}, wantCode: 0, wantOut: "Commands:"},
		"help":                {args: []string{"help"}, wantCode: 0, wantOut: "serve"},
		"version":             {args: []string{"version"}, wantCode: 0, wantOut: "paf-peer " + buildinfo.Long() + "\n"},
		"--version":           {args: []string{"--version"}, wantCode: 0, wantOut: "paf-peer " + buildinfo.Long() + "\n"},
		"version extra":       {args: []string{"version", "now"}, wantCode: 2, wantErr: `unexpected argument "now"`},
		"unknown command":     {args: []string{"frobnicate"}, wantCode: 2, wantErr: `unknown command "frobnicate"`},
		"unknown serve flag":  {args: []string{"serve", "--frob"}, wantCode: 2, wantErr: "-frob"},
		"unknown status flag": {args: []string{"status", "--frob"}, wantCode: 2, wantErr: "-frob"},
		"flag without value":  {args: []string{"serve", "--name"}, wantCode: 2, wantErr: "-name"},
		"serve --help":        {args: []string{"serve", "--help"}, wantCode: 0, wantOut: "Usage: paf-peer serve"},
		"status --help":       {args: []string{"status", "--help"}, wantCode: 0, wantOut: "-watch"},
		"status extra":        {args: []string{"status", "now"}, wantCode: 2, wantErr: `unexpected argument "now"`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			out, errOut, code := runIn(t, tempEnv(t), tc.args...)
			if code != tc.wantCode {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tc.wantCode, out, errOut)
			}
			check := func(stream, got, want string) {
				t.Helper()
				if want == "" && got != "" {
					t.Errorf("%s: %q, want nothing", stream, got)
				}
				if !strings.Contains(got, want) {
					t.Errorf("%s: %q does not contain %q", stream, got, want)
				}
			}
			check("stdout", out, tc.wantOut)
			check("stderr", errOut, tc.wantErr)
			if code == 2 && len(tc.args) > 0 {
				// A usage error is one line that says where to look.
				if ls := lines(errOut); len(ls) != 1 || !strings.Contains(ls[0], "--help") {
					t.Errorf("usage error should be one line pointing to --help, got:\n%s", errOut)
				}
			}
		})
	}
}

// The settings of SPEC section 6: a flag wins over the environment, which
// wins over the default.
func TestResolvePrecedence(t *testing.T) {
	defRun := node.DefaultRunDir()
	type want struct {
		name, stateDir, runDir, bind, logFile string
		join                                  []string
		mdns, secure                          bool
		level                                 slog.Level
	}
	tests := map[string]struct {
		args []string
		env  map[string]string
		want want
	}{
		"defaults": {
			env:  map[string]string{"HOME": "/h"},
			want: want{stateDir: "/h/.local/state/paf", runDir: defRun, bind: "127.0.0.1:0"},
		},
		// The run dir never follows the environment (a client may strip it): every session of
		// a user meets in the same one.
		"XDG dirs": {
			env:  map[string]string{"HOME": "/h", "XDG_STATE_HOME": "/xs", "XDG_RUNTIME_DIR": "/xr"},
			want: want{stateDir: "/xs/paf", runDir: defRun, bind: "127.0.0.1:0"},
		},
		"run dir does not follow the state dir": {
			env:  map[string]string{"PAF_STATE_DIR": "/s"},
			want: want{stateDir: "/s", runDir: defRun, bind: "127.0.0.1:0"},
		},
		"environment": {
			env: map[string]string{
				"HOME": "/h", "PAF_NAME": "Env", "PAF_STATE_DIR": "/es", "PAF_RUN_DIR": "/er",
				"PAF_BIND": "127.0.0.2:7000", "PAF_JOIN": "127.0.0.1:1, localhost:2", "PAF_MDNS": "off", "PAF_LOG_LEVEL": "DEBUG",
				"PAF_LOG_FILE": "/el/paf.log",
			},
			want: want{name: "env", stateDir: "/es", runDir: "/er", bind: "127.0.0.2:7000",
				join: []string{"127.0.0.1:1", "localhost:2"}, level: slog.LevelDebug, logFile: "/el/paf.log"},
		},
		"flags beat the environment": {
			args: []string{"--name", "Flag", "--state-dir", "/fs", "--run-dir", "/fr", "--bind", "localhost:7001",
				"--join", "[::1]:3", "--mdns", "off", "--log-level", "warn", "--log-file", "/fl/paf.log"},
			env: map[string]string{
				"HOME": "/h", "PAF_NAME": "env", "PAF_STATE_DIR": "/es", "PAF_RUN_DIR": "/er",
				"PAF_BIND": "127.0.0.2:7000", "PAF_JOIN": "127.0.0.1:1", "PAF_MDNS": "on", "PAF_LOG_LEVEL": "debug",
				"PAF_LOG_FILE": "/el/paf.log",
			},
			// PAF_MDNS=on alone would be refused in open mode: the flag wins first.
			want: want{name: "flag", stateDir: "/fs", runDir: "/fr", bind: "127.0.0.1:7001",
				join: []string{"[::1]:3"}, level: slog.LevelWarn, logFile: "/fl/paf.log"},
		},
		"secret from the environment": {
			env:  map[string]string{"HOME": "/h", "PAF_SECRET": "correct horse battery staple, but longer"},
			want: want{stateDir: "/h/.local/state/paf", runDir: defRun, bind: "0.0.0.0:0", secure: true, mdns: true},
		},
		"legacy secret variable": {
			env:  map[string]string{"HOME": "/h", "IPC_SHARED_SECRET": "correct horse battery staple, but longer"},
			want: want{stateDir: "/h/.local/state/paf", runDir: defRun, bind: "0.0.0.0:0", secure: true, mdns: true},
		},
		"secret with mdns off and a LAN seed": {
			args: []string{"--mdns", "off", "--join", "10.1.2.3:7946"},
			env:  map[string]string{"HOME": "/h", "PAF_SECRET": "correct horse battery staple, but longer"},
			want: want{stateDir: "/h/.local/state/paf", runDir: defRun, bind: "0.0.0.0:0",
				join: []string{"10.1.2.3:7946"}, secure: true},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			fs := newFlagSet("serve", "", stdio{out: &bytes.Buffer{}, err: &bytes.Buffer{}})
			var cf commonFlags
			cf.register(fs, true)
			if _, err := parseFlags(fs, tc.args); err != nil {
				t.Fatal(err)
			}
			s, err := cf.resolve(func(k string) string { return tc.env[k] })
			if err != nil {
				t.Fatalf("resolve: %v", err)
			}
			got := want{name: s.Name, stateDir: s.StateDir, runDir: s.RunDir, bind: s.Bind.String(),
				join: s.Join, mdns: s.MDNS, secure: s.Secure, level: s.LogLevel, logFile: s.LogFile}
			if got.logFile != tc.want.logFile || got.name != tc.want.name || got.stateDir != tc.want.stateDir || got.runDir != tc.want.runDir ||
				got.bind != tc.want.bind || !slices.Equal(got.join, tc.want.join) || got.mdns != tc.want.mdns ||
				got.secure != tc.want.secure || got.level != tc.want.level {
				t.Fatalf("resolved\n %+v\nwant\n %+v", got, tc.want)
			}
			if s.Secure != (s.Keys != nil) {
				t.Errorf("secure %v but keys %v", s.Secure, s.Keys)
			}
			if s.Secure && s.Mode() != "secure" || !s.Secure && s.Mode() != "open" {
				t.Errorf("mode %q with secure %v", s.Mode(), s.Secure)
			}
		})
	}
}

// Bad settings are refused before anything starts, in one line on stderr,
// with exit 2 for a value that does not parse and 1 for one this mode
// refuses.
func TestRunBadSettings(t *testing.T) {
	secretFile := func(t *testing.T, mode os.FileMode) string {
		p := filepath.Join(t.TempDir(), "secret")
		if err := os.WriteFile(p, []byte("correct horse battery staple, but longer\n"), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := map[string]struct {
		cmd      string
		args     func(t *testing.T) []string
		env      map[string]string
		unset    []string // variables of tempEnv to remove
		wantCode int
		want     string
	}{
		"empty --name":         {args: argv("--name", ""), wantCode: 2, want: "must not be empty"},
		"empty --name=":        {args: argv("--name="), env: map[string]string{"PAF_NAME": "ok"}, wantCode: 2, want: "must not be empty"},
		"long name":            {args: argv("--name", strings.Repeat("a", 65)), wantCode: 2, want: "limit is 64"},
		"bad character":        {args: argv("--name", "a*b"), wantCode: 2, want: "a-z 0-9 . _ -"},
		"bad PAF_NAME":         {env: map[string]string{"PAF_NAME": "_x"}, wantCode: 2, want: "start with a letter or digit"},
		"bad --join":           {args: argv("--join", "127.0.0.1"), wantCode: 2, want: "--join"},
		"bad --bind":           {args: argv("--bind", "127.0.0.1"), wantCode: 2, want: "ip:port"},
		"bind not an ip":       {args: argv("--bind", "example.com:1"), wantCode: 2, want: "not an IP address"},
		"bad PAF_LOG_LEVEL":    {env: map[string]string{"PAF_LOG_LEVEL": "chatty"}, wantCode: 2, want: "chatty"},
		"bad PAF_MDNS":         {env: map[string]string{"PAF_MDNS": "sometimes"}, wantCode: 2, want: "on or off"},
		"LAN bind, no secret":  {args: argv("--bind", "192.168.1.2:0"), wantCode: 1, want: "PAF_SECRET"},
		"LAN seed, no secret":  {args: argv("--join", "127.0.0.1:1,10.1.2.3:7946"), wantCode: 1, want: "10.1.2.3:7946"},
		"mdns on, no secret":   {env: map[string]string{"PAF_MDNS": "on"}, wantCode: 1, want: "PAF_SECRET"},
		"blank PAF_SECRET":     {env: map[string]string{"PAF_SECRET": "   "}, wantCode: 1, want: "PAF_SECRET"},
		"missing secret file":  {args: argv("--secret-file", "/nonexistent/s"), wantCode: 1, want: "/nonexistent/s"},
		"no HOME, no dirs set": {unset: []string{"HOME", "PAF_STATE_DIR", "PAF_RUN_DIR"}, wantCode: 1, want: "--state-dir"},
		"loose secret file": {
			args:     func(t *testing.T) []string { return []string{"--secret-file", secretFile(t, 0o644)} },
			wantCode: 1, want: "chmod 600",
		},
		"log file under a regular file": {
			// Root ignores permissions, so the unwritable place is a path through a file.
			args: func(t *testing.T) []string {
				f := filepath.Join(t.TempDir(), "file")
				if err := os.WriteFile(f, nil, 0o600); err != nil {
					t.Fatal(err)
				}
				return []string{"--log-file", filepath.Join(f, "paf.log")}
			},
			wantCode: 1, want: "give a writable path with --log-file or PAF_LOG_FILE",
		},
		"mcp, log file is a directory": {
			cmd:      "mcp",
			args:     func(t *testing.T) []string { return []string{"--log-file", t.TempDir()} },
			wantCode: 1, want: "give a writable path with --log-file or PAF_LOG_FILE",
		},
		"listen, --timeout 0":     {cmd: "listen", args: argv("--as", "bob", "--timeout", "0"), wantCode: 2, want: "above 0 and at most 86400"},
		"listen, --timeout abc":   {cmd: "listen", args: argv("--as", "bob", "--timeout", "abc"), wantCode: 2, want: "above 0 and at most 86400"},
		"listen, --timeout 86401": {cmd: "listen", args: argv("--as", "bob", "--timeout", "86401"), wantCode: 2, want: "omit it to wait until interrupted"},
		"status, bad --join":      {cmd: "status", args: argv("--join", "x:y"), wantCode: 2, want: "--join"},
		"send, empty message":     {cmd: "send", args: argv("--as", "alice", "bob", " \n"), wantCode: 2, want: "the message is empty: nothing was sent"},
		"send, empty stdin":       {cmd: "send", args: argv("--as", "alice", "bob", "-"), wantCode: 2, want: "read from stdin is empty"},
		"status, LAN bind":        {cmd: "status", args: argv("--bind", "0.0.0.0:0"), wantCode: 1, want: "PAF_SECRET"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			cmd := tc.cmd
			if cmd == "" {
				cmd = "serve"
			}
			env := tempEnv(t)
			for k, v := range tc.env {
				env[k] = v
			}
			for _, k := range tc.unset {
				delete(env, k)
			}
			args := []string{cmd}
			if tc.args != nil {
				args = append(args, tc.args(t)...)
			}
			out, errOut, code := runIn(t, env, args...)
			if code != tc.wantCode {
				t.Fatalf("%q: exit %d, want %d\nstderr: %s", args, code, tc.wantCode, errOut)
			}
			ls := lines(errOut)
			if len(ls) != 1 || !strings.HasPrefix(ls[0], "paf-peer "+cmd+": ") || !strings.Contains(ls[0], tc.want) {
				t.Fatalf("stderr should be one line \"paf-peer %s: ...%s...\", got:\n%s", cmd, tc.want, errOut)
			}
			if out != "" {
				t.Errorf("stdout: %q, want nothing", out)
			}
		})
	}
}

func argv(a ...string) func(*testing.T) []string {
	return func(*testing.T) []string { return a }
}

// status with no peer running, in process: exit 0 and a message, in text and
// in JSON of the SPEC's shape.
func TestRunStatusNoPeer(t *testing.T) {
	env := tempEnv(t)
	out, errOut, code := runIn(t, env, "status")
	if code != 0 || !strings.Contains(out, "no paf-peer is running") || errOut != "" {
		t.Fatalf("status: exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	out, errOut, code = runIn(t, env, "status", "--json")
	if code != 0 || errOut != "" {
		t.Fatalf("status --json: exit %d\nstderr: %s", code, errOut)
	}
	var st jsonStatus
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("status --json: %v\n%s", err, out)
	}
	if st.Self != nil || st.Peers == nil || len(st.Peers) != 0 || st.Forwards == nil || st.Mode != "open" || st.Message == "" {
		t.Fatalf("status --json with no peer: %s", out)
	}
}

// The limits and timings SPEC calls configurable: each from its flag, else its
// variable, else the default (zero here); refused values say what is allowed.
func TestResolveTuning(t *testing.T) {
	tests := map[string]struct {
		args    []string
		env     map[string]string
		want    tuning
		wantErr string
	}{
		"defaults": {},
		"environment": {
			env: map[string]string{
				"PAF_MAX_BODY": "2MiB", "PAF_FILE_OVER": "4k", "PAF_FORWARD_TTL": "90m", "PAF_STORE_TTL": "7d",
				"PAF_REPLICAS": "5", "PAF_RATE": "50", "PAF_CONVERSATION_IDLE": "2h",
			},
			want: tuning{MaxBody: 2 << 20, FileOver: 4 << 10, ForwardTTL: 90 * time.Minute, StoreTTL: 7 * 24 * time.Hour,
				Replicas: 5, Rate: 50, ConversationIdle: 2 * time.Hour},
		},
		"flags beat the environment": {
			args: []string{"--max-body", "1048576", "--file-over", "1KiB", "--forward-ttl", "1d", "--store-ttl", "1h",
				"--replicas", "1", "--rate", "1", "--conversation-idle", "1m"},
			env:  map[string]string{"PAF_MAX_BODY": "2MiB", "PAF_REPLICAS": "5", "PAF_CONVERSATION_IDLE": "2h"},
			want: tuning{MaxBody: 1 << 20, FileOver: 1 << 10, ForwardTTL: 24 * time.Hour, StoreTTL: time.Hour, Replicas: 1, Rate: 1, ConversationIdle: time.Minute},
		},
		"largest values": {
			args: []string{"--max-body", "16MiB", "--file-over", "16mb", "--forward-ttl", "30d", "--store-ttl", "365d", "--replicas", "16", "--rate", "1000000", "--conversation-idle", "168h"},
			want: tuning{MaxBody: 16 << 20, FileOver: 16 << 20, ForwardTTL: 30 * 24 * time.Hour, StoreTTL: 365 * 24 * time.Hour, Replicas: 16, Rate: 1e6, ConversationIdle: 7 * 24 * time.Hour},
		},
		"body under 1KiB":        {args: []string{"--max-body", "1023"}, wantErr: "from 1KiB to 16MiB"},
		"body over 16MiB":        {args: []string{"--max-body", "17MiB"}, wantErr: "from 1KiB to 16MiB"},
		"body in GiB":            {env: map[string]string{"PAF_MAX_BODY": "1GiB"}, wantErr: "PAF_MAX_BODY"},
		"body not a number":      {args: []string{"--max-body", "big"}, wantErr: "e.g. 10KiB or 8MiB"},
		"body overflows":         {args: []string{"--max-body", "99999999999999999999MiB"}, wantErr: "--max-body"},
		"file-over above max":    {args: []string{"--max-body", "1MiB", "--file-over", "2MiB"}, wantErr: "above --max-body"},
		"forward ttl too short":  {args: []string{"--forward-ttl", "30s"}, wantErr: "from 1m0s to 30d"},
		"forward ttl too long":   {args: []string{"--forward-ttl", "31d"}, wantErr: "from 1m0s to 30d"},
		"store ttl huge days":    {args: []string{"--store-ttl", "99999999999999d"}, wantErr: "--store-ttl"},
		"store ttl negative":     {args: []string{"--store-ttl", "-1h"}, wantErr: "from 1h0m0s to 365d"},
		"store ttl not duration": {env: map[string]string{"PAF_STORE_TTL": "a month"}, wantErr: "e.g. 90m, 2h or 30d"},
		"replicas 0":             {args: []string{"--replicas", "0"}, wantErr: "from 1 to 16"},
		"replicas 17":            {env: map[string]string{"PAF_REPLICAS": "17"}, wantErr: "from 1 to 16"},
		"rate 0":                 {args: []string{"--rate", "0"}, wantErr: "from 1 to 1000000"},
		"rate NaN":               {args: []string{"--rate", "NaN"}, wantErr: "from 1 to 1000000"},
		"idle too long":          {args: []string{"--conversation-idle", "8d"}, wantErr: "from 1m0s to 7d"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			fs := newFlagSet("mcp", "", stdio{out: &bytes.Buffer{}, err: &bytes.Buffer{}})
			var cf commonFlags
			cf.register(fs, true)
			cf.tune.register(fs, true)
			if _, err := parseFlags(fs, tc.args); err != nil {
				t.Fatal(err)
			}
			env := map[string]string{"HOME": "/h"}
			for k, v := range tc.env {
				env[k] = v
			}
			s, err := cf.resolve(func(k string) string { return env[k] })
			if tc.wantErr != "" {
				var ue *usageError
				if err == nil || !errors.As(err, &ue) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("resolve: %v, want a usage error saying %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("resolve: %v", err)
			}
			if got := tuningOf(s.Config); got != tc.want {
				t.Fatalf("tuning %+v, want %+v", got, tc.want)
			}
		})
	}
}

// tuning is the limits and timings of a node.Config, as TestResolveTuning
// expects them (zero: unset, node's default).
type tuning struct {
	MaxBody, FileOver    int
	ForwardTTL, StoreTTL time.Duration
	Replicas             int
	Rate                 float64
	ConversationIdle     time.Duration
}

func tuningOf(c node.Config) tuning {
	return tuning{MaxBody: c.MaxBody, FileOver: c.FileOver, ForwardTTL: c.ForwardTTL, StoreTTL: c.StoreTTL,
		Replicas: c.Replicas, Rate: c.Rate, ConversationIdle: c.ConversationIdle}
}
