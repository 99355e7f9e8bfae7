# The map of the project's habits. `make test` is what CI runs.
GO      ?= go
PKGS    ?= ./...
FUZZTIME ?= 200000x

# staticcheck, pinned: `make lint` fetches it through the module proxy on first use.
STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2

.PHONY: all build test test-norace race fuzz bench lint clean release-check release-snapshot install-check

# GoReleaser, pinned, run through the module proxy like staticcheck (no install step). Its JSON
# schema for this version is in internal/releasetest/testdata, which `make test` validates
# .goreleaser.yaml against: bump the version here, then run `make release-check`.
GORELEASER_VERSION ?= v2.17.0
GORELEASER ?= github.com/goreleaser/goreleaser/v2@$(GORELEASER_VERSION)
GORELEASER_SCHEMA = internal/releasetest/testdata/goreleaser-$(GORELEASER_VERSION).schema.json
# How to run it; GORELEASER_RUN=/path/to/goreleaser uses a binary you have (of that version).
GORELEASER_RUN ?= $(GO) run $(GORELEASER)

all: lint test

build:
	$(GO) build -o bin/paf-peer ./cmd/paf-peer

# The test command README.md gives and .ci/run runs.
test:
	$(GO) test -race -count=1 -p 1 -timeout 15m $(PKGS)

race: test

# The tests that -race changes: allocation counts (sync.Pool drops items at random under
# the race detector), and the 1,000-message in-order loop at full speed (it runs under -race
# too, several times slower). CI runs them once more without -race. The run fails if any of
# them did not run (a rename would otherwise drop it silently).
NORACE_TESTS ?= TestCodecDoesNotAllocate TestThousandInOrder
NORACE_PKGS ?= ./relay/wire ./node
test-norace:
	@set -e; re="^($$(echo $(NORACE_TESTS) | tr ' ' '|'))$$"; \
	$(GO) test -count=1 -p 1 -timeout 15m -run "$$re" -v $(NORACE_PKGS) > .norace.out 2>&1 || { cat .norace.out; rm -f .norace.out; exit 1; }; \
	grep -E '^(--- |ok )' .norace.out; \
	for t in $(NORACE_TESTS); do grep -q "^--- PASS: $$t " .norace.out || { echo "test-norace: $$t did not run"; rm -f .norace.out; exit 1; }; done; \
	rm -f .norace.out

# Run every fuzz target for FUZZTIME each (go test allows one target per run).
# FUZZTIME is a count of executions ("50000x"), not a duration: with a duration,
# go1.26's fuzz coordinator can fail a run with a bare "context deadline
# exceeded" when the deadline fires while a worker is busy (golang/go#75804,
# fixed in go1.27), which made CI red under load with no failing input. A count
# has no deadline to race; a loaded machine only runs it more slowly.
# The targets are found by reading the test files (`go test -list` compiled every
# package's tests once more, a minute of CI); bench/ is its own module, fuzzed
# with `make -C bench -f ../Makefile fuzz`.
fuzz:
	@set -e; for dir in $$(grep -rl --include='*_test.go' --exclude-dir=bench --exclude-dir=node_modules '^func Fuzz' . | xargs -n1 dirname | sort -u); do \
	  for t in $$(grep -h -o '^func Fuzz[A-Za-z0-9_]*' $$dir/*_test.go | sed 's/^func //' | sort -u); do \
	    echo "== $$dir $$t"; \
	    $(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) $$dir > .fuzz.out 2>&1 || { cat .fuzz.out; rm -f .fuzz.out; exit 1; }; \
	    tail -2 .fuzz.out; \
	  done; \
	done; rm -f .fuzz.out

# The benchmark runner (bench/README.md): every SPEC section 10 row with its baseline (raw
# TCP, stock memberlist, embedded NATS) measured in the same run; writes bench/results.json,
# bench/results.md and bench/charts/. bench-quick: < 1 min, writes *-quick outputs.
# BENCHFLAGS passes flags, e.g. BENCHFLAGS='--only relay -v' or '--compare old.json'.
bench:
	cd bench && $(GO) run ./cmd/pafbench $(BENCHFLAGS)

.PHONY: bench-quick
bench-quick:
	cd bench && $(GO) run ./cmd/pafbench --quick $(BENCHFLAGS)

lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt: files above need formatting"; exit 1; }
	$(GO) vet $(PKGS)
	GOOS=darwin $(GO) vet $(PKGS)   # macOS must keep building (no /proc, no fdatasync there)
	$(GO) run $(STATICCHECK) $(PKGS)
	cd bench && $(GO) vet ./... && $(GO) run $(STATICCHECK) ./...   # the benchmark module too

# The real `goreleaser check` of .goreleaser.yaml (Linux and macOS, amd64 and arm64 builds),
# without building a release; then the pinned GoReleaser's JSON schema, written again into
# internal/releasetest/testdata (commit it if it changed). Not in CI: GoReleaser is built from
# source, and cold on this 2-core machine that took 17.5 minutes (2 to download 1.9 GB of
# modules, 15.5 to compile); CI runs the schema validation in `make test` instead
# (internal/releasetest).
release-check:
	@$(GORELEASER_RUN) --version | grep -Eq '^GitVersion:[[:space:]]+$(GORELEASER_VERSION)$$' || \
	  { echo "release-check: '$(GORELEASER_RUN)' is not GoReleaser $(GORELEASER_VERSION), the version this Makefile pins"; exit 1; }
	$(GORELEASER_RUN) check
	rm -f internal/releasetest/testdata/goreleaser-*.schema.json
	$(GORELEASER_RUN) jsonschema --output $(GORELEASER_SCHEMA)
	@git status --short -- internal/releasetest/testdata

# The release archives for the four targets in dist/, from the current commit, nothing
# published (run it in a git clone, not a git worktree, for the commit to be recorded).
release-snapshot:
	$(GORELEASER_RUN) release --snapshot --clean --skip=publish

# `go install github.com/paf-mesh/paf-mesh/cmd/paf-peer@latest` (the README's install line)
# from a clean GOPATH and module cache, dependencies through the module proxy, the module
# itself from this checkout's HEAD; then `paf-peer version`. See .ci/install-check.
install-check:
	bash .ci/install-check

clean:
	rm -rf bin
