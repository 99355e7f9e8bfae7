package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/paf-mesh/paf-mesh/internal/buildinfo"
)

// version is this build's: the module version (go install ...@vX.Y.Z), else buildinfo.Dev.
var version = buildinfo.Version()

// Exit codes (SPEC section 6).
const (
	exitOK    = 0
	exitFail  = 1
	exitUsage = 2
)

type stdio struct {
	in       io.Reader
	out, err io.Writer
}

// usageError is bad usage: exit code 2 and a hint to read --help.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{fmt.Sprintf(format, args...)}
}

type command struct {
	name, args, summary string
	run                 func(ctx context.Context, args []string, io stdio, getenv func(string) string) error
}

func commands() []command {
	return []command{
		{"mcp", "[--name NAME] [--description D]", "run as the MCP server (stdio) of one agent session: a peer of the mesh", runMCP},
		{"serve", "[--name NAME] [--description D]", "run a headless peer: holds messages for absent names, keeps NAME's inbox", runServe},
		{"status", "[--json] [--watch]", "show the mesh: peers, names, hosts, states, forwarding names", runStatus},
		{"send", "--as NAME TO MESSAGE [--json]", "send a message as NAME (MESSAGE - reads stdin)", runSend},
		{"check", "--as NAME [--json]", "print NAME's unread messages and mark them read", runCheck},
		{"listen", "--as NAME [--timeout S] [--json]", "wait for a message for NAME, print it and mark it read", runListen},
		{"hook", "[--as NAME]", "a Claude Code hook command: tells the session about unread messages", runHook},
		{"watch", "[--as NAME]", "print a line per new message for this session (never marks read): for a monitor or a terminal", runWatch},
		{"install", "[claude|gemini|codex|all] [--dry-run] [--scope user|project]", "add paf-peer to the agent clients' configuration (default all; backs up what it edits)", runInstall},
		{"doctor", "[--json]", "check this machine's set-up and say what to fix", runDoctor},
		{"demo", "[--verbose]", "play a conversation, a future message, a rename and a broadcast between in-process peers", runDemo},
		{"identity", "[--json]", "this user's identity key fingerprint on this machine, and the names bound to it", runIdentity},
		{"secret", "new [--write | --file PATH] [--force]", "make a new random 256-bit shared secret: print it, or write it to the secret file", runSecret},
		{"version", "", "print the version", runVersion},
	}
}

const topUsage = `paf-peer: a peer of the paf mesh, for AI agent sessions to talk to each other.

Usage: paf-peer COMMAND [flags]

Commands:
%s
Run 'paf-peer COMMAND --help' for a command's flags.
`

func printUsage(w io.Writer) {
	var b strings.Builder
	for _, c := range commands() {
		fmt.Fprintf(&b, "  %-8s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, topUsage, b.String())
}

// run executes one command line and returns the process exit code. Errors
// are one line on stderr; stdout carries only the command's output.
func run(ctx context.Context, args []string, io stdio, getenv func(string) string) int {
	if len(args) == 0 {
		printUsage(io.err)
		return exitUsage
	}
	switch args[0] {
	case "-h", "--help", "help":
		printUsage(io.out)
		return exitOK
	case "-v", "--version":
		args[0] = "version"
	}
	for _, c := range commands() {
		if c.name != args[0] {
			continue
		}
		err := c.run(ctx, args[1:], io, getenv)
		var ue *usageError
		switch {
		case err == nil:
			return exitOK
		case errors.As(err, new(hookWake)):
			return exitUsage // 2: for a Stop hook, "go on", with the note already on stderr
		case errors.Is(err, flag.ErrHelp):
			return exitOK
		case errors.As(err, &ue):
			fmt.Fprintf(io.err, "paf-peer %s: %s (see 'paf-peer %s --help')\n", c.name, ue.msg, c.name)
			return exitUsage
		default:
			fmt.Fprintf(io.err, "paf-peer %s: %s\n", c.name, oneLine(err.Error()))
			return exitFail
		}
	}
	fmt.Fprintf(io.err, "paf-peer: unknown command %q (run 'paf-peer --help' for the list)\n", args[0])
	return exitUsage
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// flagSet is a flag.FlagSet that reports errors as one-line usage errors
// instead of printing the whole usage, and prints the usage only for --help.
type flagSet struct {
	*flag.FlagSet
	help func()
}

func newFlagSet(name, args string, std stdio) *flagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return &flagSet{FlagSet: fs, help: func() {
		fmt.Fprintf(std.out, "Usage: paf-peer %s %s\n\nFlags:\n", name, args)
		fs.SetOutput(std.out)
		fs.PrintDefaults()
		fs.SetOutput(io.Discard)
	}}
}

// parseFlags parses args, allowing flags after positional arguments too
// (`paf-peer send bob hi --json`), and returns the positional arguments.
func parseFlags(fs *flagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				fs.help()
				return nil, err
			}
			return nil, usagef("%v", err)
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		if args[0] == "--" {
			return append(pos, args[1:]...), nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// parseNoArgs is parseFlags for a command that takes no arguments.
func parseNoArgs(fs *flagSet, args []string) error {
	rest, err := parseFlags(fs, args)
	if err == nil && len(rest) > 0 {
		err = usagef("unexpected argument %q", rest[0])
	}
	return err
}

func runVersion(_ context.Context, args []string, io stdio, _ func(string) string) error {
	fs := newFlagSet("version", "", io)
	if err := parseNoArgs(fs, args); err != nil {
		return err
	}
	fmt.Fprintf(io.out, "paf-peer %s\n", buildinfo.Long())
	return nil
}
