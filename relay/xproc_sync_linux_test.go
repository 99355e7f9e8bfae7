package relay

import (
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// xprocFdatasync is the sync the inbox log makes on Linux (relay/store's fdatasync).
func xprocFdatasync(f *os.File) error { return unix.Fdatasync(int(f.Fd())) }

// xprocCPUTime is the CPU time this process has used so far, user and system, every thread.
func xprocCPUTime() time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
