//go:build !linux

package relay

import (
	"os"
	"time"
)

// xprocFdatasync: elsewhere the inbox log calls os.File.Sync (F_FULLFSYNC on macOS).
func xprocFdatasync(f *os.File) error { return f.Sync() }

// xprocCPUTime is unknown here: the CPU metrics are left out.
func xprocCPUTime() time.Duration { return 0 }
