// Package releasetest holds the checks of the release configuration
// (.goreleaser.yaml at the repository root) that run in `make test`, so in CI.
//
// They are schema validation, not `goreleaser check`: GoReleaser is one
// binary whose build from source takes tens of minutes on CI's machine, and
// no package registry CI reaches ships it prebuilt (its npm package downloads
// the binary from GitHub at install time). So the file is validated against
// GoReleaser's own JSON schema, written by the pinned GoReleaser's
// `goreleaser jsonschema` into testdata/ (the file name carries the version;
// `make release-check` runs the real `goreleaser check` and writes the schema
// again), and the properties the project relies on (the four targets, no cgo,
// the version from build info) are checked directly. What the schema cannot
// see, GoReleaser's own defaulting and semantic checks, only
// `make release-check` covers.
package releasetest
