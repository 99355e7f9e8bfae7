package main

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/paf-mesh/paf-mesh/discovery"
	"github.com/paf-mesh/paf-mesh/internal/keys"
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
	fs.StringVar(&c.runDir, "run-dir", "", "local rendezvous directory (env PAF_RUN_DIR; default $XDG_RUNTIME_DIR/paf, else STATE_DIR/run)")
	fs.StringVar(&c.bind, "bind", "", "gossip bind address host:port (env PAF_BIND; default "+node.DefaultOpenBind+" in open mode)")
	fs.StringVar(&c.join, "join", "", "seed peers host:port,... (env PAF_JOIN)")
	fs.StringVar(&c.mdns, "mdns", "", "mDNS discovery on|off (env PAF_MDNS)")
	fs.StringVar(&c.logLevel, "log-level", "", "debug, info, warn or error (env PAF_LOG_LEVEL; default info)")
	fs.StringVar(&c.logFile, "log-file", "", "also append logs to this file, created with mode 0600 (env PAF_LOG_FILE; default: stderr only)")
}

// settings is the resolved configuration.
type settings struct {
	Keys     *keys.Keys
	Secure   bool
	Name     string
	StateDir string
	RunDir   string
	Bind     netip.AddrPort // port 0: any free port
	Join     []string
	MDNS     bool
	LogLevel slog.Level
	// LogFile, when set, receives the logs too: an MCP client shows a server's
	// stderr poorly or not at all, so a file is where a user looks.
	LogFile string
	// Tune holds the limits and timings given; zero fields keep defaults.
	Tune tuning
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
	if s.Tune, err = c.tune.resolve(pick); err != nil {
		return nil, err
	}

	if s.StateDir = pick(c.stateDir, "PAF_STATE_DIR"); s.StateDir == "" {
		if s.StateDir, err = node.DefaultStateDir(getenv); err != nil {
			return nil, err
		}
	}
	if s.RunDir = pick(c.runDir, "PAF_RUN_DIR"); s.RunDir == "" {
		s.RunDir = node.DefaultRunDir(getenv, s.StateDir)
	}

	if s.Name = pick(c.name, "PAF_NAME"); c.nameSet {
		s.Name = c.name // even "": an explicit empty --name is an error, not PAF_NAME
	}
	if s.Name != "" || c.nameSet {
		if s.Name, err = mesh.NormalizeName(s.Name); err != nil {
			return nil, usagef("%v", err)
		}
	}

	// Secret: a file given by flag wins; then the environment.
	var secret []byte
	var source string
	if c.secretFile != "" {
		if secret, err = keys.LoadSecretFile(c.secretFile); err != nil {
			return nil, err
		}
		source = c.secretFile
	} else {
		secret, source = keys.SecretFromEnv(getenv)
	}
	if source != "" {
		if s.Keys, err = keys.FromSecret(secret); err != nil {
			return nil, fmt.Errorf("secret from %s: %w", source, err)
		}
		s.Secure = true
	}

	bind := pick(c.bind, "PAF_BIND")
	if bind == "" {
		bind = node.DefaultOpenBind
		if s.Secure {
			bind = node.DefaultSecureBind
		}
	}
	if s.Bind, err = parseBind(bind); err != nil {
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
	cfg := s.config(nil)
	if err := cfg.Validate(); err != nil {
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

func parseBind(s string) (netip.AddrPort, error) {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("bind address %q: want ip:port, e.g. 127.0.0.1:0 or 0.0.0.0:7946", s)
	}
	if host == "localhost" {
		host = "127.0.0.1"
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("bind address %q: %q is not an IP address (want e.g. 127.0.0.1:0)", s, host)
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("bind address %q: port %q is not 0-65535", s, port)
	}
	return netip.AddrPortFrom(ip.Unmap(), uint16(p)), nil
}

func (s *settings) mode() string {
	if s.Secure {
		return "secure"
	}
	return "open"
}

// config is the node.Config of a peer with these settings; log is its
// logger. The tuning's zero fields keep node's defaults.
func (s *settings) config(log *slog.Logger) node.Config {
	return node.Config{
		Name: s.Name, Keys: s.Keys, StateDir: s.StateDir, RunDir: s.RunDir,
		Bind: s.Bind, Join: s.Join, MDNS: s.MDNS,
		MaxBody: s.Tune.MaxBody, FileOver: s.Tune.FileOver, ForwardTTL: s.Tune.ForwardTTL,
		StoreTTL: s.Tune.StoreTTL, Replicas: s.Tune.Replicas, Rate: s.Tune.Rate,
		ConversationIdle: s.Tune.ConversationIdle, Version: version, Logger: log,
	}
}

// logger writes to w (stderr) and, with LogFile set, appends to that file
// too. close closes the file; an error says which file could not be opened
// and how to choose another.
func (s *settings) logger(w io.Writer) (log *slog.Logger, close func(), err error) {
	close = func() {}
	if s.LogFile != "" {
		f, err := openLogFile(s.LogFile)
		if err != nil {
			return nil, nil, err
		}
		w, close = teeWriter{w, f}, func() { _ = f.Close() }
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: s.LogLevel})), close, nil
}

func openLogFile(path string) (*os.File, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("log file %s: %w; give a writable path with --log-file or PAF_LOG_FILE", path, err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("log file %s: %w; give a writable path with --log-file or PAF_LOG_FILE", path, err)
	}
	return f, nil
}

// teeWriter writes each record to both writers; a failure of one (a closed
// stderr, a full disk) does not keep the record from the other.
type teeWriter struct{ a, b io.Writer }

func (t teeWriter) Write(p []byte) (int, error) {
	_, errA := t.a.Write(p)
	_, errB := t.b.Write(p)
	if errA != nil && errB != nil {
		return 0, errA
	}
	return len(p), nil
}
