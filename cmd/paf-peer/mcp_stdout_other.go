//go:build !linux

package main

import (
	"io"
	"os"
)

// guardStdout keeps os.Stdout for the MCP channel alone: anything written
// to os.Stdout by a library goes to stderr instead.
func guardStdout(std stdio) (out io.Writer, restore func()) {
	f, ok := std.out.(*os.File)
	if !ok || f != os.Stdout {
		return std.out, func() {}
	}
	orig := os.Stdout
	os.Stdout = os.Stderr
	return f, func() { os.Stdout = orig }
}
