//go:build !linux

package store

import "os"

// fdatasync makes f durable. Elsewhere than Linux there is no fdatasync to
// call portably; os.File.Sync is fsync (F_FULLFSYNC on macOS, which a plain
// fsync there does not give: data can sit in the drive's cache).
func fdatasync(f *os.File) error { return f.Sync() }

// datasyncer is fdatasync where there is no Linux AIO.
type datasyncer struct{}

func newDatasyncer() *datasyncer              { return &datasyncer{} }
func (*datasyncer) async() bool               { return false }
func (*datasyncer) datasync(f *os.File) error { return fdatasync(f) }
func (*datasyncer) close()                    {}
