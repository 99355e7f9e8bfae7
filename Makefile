# The map of the project's habits. `make test` is what CI runs.
GO      ?= go
PKGS    ?= ./...
FUZZTIME ?= 10s

.PHONY: all build test race fuzz bench lint clean

all: lint test

build:
	$(GO) build -o bin/paf-peer ./cmd/paf-peer

# The test command README.md gives and .ci/run runs.
test:
	$(GO) test -race -count=1 -p 1 -timeout 15m $(PKGS)

race: test

# Run every fuzz target for FUZZTIME each (go test allows one target per run).
fuzz:
	@set -e; for pkg in $$($(GO) list ./...); do \
	  for t in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
	    echo "== $$pkg $$t"; \
	    $(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) $$pkg; \
	  done; \
	done

bench:
	$(GO) test -run '^$$' -bench . -benchtime 3x -timeout 20m $(PKGS)

lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt: files above need formatting"; exit 1; }
	$(GO) vet $(PKGS)

clean:
	rm -rf bin
