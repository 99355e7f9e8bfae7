package testutil

import (
	"bufio"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

// Main is the TestMain of a package whose tests start helper processes with [StartSelf]. When
// childEnv is set in the environment, this binary is such a helper: it exits with what child
// returns for childEnv's value and runs no tests. Otherwise it runs the tests and checks that
// none leaked a goroutine (goleak.VerifyTestMain, with opts). The helper itself is not checked
// for leaks: it ends with child's exit code, or is killed.
func Main(m *testing.M, childEnv string, child func(value string) int, opts ...goleak.Option) {
	if v := os.Getenv(childEnv); v != "" {
		os.Exit(child(v))
	}
	goleak.VerifyTestMain(m, opts...)
}

// StartSelf runs this test binary again as a helper process, with env (NAME=value pairs) added
// to this process's environment, and returns once the child has written its first line to
// stdout; the line comes back without its surrounding white space. The child's TestMain is
// expected to see env and act as the helper the test needs instead of running tests (see
// [Main]; -test.run=^$ keeps one that misses it from running any). Its stderr goes to stderr.
//
// The child's stdin stays open: such helpers live until they are killed or their stdin closes.
// The test may kill it and reap it with cmd.Wait; when the test ends, a child not yet reaped
// is killed (by its PID) and reaped. A child that fails to start or ends its stdout before a
// whole line fails tb.
func StartSelf(tb testing.TB, stderr io.Writer, env ...string) (cmd *exec.Cmd, line string) {
	tb.Helper()
	cmd = exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = stderr
	// Held by cmd until Wait closes it: the child sees its stdin open until then.
	if _, err := cmd.StdinPipe(); err != nil {
		tb.Fatal(err)
		return nil, "" // for a testing.TB whose Fatal returns; a test's does not
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
		return nil, ""
	}
	if err := cmd.Start(); err != nil {
		tb.Fatalf("start %s: %v", cmd.Path, err)
		return nil, ""
	}
	tb.Cleanup(func() {
		if cmd.ProcessState == nil { // not reaped by the test
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	raw, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		tb.Fatalf("child said %q, %v", raw, err)
	}
	return cmd, strings.TrimSpace(raw)
}

// MemberlistProbes are the goleak options for memberlist's probe goroutines: its Shutdown
// does not wait for a probe in flight, which ends by itself within one probe interval. Not a
// leak of ours.
func MemberlistProbes() []goleak.Option {
	return []goleak.Option{
		goleak.IgnoreTopFunction("github.com/hashicorp/memberlist.(*Memberlist).probeNode"),
		goleak.IgnoreTopFunction("github.com/hashicorp/memberlist.(*Memberlist).probeNodeByAddr"),
	}
}
