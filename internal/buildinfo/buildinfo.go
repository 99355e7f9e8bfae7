// Package buildinfo says which build of paf-peer is running, from what the Go
// toolchain records in the binary: the module version for `go install
// <module>/cmd/paf-peer@vX.Y.Z`, and the commit (and whether the tree had
// uncommitted changes) for a build from a checkout.
package buildinfo

import (
	"runtime/debug"
	"strings"
)

// Dev is the version of a build that records none: `go run`, a build with
// -buildvcs=false, or a build in a git worktree (the go command finds no
// repository there, golang/go#58218). A `go build` in a git clone records a
// pseudo-version and the commit.
const Dev = "0.1.0-dev"

// Version is the module version if the build has one, else Dev.
func Version() string { return version(debug.ReadBuildInfo()) }

// Long is Version with the commit and the Go version, for `paf-peer version`.
func Long() string { return long(debug.ReadBuildInfo()) }

func version(bi *debug.BuildInfo, ok bool) string {
	if ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return strings.TrimPrefix(bi.Main.Version, "v")
	}
	return Dev
}

func long(bi *debug.BuildInfo, ok bool) string {
	s := version(bi, ok)
	if !ok {
		return s
	}
	var rev, modified string
	for _, kv := range bi.Settings {
		switch kv.Key {
		case "vcs.revision":
			rev = kv.Value
		case "vcs.modified":
			modified = kv.Value
		}
	}
	var extra []string
	if rev != "" {
		c := "commit " + rev[:min(len(rev), 12)]
		if modified == "true" {
			c += " with local changes"
		}
		extra = append(extra, c)
	}
	if bi.GoVersion != "" {
		extra = append(extra, bi.GoVersion)
	}
	if len(extra) > 0 {
		s += " (" + strings.Join(extra, ", ") + ")"
	}
	return s
}
