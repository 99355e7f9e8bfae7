package main

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
)

func (m *testMesh) hook(stdin string, args ...string) (string, string, int) {
	m.t.Helper()
	cmd := exec.Command(pafPeer, append([]string{"hook"}, args...)...)
	cmd.Env = cleanEnv(m.t, m.env("cli"))
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		m.t.Fatal(err)
	}
	return out.String(), errb.String(), code
}

func TestE2EHook(t *testing.T) {
	m := newTestMesh(t)
	m.serve("a", "--name", "alice")
	m.serve("b", "--name", "bob")
	m.waitNames("alice", "bob")

	// Nothing unread: silent, exit 0, for every event.
	for _, ev := range []string{"UserPromptSubmit", "SessionStart", "Stop"} {
		out, errOut, code := m.hook(`{"hook_event_name":"`+ev+`"}`, "--as", "bob")
		if code != 0 || out != "" || errOut != "" {
			t.Fatalf("%s with nothing unread: %d %q %q", ev, code, out, errOut)
		}
	}
	m.sendJSON("alice", "bob", "please review PR 42")

	out, _, code := m.hook(`{"session_id":"s1","hook_event_name":"UserPromptSubmit","prompt":"hi"}`, "--as", "bob")
	var got struct {
		HookSpecificOutput struct {
			HookEventName     string `json:"hookEventName"`
			AdditionalContext string `json:"additionalContext"`
		} `json:"hookSpecificOutput"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &got) != nil {
		t.Fatalf("UserPromptSubmit: exit %d, output %q", code, out)
	}
	ctx := got.HookSpecificOutput.AdditionalContext
	if got.HookSpecificOutput.HookEventName != "UserPromptSubmit" || !strings.Contains(ctx, "1 unread") ||
		!strings.Contains(ctx, "alice") || !strings.Contains(ctx, "PR 42") || !strings.Contains(ctx, "paf_check") {
		t.Fatalf("additionalContext %q", ctx)
	}

	// Stop: exit 2 with the note on stderr, which wakes the session.
	out, errOut, code := m.hook(`{"session_id":"s1","hook_event_name":"Stop"}`, "--as", "bob")
	if code != 2 || out != "" || !strings.Contains(errOut, "unread") {
		t.Fatalf("Stop: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	// Once per new message: the model left it unread, so the next Stop lets the session
	// rest, and so does a Stop while Claude already goes on because of a Stop hook.
	if out, errOut, code := m.hook(`{"session_id":"s1","hook_event_name":"Stop"}`, "--as", "bob"); code != 0 || out != "" || errOut != "" {
		t.Fatalf("second Stop for the same message: exit %d, %q %q; want no wake", code, out, errOut)
	}
	m.sendJSON("alice", "bob", "and PR 44")
	if _, _, code := m.hook(`{"session_id":"s1","hook_event_name":"Stop","stop_hook_active":true}`, "--as", "bob"); code != 0 {
		t.Fatalf("Stop with stop_hook_active: exit %d; want no wake", code)
	}
	if _, errOut, code := m.hook(`{"session_id":"s1","hook_event_name":"Stop"}`, "--as", "bob"); code != 2 || !strings.Contains(errOut, "PR 44") {
		t.Fatalf("Stop after a new message: exit %d, %q; want a wake", code, errOut)
	}

	// The hook does not read the messages for the agent.
	if got := m.checkJSON("bob"); len(got.Messages) != 2 {
		t.Fatalf("after the hooks bob has %d unread, want 2", len(got.Messages))
	}

	// Other events, and names with no peer: nothing to say.
	if out, _, code := m.hook(`{"hook_event_name":"PreToolUse"}`, "--as", "bob"); code != 0 || out != "" {
		t.Fatalf("PreToolUse: %d %q", code, out)
	}
	if out, _, code := m.hook(`{"hook_event_name":"Stop"}`, "--as", "nobody"); code != 0 || out != "" {
		t.Fatalf("no peer: %d %q", code, out)
	}
	// Bad input: one clear line, exit 1.
	if _, errOut, code := m.hook(`not json`, "--as", "bob"); code != 1 || !strings.Contains(errOut, "not JSON") || strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
		t.Fatalf("bad input: %d %q", code, errOut)
	}
}

// Without --as or PAF_NAME the hook finds its session's peer: the one started by the same
// client. Claude Code runs hooks through `/bin/sh -c` (dash on Debian and Ubuntu, which
// does not exec the command), so the hook's parent is a shell and the client is its
// grandparent. Here this test process is the client: it starts the peer, and runs the hook
// through sh, as `sh -c 'paf-peer hook; true'` (a shell that stays, whatever sh is).
func TestE2EHookThroughAShell(t *testing.T) {
	m := newTestMesh(t)
	m.serve("b", "--name", "bob") // our only peer, as a client has one mcp peer
	m.waitNames("bob")
	m.sendJSON("alice", "bob", "please review PR 43") // from a brief peer, gone after
	cmd := exec.Command("/bin/sh", "-c", pafPeer+" hook; true")
	cmd.Env = cleanEnv(t, m.env("cli"))
	cmd.Stdin = strings.NewReader(`{"session_id":"s1","hook_event_name":"UserPromptSubmit","prompt":"hi"}`)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("hook through sh: %v", err)
	}
	if !strings.Contains(string(out), "PR 43") || !strings.Contains(string(out), "bob") {
		t.Fatalf("the hook run through a shell did not find its session's peer (bob): %q", out)
	}
}
