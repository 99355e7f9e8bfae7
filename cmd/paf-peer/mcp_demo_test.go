package main

import (
	"os"
	"strings"
	"testing"
)

// TestE2EDemo: `paf-peer demo` needs no setup, plays every scene, exits 0
// and leaves nothing behind in the temporary directory it was given.
func TestE2EDemo(t *testing.T) {
	tmp := t.TempDir()
	out, errOut, code := runCLI(t, map[string]string{"TMPDIR": tmp}, "demo")
	if code != 0 {
		t.Fatalf("demo: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	for _, want := range []string{
		"Registered as expert",
		"dana is not online: the message is stored",
		"alice opened conversation c-",
		"Guidelines: stay on the intent",
		"── from expert · conversation c-",
		"new intent: Where should the idempotency key be stored?",
		"alice ended conversation c-",
		"Welcome, Dana! Start with the billing runbook.",
		"Renamed from alice to alicia",
		"sent to alice, forwarded to alicia",
		"Broadcast delivered to 2 sessions: alicia, dana.",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the transcript lacks %q", want)
		}
	}
	if t.Failed() {
		t.Logf("transcript:\n%s", out)
	}
	if strings.TrimSpace(errOut) != "" {
		t.Errorf("demo wrote to stderr:\n%s", errOut)
	}
	left, err := os.ReadDir(tmp)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range left {
		t.Errorf("demo left %s behind in TMPDIR", e.Name())
	}
}
