//go:build !linux

package procs

import "os"

// fdatasync: elsewhere the inbox log calls os.File.Sync (F_FULLFSYNC on macOS).
func fdatasync(f *os.File) error { return f.Sync() }
