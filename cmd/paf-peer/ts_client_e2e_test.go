package main

// The Phone-a-Friend exchange driven by the official TypeScript MCP SDK
// (@modelcontextprotocol/sdk, the client inside Node-based agents), so that
// `paf-peer mcp` is tested against a second, independent client besides
// mcp-go's. The exchange itself, with its assertions, is
// test/ts-client/exchange.mjs; this test gives it the binary and the dirs.

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// tsClientDir is test/ts-client, relative to this package's directory (where
// go test runs).
const tsClientDir = "../../test/ts-client"

// tsClientTimeout bounds the whole script: two process starts, a few gossip
// rounds and a graceful leave each, under -race on a loaded machine.
const tsClientTimeout = 2 * time.Minute

// requireTS reports whether a missing node or SDK must fail the test rather
// than skip it (.ci/run sets PAF_REQUIRE_TS=1 after installing them).
func requireTS() bool { return os.Getenv("PAF_REQUIRE_TS") == "1" }

func TestE2ETypeScriptClient(t *testing.T) {
	node, err := exec.LookPath("node")
	if err == nil {
		_, err = os.Stat(filepath.Join(tsClientDir, "node_modules", "@modelcontextprotocol", "sdk", "package.json"))
	}
	if err != nil {
		msg := "node or the TypeScript MCP SDK is missing (run: npm ci --prefix test/ts-client): " + err.Error()
		if requireTS() {
			t.Fatal(msg + "; PAF_REQUIRE_TS=1 makes this a failure")
		}
		t.Skip(msg)
	}
	script, err := filepath.Abs(filepath.Join(tsClientDir, "exchange.mjs"))
	if err != nil {
		t.Fatal(err)
	}

	m := newTestMesh(t)
	env := map[string]string{
		"PAF_PEER_BIN":          pafPeer,
		"PAF_RUN_DIR":           m.runDir,
		"PAF_TS_LISTENER_STATE": m.env("listener")["PAF_STATE_DIR"],
		"PAF_TS_CALLER_STATE":   m.env("caller")["PAF_STATE_DIR"],
	}
	ctx, cancel := context.WithTimeout(context.Background(), tsClientTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, script)
	cmd.Dir = filepath.Dir(script)
	cmd.Env = cleanEnv(t, env)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	// The SDK ends its servers by closing their stdin; should node itself be
	// killed, their stdin closes all the same, and WaitDelay keeps a stray
	// pipe from holding Wait.
	cmd.WaitDelay = 10 * time.Second
	err = cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("node exchange.mjs did not finish within %s\nstdout:\n%s\nstderr:\n%s", tsClientTimeout, &stdout, &stderr)
	}
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		t.Fatalf("node exchange.mjs failed (exit %d):\nstdout:\n%s\nstderr:\n%s", exit.ExitCode(), &stdout, &stderr)
	}
	if err != nil {
		t.Fatalf("run node exchange.mjs: %v", err)
	}
	out := strings.TrimSpace(stdout.String())
	if !strings.HasPrefix(out, "ts-client ok:") || strings.Contains(out, "\n") {
		t.Fatalf("node exchange.mjs succeeded but printed %q; want its one summary line", out)
	}
	t.Log(out)
}
