package testutil

import (
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
)

// LogWriter returns a writer that passes each write to tb.Log, less its trailing newlines, so
// that what a logger or a child process writes shows up with the test it belongs to, and only
// when that test fails or runs with -v. Each write is expected to be whole lines (one slog
// record is one write).
func LogWriter(tb testing.TB) io.Writer { return &logWriter{tb: tb} }

// Logger returns a text slog.Logger at level that writes each record to tb.Log (see
// [LogWriter]). Like tb.Log itself, it must not be used once the test has finished; see
// [QuietLogger] for code whose goroutines may outlive the test.
func Logger(tb testing.TB, level slog.Leveler) *slog.Logger {
	return slog.New(slog.NewTextHandler(LogWriter(tb), &slog.HandlerOptions{Level: level}))
}

// QuietLogger is [Logger], but it drops every record once tb's cleanup has run. testing panics
// on a Log after the test has finished, and some libraries (memberlist) let a goroutine log
// shortly after their Shutdown returned; a leaked goroutine is still caught by goleak.
func QuietLogger(tb testing.TB, level slog.Leveler) *slog.Logger {
	w := &logWriter{tb: tb}
	tb.Cleanup(w.close)
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}

// logWriter is LogWriter's writer; closed, it drops writes. The mutex orders a write against
// close, so that no write reaches tb.Log after close returned.
type logWriter struct {
	mu     sync.Mutex
	tb     testing.TB
	closed bool
}

func (w *logWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.closed {
		w.tb.Helper()
		w.tb.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

func (w *logWriter) close() {
	w.mu.Lock()
	w.closed = true
	w.mu.Unlock()
}
