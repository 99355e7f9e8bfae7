package relay

import (
	"os"

	"golang.org/x/sys/unix"
)

// xprocFdatasync is the sync the inbox log makes on Linux (relay/store's fdatasync).
func xprocFdatasync(f *os.File) error { return unix.Fdatasync(int(f.Fd())) }
