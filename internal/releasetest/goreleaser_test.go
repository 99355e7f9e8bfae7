package releasetest

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"go.yaml.in/yaml/v3"
)

// Paths from this package's directory (go test runs in it).
const (
	configFile = "../../.goreleaser.yaml"
	makefile   = "../../Makefile"
	schemaGlob = "testdata/goreleaser-*.schema.json"
)

// pinnedVersion is the GoReleaser version the Makefile pins (GORELEASER_VERSION),
// the one whose schema testdata must hold.
func pinnedVersion(t *testing.T) string {
	t.Helper()
	mk, err := os.ReadFile(makefile)
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^GORELEASER_VERSION\s*\?=\s*(v\S+)\s*$`).FindSubmatch(mk)
	if m == nil {
		t.Fatalf("%s: no `GORELEASER_VERSION ?= vX.Y.Z` line: the Makefile must pin the GoReleaser whose schema testdata holds", makefile)
	}
	return string(m[1])
}

// compileSchema compiles testdata's GoReleaser JSON schema, which must be the
// pinned version's and the only one there.
func compileSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	version := pinnedVersion(t)
	want := filepath.Join("testdata", "goreleaser-"+version+".schema.json")
	found, err := filepath.Glob(schemaGlob)
	if err != nil {
		t.Fatal(err)
	}
	if len(found) != 1 || found[0] != want {
		t.Fatalf("testdata holds %v, want exactly %s: the Makefile pins GoReleaser %s; run `make release-check` "+
			"(it writes that version's schema with `goreleaser jsonschema` and removes the others) and commit the result",
			found, want, version)
	}
	f, err := os.Open(want)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	doc, err := jsonschema.UnmarshalJSON(f)
	if err != nil {
		t.Fatalf("%s: %v", want, err)
	}
	c := jsonschema.NewCompiler()
	const url = "file:///goreleaser.schema.json" // any name: the schema refers to itself only by "#/$defs/..."
	if err := c.AddResource(url, doc); err != nil {
		t.Fatalf("%s: %v", want, err)
	}
	sch, err := c.Compile(url)
	if err != nil {
		t.Fatalf("%s does not compile as a JSON schema: %v", want, err)
	}
	return sch
}

// readConfig returns .goreleaser.yaml as the JSON values the schema validates
// (GoReleaser reads the file with go.yaml.in/yaml/v3 too).
func readConfig(t *testing.T) any {
	t.Helper()
	data, err := os.ReadFile(configFile)
	if err != nil {
		t.Fatal(err)
	}
	var v any
	if err := yaml.Unmarshal(data, &v); err != nil {
		t.Fatalf("%s is not valid YAML: %v", configFile, err)
	}
	return toJSON(t, v)
}

func toJSON(t *testing.T, v any) any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("%s: cannot be read as JSON (a mapping key that is not a string?): %v", configFile, err)
	}
	out, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestGoReleaserConfigSchema validates .goreleaser.yaml against the pinned
// GoReleaser's JSON schema. This is schema validation, not `goreleaser check`
// (see the package doc): it finds unknown keys, misspelt keys and values of
// the wrong type, not what GoReleaser's own defaulting would refuse.
func TestGoReleaserConfigSchema(t *testing.T) {
	sch := compileSchema(t)
	if err := sch.Validate(readConfig(t)); err != nil {
		t.Fatalf("%s does not match GoReleaser %s's JSON schema:\n%v\n"+
			"Fix the file (GoReleaser's customization docs name every key), then run `make release-check` for the full `goreleaser check`.",
			configFile, pinnedVersion(t), err)
	}
}

// TestGoReleaserSchemaRejects shows that the schema in testdata does refuse
// broken configurations (a schema that accepted anything would pass the test
// above too): each case breaks a copy of the real file in one way, and each
// of these is refused by `goreleaser check` v2.17.0 too. What the schema
// lets through and `goreleaser check` refuses, e.g. `goarch: [amd65]` (the
// schema has no list of targets), is left to `make release-check`.
func TestGoReleaserSchemaRejects(t *testing.T) {
	sch := compileSchema(t)
	tests := map[string]struct {
		breakIt func(t *testing.T, cfg map[string]any)
		at      string // where the schema must say the fault is (a JSON pointer)
	}{
		"unknown top-level key": {func(t *testing.T, cfg map[string]any) { cfg["relase"] = map[string]any{} }, ""},
		"misspelt build key": {func(t *testing.T, cfg map[string]any) {
			firstOf(t, cfg, "builds")["goarchs"] = []any{"amd64"}
		}, "/builds/0"},
		"goarch not a list": {func(t *testing.T, cfg map[string]any) {
			firstOf(t, cfg, "builds")["goarch"] = json.Number("64")
		}, "/builds/0/goarch"},
		"env not a list": {func(t *testing.T, cfg map[string]any) {
			firstOf(t, cfg, "builds")["env"] = map[string]any{"CGO_ENABLED": "0"}
		}, "/builds/0/env"},
		"misspelt archive key": {func(t *testing.T, cfg map[string]any) {
			a := firstOf(t, cfg, "archives")
			a["file"] = a["files"]
			delete(a, "files")
		}, "/archives/0"},
		"version a string": {func(t *testing.T, cfg map[string]any) { cfg["version"] = "two" }, "/version"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			cfg, ok := readConfig(t).(map[string]any)
			if !ok {
				t.Fatalf("%s: the top level is not a mapping", configFile)
			}
			tc.breakIt(t, cfg)
			err := sch.Validate(cfg)
			if err == nil {
				t.Fatalf("the schema accepted a configuration with %s", name)
			}
			if want := "at '" + tc.at + "'"; !strings.Contains(err.Error(), want) {
				t.Fatalf("the schema refused it, but not %s:\n%v", want, err)
			}
		})
	}
}

// firstOf returns the first entry of the list cfg[key] (builds, archives).
func firstOf(t *testing.T, cfg map[string]any, key string) map[string]any {
	t.Helper()
	list, ok := cfg[key].([]any)
	if !ok || len(list) == 0 {
		t.Fatalf("%s: %s is not a non-empty list", configFile, key)
	}
	first, ok := list[0].(map[string]any)
	if !ok {
		t.Fatalf("%s: %s[0] is not a mapping", configFile, key)
	}
	return first
}

// release is the part of .goreleaser.yaml the project relies on (lists only:
// GoReleaser also takes a single string for some of these, this file does not).
type release struct {
	Version int `yaml:"version"`
	Builds  []struct {
		ID      string   `yaml:"id"`
		Main    string   `yaml:"main"`
		Binary  string   `yaml:"binary"`
		Env     []string `yaml:"env"`
		Goos    []string `yaml:"goos"`
		Goarch  []string `yaml:"goarch"`
		Ignore  []any    `yaml:"ignore"`
		Flags   []string `yaml:"flags"`
		Ldflags []string `yaml:"ldflags"`
	} `yaml:"builds"`
	Archives []struct {
		Files []string `yaml:"files"`
	} `yaml:"archives"`
}

// TestReleaseTargets checks what the project asks of its release: one build of
// ./cmd/paf-peer for Linux and macOS on amd64 and arm64, without cgo (so the
// macOS builds cross-compile on Linux), carrying the version the Go toolchain
// stamps (internal/buildinfo reads it; an -X ldflag would override it).
func TestReleaseTargets(t *testing.T) {
	data, err := os.ReadFile(configFile)
	if err != nil {
		t.Fatal(err)
	}
	var r release
	if err := yaml.Unmarshal(data, &r); err != nil {
		t.Fatalf("%s: %v", configFile, err)
	}
	if r.Version != 2 {
		t.Errorf("version: %d, want 2 (GoReleaser v2 reads only version 2 files)", r.Version)
	}
	if len(r.Builds) != 1 {
		t.Fatalf("%d builds, want 1 (paf-peer)", len(r.Builds))
	}
	b := r.Builds[0]
	if b.Main != "./cmd/paf-peer" || b.Binary != "paf-peer" {
		t.Errorf("build main %q binary %q, want ./cmd/paf-peer and paf-peer", b.Main, b.Binary)
	}
	if _, err := os.Stat(filepath.Join("../..", b.Main)); err != nil {
		t.Errorf("build main: %v", err)
	}
	var targets []string
	for _, goos := range b.Goos {
		for _, goarch := range b.Goarch {
			targets = append(targets, goos+"/"+goarch)
		}
	}
	slices.Sort(targets)
	if want := []string{"darwin/amd64", "darwin/arm64", "linux/amd64", "linux/arm64"}; !slices.Equal(targets, want) || len(b.Ignore) > 0 {
		t.Errorf("targets %v (ignore %v), want %v", targets, b.Ignore, want)
	}
	if !slices.Contains(b.Env, "CGO_ENABLED=0") {
		t.Errorf("env %v lacks CGO_ENABLED=0: the macOS targets are cross-compiled, which needs no cgo", b.Env)
	}
	if !slices.Contains(b.Flags, "-buildvcs=true") {
		t.Errorf("flags %v lack -buildvcs=true: without it a GOFLAGS=-buildvcs=false environment builds a release with no commit in `paf-peer version`", b.Flags)
	}
	for _, l := range b.Ldflags {
		if strings.Contains(l, "-X") {
			t.Errorf("ldflags %q sets a variable: the version comes from build info (internal/buildinfo), and GoReleaser's -X main.version default must stay overridden", l)
		}
	}
	if len(b.Ldflags) == 0 {
		t.Errorf("no ldflags: GoReleaser's default adds -X main.version=..., set ldflags explicitly")
	}
	for _, a := range r.Archives {
		for _, f := range a.Files {
			if _, err := os.Stat(filepath.Join("../..", f)); err != nil {
				t.Errorf("archive file %s: %v", f, err)
			}
		}
	}
}
