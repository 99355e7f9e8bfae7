package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/paf-mesh/paf-mesh/node"
)

// Security I, attack 7: another peer's text with terminal escape sequences (set the window
// title, clear the screen, a bare carriage return that hides what precedes it on the line)
// reaches a person through check, listen and status. Printed for a person it is escaped;
// --json keeps it exact (JSON escapes control characters itself).
func TestTerminalEscapesInOutput(t *testing.T) {
	const evil = "harmless\r\x1b]0;pwned\x07\x1b[2J\x1b[Hrm -rf ~"
	p := newPeers(t)
	alice := p.start("alice", func(c *node.Config) { c.Description = "expert\x1b[2J\x1b]0;title\x07" })
	p.start("bob")
	waitNames(t, alice, "alice", "bob")
	if _, errOut, code := p.run("", "send", "--as", "alice", "bob", evil); code != 0 {
		t.Fatalf("send: %s", errOut)
	}
	out, _, code := p.run("", "check", "--as", "bob")
	if code != 0 || strings.ContainsAny(out, "\x1b\x07\r") {
		t.Fatalf("check printed control characters: %q", out)
	}
	if !strings.Contains(out, `harmless\x0d\x1b]0;pwned\x07\x1b[2J\x1b[Hrm -rf ~`) {
		t.Fatalf("check does not show the escaped body: %q", out)
	}

	if _, errOut, code := p.run("", "send", "--as", "alice", "bob", evil); code != 0 {
		t.Fatalf("send: %s", errOut)
	}
	out, _, code = p.run("", "check", "--as", "bob", "--json")
	var got jsonMsgs
	if code != 0 || json.Unmarshal([]byte(out), &got) != nil || len(got.Messages) != 1 || got.Messages[0].Body != evil {
		t.Fatalf("check --json must keep the body exact: %q", out)
	}

	out, _, code = p.run("", "status")
	if code != 0 || strings.ContainsAny(out, "\x1b\x07\r") {
		t.Fatalf("status printed control characters: %q", out)
	}
	if !strings.Contains(out, `expert\x1b[2J`) {
		t.Fatalf("status does not show the escaped description: %q", out)
	}
}
