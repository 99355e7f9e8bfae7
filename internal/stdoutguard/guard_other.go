//go:build !linux

package stdoutguard

import (
	"io"
	"os"
)

// Guard keeps os.Stdout for the MCP channel alone: anything written
// to os.Stdout by a library goes to stderr instead.
func Guard(stdout io.Writer) (out io.Writer, restore func()) {
	f, ok := stdout.(*os.File)
	if !ok || f != os.Stdout {
		return stdout, func() {}
	}
	orig := os.Stdout
	os.Stdout = os.Stderr
	return f, func() { os.Stdout = orig }
}
