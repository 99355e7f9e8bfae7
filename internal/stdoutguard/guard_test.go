package stdoutguard

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
)

const childEnv = "PAF_STDOUTGUARD_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		out, restore := Guard(os.Stdout)
		fmt.Println("stray via os.Stdout")
		_, _ = syscall.Write(1, []byte("stray via fd 1\n"))
		fmt.Fprint(out, "the channel\n")
		restore()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// Whatever writes to stdout while guarded, through os.Stdout or straight to
// file descriptor 1, lands on stderr; only the guarded writer reaches stdout.
func TestStrayWritesGoToStderr(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"=1")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("child: %v\n%s", err, stderr.String())
	}
	if stdout.String() != "the channel\n" {
		t.Fatalf("stdout = %q, want only the channel's own write", stdout.String())
	}
	for _, want := range []string{"stray via os.Stdout", "stray via fd 1"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("stderr = %q, want it to hold %q", stderr.String(), want)
		}
	}
}

// A writer that is not the process's stdout is returned as it is.
func TestOtherWriterUntouched(t *testing.T) {
	var b bytes.Buffer
	out, restore := Guard(&b)
	defer restore()
	if out != &b || os.Stdout == os.Stderr {
		t.Fatal("Guard changed something for a writer that is not stdout")
	}
}
