package buildinfo

import (
	"runtime/debug"
	"strings"
	"testing"
)

func TestVersionAndLong(t *testing.T) {
	tests := map[string]struct {
		bi            *debug.BuildInfo
		ok            bool
		version, long string
	}{
		"no build info": {nil, false, Dev, Dev},
		"go install @version": {&debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v0.3.1"}}, true,
			"0.3.1", "0.3.1 (go1.26.8)"},
		"checkout with vcs": {&debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"},
			Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "0123456789abcdef0123"}, {Key: "vcs.modified", Value: "true"}}}, true,
			Dev, Dev + " (commit 0123456789ab with local changes, go1.26.8)"},
		"checkout, clean": {&debug.BuildInfo{Main: debug.Module{Version: "(devel)"},
			Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "abc"}, {Key: "vcs.modified", Value: "false"}}}, true,
			Dev, Dev + " (commit abc)"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := version(tc.bi, tc.ok); got != tc.version {
				t.Errorf("version = %q, want %q", got, tc.version)
			}
			if got := long(tc.bi, tc.ok); got != tc.long {
				t.Errorf("long = %q, want %q", got, tc.long)
			}
		})
	}
	// This test binary: whatever it records, Long starts with Version.
	if !strings.HasPrefix(Long(), Version()) {
		t.Fatalf("Long() = %q does not start with Version() = %q", Long(), Version())
	}
}
