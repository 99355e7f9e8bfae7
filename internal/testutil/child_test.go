package testutil

import (
	"strings"
	"testing"
)

// TestStartSelf starts a helper that lives until its stdin closes: that the test's end finds
// it still running, and kills it, shows its stdin stayed open.
func TestStartSelf(t *testing.T) {
	tb := &fakeTB{}
	var stderr SyncBuffer
	cmd, line := StartSelf(tb, &stderr, childEnv+"=line")
	if f := tb.failures(); len(f) != 0 {
		t.Fatalf("StartSelf failed: %q", f)
	}
	if line != "hello from the child" {
		t.Errorf("line %q, want the first line without its spaces", line)
	}
	if cmd.ProcessState != nil {
		t.Fatal("the child was reaped before the test ended")
	}
	tb.end()
	if cmd.ProcessState == nil {
		t.Fatal("the test's end left the child unreaped")
	}
	if cmd.ProcessState.Success() {
		t.Errorf("the child exited by itself (%v) before the test's end killed it: its stdin was closed", cmd.ProcessState)
	}
	if !strings.Contains(stderr.String(), "a word on stderr") {
		t.Errorf("the child's stderr went elsewhere: got %q", stderr.String())
	}
}

// TestStartSelfReapedByTest checks that a child the test reaped itself is left alone.
func TestStartSelfReapedByTest(t *testing.T) {
	tb := &fakeTB{}
	cmd, _ := StartSelf(tb, nil, childEnv+"=line")
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait() // "signal: killed"
	state := cmd.ProcessState
	tb.end()
	if cmd.ProcessState != state {
		t.Fatal("the test's end waited for a child the test had reaped")
	}
}

func TestStartSelfSilentChild(t *testing.T) {
	tb := &fakeTB{}
	cmd, line := StartSelf(tb, nil, childEnv+"=silent")
	if f := tb.failures(); len(f) != 1 || !strings.Contains(f[0], "EOF") {
		t.Fatalf("failures %q; want one saying the child's stdout ended", f)
	}
	if line != "" {
		t.Errorf("line %q from a silent child", line)
	}
	tb.end()
	if cmd.ProcessState == nil || cmd.ProcessState.ExitCode() != 3 {
		t.Fatalf("child state %v after the test's end; want it reaped with its exit code 3", cmd.ProcessState)
	}
}
