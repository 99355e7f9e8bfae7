//go:build !linux

package rawio

import (
	"os"
	"syscall"
)

const supported = false

func nonblocking(*os.File) bool { return false }

func read(syscall.RawConn, []byte) (int, error)  { panic("rawio: not supported") }
func write(syscall.RawConn, []byte) (int, error) { panic("rawio: not supported") }

// ReadAt is f.ReadAt.
func ReadAt(f *os.File, p []byte, off int64) (int, error) { return f.ReadAt(p, off) }

// WriteAt is f.WriteAt.
func WriteAt(f *os.File, p []byte, off int64) (int, error) { return f.WriteAt(p, off) }
