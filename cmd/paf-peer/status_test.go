package main

import (
	"strings"
	"testing"
	"time"

	"github.com/paf-mesh/paf-mesh/node"
)

// The status table lists the sessions; the brief peers of shell commands
// that have left are counted under it rather than listed, and one still
// running (a listen waiting) is listed and marked as a command.
func TestPrintStatusFoldsDepartedCommands(t *testing.T) {
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	ago := func(d time.Duration) string { return now.Add(-d).Format(time.RFC3339) }
	self := node.StatusPeer{ID: "aaaa", Name: "alice", State: "alive", Activity: "idle", Host: "vm", Addr: "127.0.0.1:1"}
	r := &node.Status{
		Self: &self, Mode: "open",
		Peers: []node.StatusPeer{
			self,
			{ID: "bbbb", Name: "bob", State: "dead", Since: ago(4 * time.Second), Activity: "idle", Host: "vm"},
			{ID: "cccc", Name: "carol", State: "left", Since: ago(2 * time.Second), Activity: "idle", Host: "vm", Addr: "127.0.0.1:3", Transient: true},
			{ID: "dddd", State: "left", Since: ago(9 * time.Second), Activity: "idle", Host: "vm", Addr: "127.0.0.1:4", Transient: true},
			{ID: "eeee", Name: "dave", State: "alive", Activity: "listening", Host: "vm", Addr: "127.0.0.1:5", Transient: true},
			{ID: "ffff", Name: "erin", State: "left", Since: ago(time.Second), Activity: "idle", Host: "vm", Addr: "127.0.0.1:6"},
		},
	}
	var b strings.Builder
	printStatus(&b, r, now)
	out := b.String()
	for _, want := range []string{
		"peers: 2 alive, 4 known",
		"alice (this)", "bob ", "dead 4s ago", "dave (cli)", "listening", "erin ", "left 1s ago",
		"(and 2 shell commands (send, check, listen) that came and went recently, not listed)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("status output lacks %q:\n%s", want, out)
		}
	}
	for _, l := range strings.Split(out, "\n") {
		// A failed peer known without its address shows "-" for it.
		if f := strings.Fields(l); len(f) > 6 && f[0] == "bob" && f[6] != "-" {
			t.Errorf("bob's address column is %q, want -:\n%s", f[6], out)
		}
	}
	for _, absent := range []string{"carol", "cccc", "dddd"} {
		if strings.Contains(out, absent) {
			t.Errorf("status output lists %q, a command that left:\n%s", absent, out)
		}
	}

	r.Peers = r.Peers[:3] // one command gone
	b.Reset()
	printStatus(&b, r, now)
	if out := b.String(); !strings.Contains(out, "(and 1 shell command (send, check, listen) that came") {
		t.Errorf("one departed command:\n%s", out)
	}
	r.Peers = r.Peers[:2] // none
	b.Reset()
	printStatus(&b, r, now)
	if out := b.String(); strings.Contains(out, "shell command") {
		t.Errorf("no departed command, yet:\n%s", out)
	}
}
