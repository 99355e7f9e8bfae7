//go:build linux

package stdoutguard

import (
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// Guard keeps the process's stdout for the MCP channel alone. It moves
// the MCP channel to a duplicate of file descriptor 1 and points descriptor
// 1 (and os.Stdout) at stderr, so that a stray write to stdout by any
// library, even one that writes to fd 1 directly, lands in the log instead
// of corrupting the JSON-RPC stream. restore undoes it.
func Guard(stdout io.Writer) (out io.Writer, restore func()) {
	f, ok := stdout.(*os.File)
	if !ok || f.Fd() != 1 {
		return stdout, func() {}
	}
	saved, err := unix.Dup(1)
	if err != nil {
		return stdout, func() {}
	}
	unix.CloseOnExec(saved)
	if err := unix.Dup3(2, 1, 0); err != nil {
		unix.Close(saved)
		return stdout, func() {}
	}
	orig := os.Stdout
	os.Stdout = os.Stderr
	mcpOut := os.NewFile(uintptr(saved), "mcp-stdout")
	return mcpOut, func() {
		_ = unix.Dup3(saved, 1, 0)
		os.Stdout = orig
		mcpOut.Close()
	}
}
