package procs

import (
	"os"
	"syscall"
)

// fdatasync is what the inbox log calls on Linux.
func fdatasync(f *os.File) error { return syscall.Fdatasync(int(f.Fd())) }
