package testutil

import (
	"log/slog"
	"slices"
	"strings"
	"testing"
)

func TestLogWriter(t *testing.T) {
	tb := &fakeTB{}
	w := LogWriter(tb)
	for _, s := range []string{"one line\n", "no newline", "two newlines\n\n"} {
		if n, err := w.Write([]byte(s)); n != len(s) || err != nil {
			t.Fatalf("Write(%q) = %d, %v; want %d, nil", s, n, err, len(s))
		}
	}
	if got, want := tb.logged(), []string{"one line", "no newline", "two newlines"}; !slices.Equal(got, want) {
		t.Fatalf("logged %q, want %q", got, want)
	}
}

func TestLoggers(t *testing.T) {
	tests := map[string]struct {
		logger          func(testing.TB, slog.Leveler) *slog.Logger
		logsAfterTheEnd bool
	}{
		"Logger":      {logger: Logger, logsAfterTheEnd: true},
		"QuietLogger": {logger: QuietLogger, logsAfterTheEnd: false},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			tb := &fakeTB{}
			log := tc.logger(tb, slog.LevelInfo)
			log.Debug("below the level")
			log.Info("hello", "k", "v")
			got := tb.logged()
			if len(got) != 1 || !strings.Contains(got[0], "level=INFO msg=hello k=v") || strings.HasSuffix(got[0], "\n") {
				t.Fatalf("logged %q; want one INFO record without its newline", got)
			}
			tb.end()
			log.Warn("after the end")
			if after := len(tb.logged()) - 1; (after == 1) != tc.logsAfterTheEnd {
				t.Fatalf("%d records logged after the test's cleanup; want them logged: %v", after, tc.logsAfterTheEnd)
			}
		})
	}
}
