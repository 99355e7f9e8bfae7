// Package logfile opens the file a peer appends its logs to besides stderr
// (--log-file): an MCP client shows a server's stderr poorly or not at all,
// so a file is where a user looks. The file and its directory are created
// private to the user, and a record reaches each writer even when the other
// fails.
package logfile

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// Open opens path for appending, creating it with mode 0600 and its
// directory with mode 0700. The error names the file and says how to choose
// another.
func Open(path string) (*os.File, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("log file %s: %w; give a writable path with --log-file or PAF_LOG_FILE", path, err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("log file %s: %w; give a writable path with --log-file or PAF_LOG_FILE", path, err)
	}
	return f, nil
}

// Tee writes each record to both a and b; a failure of one (a closed stderr,
// a full disk) does not keep the record from the other. It fails only when
// both do.
func Tee(a, b io.Writer) io.Writer { return tee{a, b} }

type tee struct{ a, b io.Writer }

func (t tee) Write(p []byte) (int, error) {
	_, errA := t.a.Write(p)
	_, errB := t.b.Write(p)
	if errA != nil && errB != nil {
		return 0, errA
	}
	return len(p), nil
}
