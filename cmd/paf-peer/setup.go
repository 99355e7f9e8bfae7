package main

import (
	"cmp"
	"context"
	"os"

	"github.com/paf-mesh/paf-mesh/mesh"
	"github.com/paf-mesh/paf-mesh/node"
	"github.com/paf-mesh/paf-mesh/node/setup"
)

func runInstall(_ context.Context, args []string, io stdio, getenv func(string) string) error {
	fs := newFlagSet("install", "[claude|gemini|codex|all] [--dry-run] [--scope user|project]", io)
	dry := fs.Bool("dry-run", false, "print the exact edits (a diff per file); write nothing")
	scope := fs.String("scope", "user", "user: your own config files; project: this directory's (Claude Code, Gemini CLI)")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	clients, sc, err := setup.ParseInstall(pos, *scope)
	if err != nil {
		return usagef("%v", err)
	}
	env, err := setup.EnvFromOS(getenv)
	if err != nil {
		return err
	}
	return setup.Install(env, clients, sc, *dry, io.out)
}

func runDoctor(_ context.Context, args []string, io stdio, getenv func(string) string) error {
	fs := newFlagSet("doctor", "[--json]", io)
	asJSON := fs.Bool("json", false, `print {"ok", "checks": [{"name", "status", "detail", "fix"}]}`)
	if err := parseNoArgs(fs, args); err != nil {
		return err
	}
	env, err := setup.EnvFromOS(getenv)
	if err != nil {
		return err
	}
	return setup.Doctor(env).Write(io.out, *asJSON)
}

func runWatch(ctx context.Context, args []string, io stdio, getenv func(string) string) error {
	fs := newFlagSet("watch", "[--as NAME]", io)
	var cf commonFlags
	cf.register(fs, false)
	as := fs.String("as", "", "the name to watch (default: PAF_NAME, else this session's peer, else the only named peer here)")
	if err := parseNoArgs(fs, args); err != nil {
		return err
	}
	s, err := cf.resolve(getenv)
	if err != nil {
		return err
	}
	name := cmp.Or(*as, getenv("PAF_NAME"))
	if name != "" {
		if name, err = mesh.NormalizeName(name); err != nil {
			return usagef("--as: %v", err)
		}
	}
	log, closeLog, err := s.logger(io.err)
	if err != nil {
		return err
	}
	defer closeLog()
	return node.Watch(ctx, node.WatchConfig{RunDir: s.RunDir, Name: name, PPID: os.Getppid(), Out: io.out, Logger: log})
}
