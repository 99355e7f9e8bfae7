package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/paf-mesh/paf-mesh/internal/keys"
)

// runSecret is `paf-peer secret new`: a new random 256-bit shared secret (keys.NewSecret),
// printed on stdout, or with --write / --file written to a secret file with mode 0600. An
// existing file is never replaced without --force: it is the secret every peer of a mesh
// shares, and losing it cuts this machine off from the others.
func runSecret(_ context.Context, args []string, std stdio, getenv func(string) string) error {
	const usage = "new [--write | --file PATH] [--force]"
	fs := newFlagSet("secret", usage, std)
	write := fs.Bool("write", false, "write the secret to the default secret file ($XDG_CONFIG_HOME/paf/secret, default ~/.config/paf/secret) instead of printing it")
	file := fs.String("file", "", "write the secret to this file instead of printing it")
	force := fs.Bool("force", false, "replace an existing secret file (peers using the old secret will no longer reach this one)")
	rest, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(rest) != 1 || rest[0] != "new" {
		return usagef("want: paf-peer secret %s", usage)
	}
	path := *file
	if *write && path == "" {
		if path, err = defaultSecretFile(getenv); err != nil {
			return err
		}
	}
	if *force && path == "" {
		return usagef("--force applies to --write or --file")
	}
	secret := keys.NewSecret()
	if path == "" {
		_, err := fmt.Fprintln(std.out, secret)
		return err
	}
	if err := writeSecretFile(path, secret+"\n", *force); err != nil {
		return err
	}
	fmt.Fprintf(std.err, "paf-peer: wrote a new 256-bit secret to %s (mode 0600); give every peer of the mesh the same one, with --secret-file %s or PAF_SECRET\n", path, path)
	return nil
}

// defaultSecretFile is $XDG_CONFIG_HOME/paf/secret, or ~/.config/paf/secret.
func defaultSecretFile(getenv func(string) string) (string, error) {
	base := getenv("XDG_CONFIG_HOME")
	if base == "" {
		home := getenv("HOME")
		if home == "" {
			return "", errors.New("no config dir: neither $XDG_CONFIG_HOME nor $HOME is set; give a path with --file")
		}
		base = filepath.Join(home, ".config")
	}
	return filepath.Join(base, "paf", "secret"), nil
}

// writeSecretFile writes content to path with mode 0600. Without force it fails if path
// exists (O_EXCL, so not even a file created meanwhile is replaced); with force it replaces
// path atomically (a private temporary file renamed over it), so a reader never sees a partial
// secret and the old file's looser mode, if any, does not survive.
func writeSecretFile(path, content string, force bool) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	if !force {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("secret file %s exists; keep it, or replace it with --force (peers still using the old secret will no longer reach this one)", path)
		}
		if err != nil {
			return fmt.Errorf("create secret file: %w", err)
		}
		_, werr := f.WriteString(content)
		serr := f.Sync()
		if cerr := f.Close(); werr != nil || serr != nil || cerr != nil {
			os.Remove(path)
			return fmt.Errorf("write secret file %s: %w", path, errors.Join(werr, serr, cerr))
		}
		return nil
	}
	tmp, err := os.CreateTemp(dir, ".secret-*.tmp") // O_EXCL, mode 0600
	if err != nil {
		return fmt.Errorf("create secret file: %w", err)
	}
	defer os.Remove(tmp.Name())
	_, werr := tmp.WriteString(content)
	serr := tmp.Sync()
	if cerr := tmp.Close(); werr != nil || serr != nil || cerr != nil {
		return fmt.Errorf("write secret file %s: %w", path, errors.Join(werr, serr, cerr))
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("replace secret file %s: %w", path, err)
	}
	return nil
}
