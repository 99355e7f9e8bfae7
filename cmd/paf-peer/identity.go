package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/paf-mesh/paf-mesh/node"
)

func runIdentity(ctx context.Context, args []string, io stdio, getenv func(string) string) error {
	fs := newFlagSet("identity", "[--json] [flags]", io)
	var cf commonFlags
	cf.register(fs, false)
	jsonOut := fs.Bool("json", false, "print one JSON object (the shape is stable)")
	if err := parseNoArgs(fs, args); err != nil {
		return err
	}
	s, err := cf.resolve(getenv)
	if err != nil {
		return err
	}
	info, err := node.Identity(ctx, s.config(nil))
	if err != nil {
		return err
	}
	if *jsonOut {
		enc := json.NewEncoder(io.out)
		enc.SetIndent("", "  ")
		return enc.Encode(info)
	}
	names := strings.Join(info.Names, ", ")
	if names == "" {
		names = "none"
	}
	fmt.Fprintf(io.out, "identity: %s\nkey file: %s\nnames held now: %s\n", info.Fingerprint, info.File, names)
	if info.Note != "" {
		fmt.Fprintf(io.out, "(%s)\n", info.Note)
	}
	return nil
}
