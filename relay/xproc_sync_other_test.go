//go:build !linux

package relay

import "os"

// xprocFdatasync: elsewhere the inbox log calls os.File.Sync (F_FULLFSYNC on macOS).
func xprocFdatasync(f *os.File) error { return f.Sync() }
