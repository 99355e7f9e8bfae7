package mesh

import (
	"bytes"
	"context"
	"log"
	"log/slog"
	"strings"
)

// logWriter turns memberlist's text log lines ("[WARN] memberlist: ...")
// into slog records at the matching level, and lets the peer observe the few
// lines that carry information memberlist exposes nowhere else.
type logWriter struct {
	logger  *slog.Logger
	observe func(level slog.Level, msg string)
}

func newMemberlistLogger(l *slog.Logger, observe func(slog.Level, string)) *log.Logger {
	return log.New(&logWriter{logger: l, observe: observe}, "", 0)
}

var logLevels = []struct {
	prefix string
	level  slog.Level
}{
	{"[DEBUG]", slog.LevelDebug}, {"[INFO]", slog.LevelInfo}, {"[WARN]", slog.LevelWarn},
	{"[ERR]", slog.LevelError}, {"[ERROR]", slog.LevelError},
}

func (w *logWriter) Write(p []byte) (int, error) {
	line := string(bytes.TrimSpace(p))
	level := slog.LevelInfo
	for _, lv := range logLevels {
		if strings.HasPrefix(line, lv.prefix) {
			level = lv.level
			line = strings.TrimSpace(line[len(lv.prefix):])
			break
		}
	}
	line = strings.TrimPrefix(line, "memberlist: ")
	if strings.Contains(line, "use of closed network connection") {
		// memberlist's goroutines racing its own Shutdown: expected noise.
		level = slog.LevelDebug
	}
	if w.observe != nil {
		w.observe(level, line)
	}
	w.logger.Log(context.Background(), level, line, "component", "memberlist")
	return len(p), nil
}
