package main

import (
	"context"
	"fmt"

	"github.com/paf-mesh/paf-mesh/node"
)

func runServe(ctx context.Context, args []string, io stdio, getenv func(string) string) error {
	s, desc, err := peerFlags("serve", "what this peer is for, shown to others", args, io, getenv)
	if err != nil {
		return err
	}
	log, closeLog, err := s.logger(io.err)
	if err != nil {
		return err
	}
	defer closeLog()
	cfg := s.config(log)
	cfg.Description = desc
	n, err := node.New(ctx, cfg)
	if err != nil {
		if ctx.Err() != nil {
			// Stopped (Ctrl-C, SIGTERM) while starting: what was started is
			// closed again, and stopping is what was asked for.
			log.Info("stopped before the peer had started")
			return nil
		}
		return err
	}
	// After the start, so that a peer that cannot start says so in one line.
	noticeMode(io, s)
	log.Info("serving", "peer", n.ID(), "name", n.Name(), "addr", n.Addr(), "mode", s.Mode(), "state_dir", n.StateDir())
	select {
	case <-ctx.Done():
	case e := <-n.Lost():
		// Two peers claimed the name at the same moment and the other won:
		// a named serve exists to keep that name's inbox, so it stops and
		// says so rather than running on without it.
		host := "another host"
		if m, ok := n.Member(e.PeerID); ok {
			host = m.Meta.Host
		}
		log.Info("leaving the mesh")
		n.Close()
		return fmt.Errorf("%q: peer %s on %s claimed it at the same moment and holds it now, so this peer stopped; start it again with another --name, or stop the other peer first", e.Name, e.PeerID, host)
	}
	log.Info("leaving the mesh")
	n.Close()
	return nil
}

// noticeMode is the one-line notice of SPEC section 7: in open mode the mesh
// never leaves this machine.
func noticeMode(io stdio, s *settings) {
	if s.Secure {
		fmt.Fprintln(io.err, "paf-peer: secure mode: the mesh may span the LAN; gossip is encrypted and messages authenticated with keys from the shared secret")
		if s.SecretWarning != "" {
			fmt.Fprintln(io.err, "paf-peer: warning: "+s.SecretWarning)
		}
		return
	}
	fmt.Fprintln(io.err, "paf-peer: open mode: no shared secret, so the mesh stays on this machine (loopback only); set PAF_SECRET to reach peers on the LAN")
}

// peerFlags parses the flags of a command that runs a long-lived peer (serve,
// mcp): the common flags, --name and --description, no arguments.
func peerFlags(cmd, descHelp string, args []string, io stdio, getenv func(string) string) (*settings, string, error) {
	fs := newFlagSet(cmd, "[--name NAME] [--description D] [flags]", io)
	var cf commonFlags
	cf.register(fs, true)
	desc := fs.String("description", "", descHelp+" (env PAF_DESCRIPTION)")
	cf.tune.register(fs, cmd == "mcp")
	if err := parseNoArgs(fs, args); err != nil {
		return nil, "", err
	}
	s, err := cf.resolve(getenv)
	if err != nil {
		return nil, "", err
	}
	if *desc == "" {
		*desc = getenv("PAF_DESCRIPTION")
	}
	return s, *desc, nil
}
