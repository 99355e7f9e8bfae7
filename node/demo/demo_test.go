package demo

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/paf-mesh/paf-mesh/internal/testutil"
	"github.com/paf-mesh/paf-mesh/node"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, testutil.MemberlistProbes()...)
}

// Play plays every scene in process and closes every peer it started. (Was
// TestE2EDemo, which ran the binary; cmd tests the command's temporary
// directory in process.)
func TestPlay(t *testing.T) {
	root, err := os.MkdirTemp("", "pafd") // short: control socket paths
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(root)
	cfg := node.Config{
		StateDir: filepath.Join(root, "state"), RunDir: filepath.Join(root, "run"), Version: "test",
		Logger: testutil.QuietLogger(t, slog.LevelWarn),
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out strings.Builder
	if err := Play(ctx, &out, cfg); err != nil {
		t.Fatalf("play: %v\ntranscript:\n%s", err, out.String())
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
		if !strings.Contains(out.String(), want) {
			t.Errorf("the transcript lacks %q", want)
		}
	}
	if t.Failed() {
		t.Logf("transcript:\n%s", out.String())
	}
	if ents := testutil.DirNames(t, cfg.RunDir); len(ents) > 1 { // the open-mode keys file stays
		t.Errorf("peers left entries in the run dir: %v", ents)
	}
}
