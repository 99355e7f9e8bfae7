package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/paf-mesh/paf-mesh/discovery"
	"github.com/paf-mesh/paf-mesh/internal/keys"
	"github.com/paf-mesh/paf-mesh/internal/logfile"
	"github.com/paf-mesh/paf-mesh/mesh"
	"github.com/paf-mesh/paf-mesh/node"
)

// commonFlags are the configuration flags of SPEC section 6, shared by every
// command that runs or reaches a peer. Each has an environment variable; a
// flag wins over the environment, which wins over the default.
type commonFlags struct {
	secretFile, name, stateDir, runDir, bind, join, mdns, logLevel, logFile string
	// nameSet: --name was given, even as "", which is then an invalid name
	// rather than "no name" (`--name "$NAME"` with NAME unset is a mistake).
	nameSet bool
	// tune: limits and timings, for the commands that register them.
	tune tuneFlags
}

func (c *commonFlags) register(fs *flagSet, withName bool) {
	fs.StringVar(&c.secretFile, "secret-file", "", "file holding the shared secret (mode 0600); env PAF_SECRET or IPC_SHARED_SECRET holds it directly")
	if withName {
		fs.Func("name", "name to claim at start (env PAF_NAME)", func(v string) error {
			c.name, c.nameSet = v, true
			return nil
		})
	}
	fs.StringVar(&c.stateDir, "state-dir", "", "state directory (env PAF_STATE_DIR; default $XDG_STATE_HOME/paf or ~/.local/state/paf)")
	fs.StringVar(&c.runDir, "run-dir", "", "local rendezvous directory (env PAF_RUN_DIR; default /run/user/UID/paf, else /tmp/paf-UID)")
	fs.StringVar(&c.bind, "bind", "", "gossip bind address host:port (env PAF_BIND; default "+node.DefaultOpenBind+" in open mode)")
	fs.StringVar(&c.join, "join", "", "seed peers host:port,... (env PAF_JOIN)")
	fs.StringVar(&c.mdns, "mdns", "", "mDNS discovery on|off (env PAF_MDNS)")
	fs.StringVar(&c.logLevel, "log-level", "", "debug, info, warn or error (env PAF_LOG_LEVEL; default info)")
	fs.StringVar(&c.logFile, "log-file", "", "also append logs to this file, created with mode 0600 (env PAF_LOG_FILE; default: stderr only)")
}

// settings is the resolved configuration: the peer's (Keys, Name, StateDir,
// RunDir, Bind, Join, MDNS; see config) and the process's.
type settings struct {
	node.Config
	Secure   bool
	LogLevel slog.Level
	// LogFile, when set, receives the logs too: an MCP client shows a server's
	// stderr poorly or not at all, so a file is where a user looks.
	LogFile string
	// SecretWarning is keys.WeakSecretWarning of the secret ("" if strong).
	SecretWarning string
}

// resolve applies flags, then environment, then defaults, and checks the
// result. Every error is one line that says what to do; a value that does not
// parse is a usage error (exit 2), a well-formed setting this mode refuses is
// a plain error (exit 1).
func (c *commonFlags) resolve(getenv func(string) string) (*settings, error) {
	pick := func(flagVal, env string) string {
		if flagVal != "" {
			return flagVal
		}
		return strings.TrimSpace(getenv(env))
	}
	s := &settings{}
	var err error

	if s.LogLevel, err = parseLevel(pick(c.logLevel, "PAF_LOG_LEVEL")); err != nil {
		return nil, usagef("%v", err)
	}
	s.LogFile = pick(c.logFile, "PAF_LOG_FILE")
	if err = c.tune.resolve(pick, &s.Config); err != nil {
		return nil, err
	}

	if s.StateDir = pick(c.stateDir, "PAF_STATE_DIR"); s.StateDir == "" {
		if s.StateDir, err = node.DefaultStateDir(getenv); err != nil {
			return nil, err
		}
	}
	if s.RunDir = pick(c.runDir, "PAF_RUN_DIR"); s.RunDir == "" {
		s.RunDir = node.DefaultRunDir()
	}

	if s.Name = pick(c.name, "PAF_NAME"); c.nameSet {
		s.Name = c.name // even "": an explicit empty --name is an error, not PAF_NAME
	}
	if s.Name != "" || c.nameSet {
		if s.Name, err = mesh.NormalizeName(s.Name); err != nil {
			return nil, usagef("%v", err)
		}
	}

	// Secret: a file given by flag wins; then the environment; then the
	// default secret file, if there is one (SPEC section 6), which a client
	// that strips the environment (Codex) cannot hide.
	var secret []byte
	var source string
	if c.secretFile == "" {
		if secret, source = keys.SecretFromEnv(getenv); source == "" {
			if def, derr := keys.DefaultSecretFile(getenv); derr == nil && fileExists(def) {
				c.secretFile = def
			}
		}
	}
	if c.secretFile != "" {
		if secret, err = keys.LoadSecretFile(c.secretFile); err != nil {
			return nil, err
		}
		source = c.secretFile
	}
	if source != "" {
		if s.Keys, err = keys.FromSecretCached(secret, s.StateDir); err != nil {
			return nil, fmt.Errorf("secret from %s: %w", source, err)
		}
		s.Secure, s.SecretWarning = true, keys.WeakSecretWarning(secret)
	}

	bind := pick(c.bind, "PAF_BIND")
	if bind == "" {
		bind = node.DefaultOpenBind
		if s.Secure {
			bind = node.DefaultSecureBind
		}
	}
	if s.Bind, err = node.ParseBind(bind); err != nil {
		return nil, usagef("%v", err)
	}

	if s.Join, err = discovery.ParseSeeds(pick(c.join, "PAF_JOIN")); err != nil {
		return nil, usagef("--join: %v", err)
	}

	switch m := strings.ToLower(pick(c.mdns, "PAF_MDNS")); m {
	case "":
		s.MDNS = s.Secure
	case "on", "true", "1", "yes":
		s.MDNS = true
	case "off", "false", "0", "no":
		s.MDNS = false
	default:
		return nil, usagef("--mdns %q: want on or off", m)
	}
	// What open mode forbids (off-machine bind, seeds or mDNS): node's rule.
	if err := s.Validate(); err != nil {
		return nil, err
	}
	return s, nil
}

func parseLevel(s string) (slog.Level, error) {
	switch strings.ToLower(s) {
	case "", "info":
		return slog.LevelInfo, nil
	case "debug":
		return slog.LevelDebug, nil
	case "warn", "warning":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("log level %q: want debug, info, warn or error", s)
}

// config is the node.Config of a peer with these settings; log is its
// logger. Zero limits and timings keep node's defaults.
func (s *settings) config(log *slog.Logger) node.Config {
	c := s.Config
	c.Version, c.Logger = version, log
	return c
}

// logger writes to w (stderr) and, with LogFile set, appends to that file
// too. close closes the file; an error says which file could not be opened
// and how to choose another.
func (s *settings) logger(w io.Writer) (log *slog.Logger, close func(), err error) {
	close = func() {}
	if s.LogFile != "" {
		f, err := logfile.Open(s.LogFile)
		if err != nil {
			return nil, nil, err
		}
		w, close = logfile.Tee(w, f), func() { _ = f.Close() }
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: s.LogLevel})), close, nil
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
