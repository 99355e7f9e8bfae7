package main

import (
	"errors"
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
	fs.StringVar(&c.bind, "bind", "", "gossip bind address host:port (env PAF_BIND; default 127.0.0.1:0 in open mode)")
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
	if s.Tune, err = c.tune.resolve(pick); err != nil {
		return nil, err
	}

	s.StateDir = pick(c.stateDir, "PAF_STATE_DIR")
	if s.StateDir == "" {
		base := getenv("XDG_STATE_HOME")
		if base == "" {
			// getenv, not os.UserHomeDir: every setting comes through getenv.
			home := getenv("HOME")
			if home == "" {
				return nil, fmt.Errorf("no state dir: $HOME is not set; give one with --state-dir or PAF_STATE_DIR")
			}
			base = filepath.Join(home, ".local", "state")
		}
		s.StateDir = filepath.Join(base, "paf")
	}
	s.RunDir = pick(c.runDir, "PAF_RUN_DIR")
	if s.RunDir == "" {
		if rt := getenv("XDG_RUNTIME_DIR"); rt != "" {
			s.RunDir = filepath.Join(rt, "paf")
		} else {
			s.RunDir = filepath.Join(s.StateDir, "run")
		}
	}

	if s.Name = pick(c.name, "PAF_NAME"); c.nameSet {
		s.Name = c.name // even "": an explicit empty --name is an error, not PAF_NAME
	}
	if s.Name != "" || c.nameSet {
		if s.Name, err = normalizeName(s.Name); err != nil {
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
		if s.Keys, err = keys.FromSecretCached(secret, s.StateDir); err != nil {
			return nil, fmt.Errorf("secret from %s: %w", source, err)
		}
		s.Secure, s.SecretWarning = true, keys.WeakSecretWarning(secret)
	}

	bind := pick(c.bind, "PAF_BIND")
	if bind == "" {
		bind = "127.0.0.1:0"
		if s.Secure {
			bind = "0.0.0.0:0"
		}
	}
	if s.Bind, err = parseBind(bind); err != nil {
		return nil, usagef("%v", err)
	}
	if !s.Secure && !s.Bind.Addr().IsLoopback() {
		return nil, fmt.Errorf("bind address %s would expose the mesh beyond this machine, which needs a shared secret: set PAF_SECRET (or --secret-file), or bind to 127.0.0.1", s.Bind)
	}

	if s.Join, err = discovery.ParseSeeds(pick(c.join, "PAF_JOIN")); err != nil {
		return nil, usagef("--join: %v", err)
	}
	if !s.Secure {
		for _, j := range s.Join {
			if !isLoopbackHostPort(j) {
				return nil, fmt.Errorf("seed %s is not on this machine; joining peers on other hosts needs a shared secret: set PAF_SECRET (or --secret-file)", j)
			}
		}
	}

	switch m := strings.ToLower(pick(c.mdns, "PAF_MDNS")); m {
	case "":
		s.MDNS = s.Secure
	case "on", "true", "1", "yes":
		if !s.Secure {
			return nil, errors.New("mDNS on the LAN needs a shared secret: set PAF_SECRET (or --secret-file), or use --mdns off")
		}
		s.MDNS = true
	case "off", "false", "0", "no":
		s.MDNS = false
	default:
		return nil, usagef("--mdns %q: want on or off", m)
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

func isLoopbackHostPort(hp string) bool {
	host, _, err := net.SplitHostPort(hp)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

func (s *settings) mode() string {
	if s.Secure {
		return "secure"
	}
	return "open"
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
