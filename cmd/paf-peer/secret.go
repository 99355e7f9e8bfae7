package main

import (
	"context"
	"fmt"

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
		if path, err = keys.DefaultSecretFile(getenv); err != nil {
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
	if err := keys.WriteSecretFile(path, secret+"\n", *force); err != nil {
		return err
	}
	fmt.Fprintf(std.err, "paf-peer: wrote a new 256-bit secret to %s (mode 0600); give every peer of the mesh the same one, with --secret-file %s or PAF_SECRET\n", path, path)
	return nil
}
