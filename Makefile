# Starling: build, run and test.
#
#   make run      install what is missing (ffmpeg), build bin/starling, run `starling serve`
#   make test     lint, race tests (sfu, signaling, chat), all other tests (e2e included), a short fuzz pass
#
# `make help` lists every target.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := build
MAKEFLAGS += --no-print-directory

# Go is assumed present; the official tarball installs into /usr/local/go,
# which is often not on PATH. A go already on PATH comes first.
export PATH := $(PATH):/usr/local/go/bin
GO ?= go
GO_MIN := $(shell awk '$$1 == "go" { print $$2; exit }' go.mod)

# The version stamped into the binary. -c safe.directory lets it work in a
# checkout owned by another user (CI, containers) without touching git config.
VERSION ?= $(shell git -c safe.directory='*' describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)

# Arguments for `starling serve` in `make run`, e.g. ARGS="--include-loopback".
ARGS ?=

# Tools are installed, pinned, under bin/tools (ignored by git).
TOOLS := $(CURDIR)/bin/tools
STATICCHECK_VERSION := v0.8.2
STATICCHECK := $(TOOLS)/staticcheck-$(STATICCHECK_VERSION)

# Test tuning. The race run covers the packages with the concurrent packet
# path and the chat server and stores; everything else runs without -race, one package at a time (-p 1)
# because the fan-out and browser tests measure delivery on a small machine
# and should not compete with each other for its cores.
RACE_PKGS := ./sfu/... ./signaling/... ./chat/...
TEST_P ?= 1
TESTFLAGS ?=
FUZZTIME ?= 10s
BENCHFLAGS ?=

.PHONY: help build run deps check-go test test-race test-rest lint fuzz bench clean

help: ## list the targets
	@awk 'BEGIN { FS = ":.*## " } /^[a-z-]+:.*## / { printf "  make %-10s %s\n", $$1, $$2 }' $(MAKEFILE_LIST)
	@echo '  variables: ARGS (serve flags for run), FUZZTIME (default $(FUZZTIME)), TESTFLAGS, BENCHFLAGS, VERSION'

check-go:
	@command -v $(GO) >/dev/null 2>&1 || { \
	  echo "make: Go is not installed (looked on PATH and in /usr/local/go/bin)." >&2; \
	  echo "      Starling needs Go $(GO_MIN) or newer (a Go >= 1.21 downloads the right toolchain itself)." >&2; \
	  echo "      Install it from https://go.dev/dl/, e.g. as root:" >&2; \
	  echo "        curl -fsSL https://go.dev/dl/go$(GO_MIN).linux-$$(dpkg --print-architecture 2>/dev/null || echo amd64).tar.gz | tar -C /usr/local -xz" >&2; \
	  exit 1; }

deps: check-go ## install what `make run` needs and is missing (ffmpeg, via apt-get)
	@if command -v ffmpeg >/dev/null 2>&1; then exit 0; fi; \
	if ! command -v apt-get >/dev/null 2>&1; then \
	  echo "make: ffmpeg is missing and there is no apt-get; install ffmpeg yourself (Starling runs WebRTC-only without it)." >&2; \
	  exit 0; \
	fi; \
	sudo=; \
	if [ "$$(id -u)" -ne 0 ]; then \
	  if ! command -v sudo >/dev/null 2>&1; then \
	    echo "make: ffmpeg is missing; run 'apt-get install ffmpeg' as root (no sudo here)." >&2; exit 1; \
	  fi; \
	  sudo=sudo; \
	fi; \
	echo "make: installing ffmpeg with apt-get"; \
	$$sudo apt-get update -q; \
	$$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends ffmpeg

build: check-go ## build bin/starling
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/starling ./cmd/starling

run: deps build ## build and run `starling serve` with embedded defaults (data in ./data)
	./bin/starling serve $(ARGS)

# test runs every step even when one fails, so one run shows every problem.
# The full test run comes last and nothing is printed after it: the output
# ends with go test's summary lines. Earlier failures are named before it.
test: check-go ## lint, short fuzz pass, race tests, all other tests
	@failed=; \
	step() { echo; echo "==== make $$* ($$(date +%T))"; $(MAKE) "$$@" || failed="$$failed $$1"; }; \
	step lint; \
	step fuzz FUZZTIME=1000x; \
	step test-race; \
	if [ -n "$$failed" ]; then echo; echo "make test: FAILED so far:$$failed (the remaining tests run anyway)"; fi; \
	step test-rest; \
	[ -z "$$failed" ]

test-race: check-go ## go test -race for sfu, signaling and chat
	@echo "== go test -race $(RACE_PKGS)"
	$(GO) test -race -count=1 $(TESTFLAGS) $(RACE_PKGS)

test-rest: check-go ## go test for every package not in the race run (e2e needs chromium)
	@echo "== go test (all other packages, -p $(TEST_P))"
	@race=$$($(GO) list $(RACE_PKGS)); \
	pkgs=$$($(GO) list ./... | grep -vxF "$$race"); \
	echo $(GO) test -count=1 -p $(TEST_P) $(TESTFLAGS) $$pkgs | sed 's|github.com/starling-sfu/starling|.|g'; \
	$(GO) test -count=1 -p $(TEST_P) $(TESTFLAGS) $$pkgs

lint: check-go $(STATICCHECK) ## gofmt check, go vet, staticcheck
	@failed=; \
	echo "== gofmt -l"; \
	files=$$(find . -name '*.go' -not -path './.git/*' -not -path './bin/*' -not -path '*/node_modules/*' -not -path '*/testdata/*'); \
	unformatted=$$("$$($(GO) env GOROOT)/bin/gofmt" -l $$files) || failed="$$failed gofmt"; \
	if [ -n "$$unformatted" ]; then echo "not gofmt'ed (run gofmt -w):"; echo "$$unformatted" | sed 's/^/  /'; failed="$$failed gofmt"; fi; \
	echo "== go vet ./..."; \
	$(GO) vet ./... || failed="$$failed vet"; \
	echo "== staticcheck ./... ($(STATICCHECK_VERSION))"; \
	$(STATICCHECK) ./... || failed="$$failed staticcheck"; \
	if [ -n "$$failed" ]; then echo "make lint: FAILED:$$failed" >&2; exit 1; fi; \
	echo "lint ok"

$(STATICCHECK):
	@echo "== installing staticcheck $(STATICCHECK_VERSION) into bin/tools"
	@mkdir -p $(TOOLS)
	GOBIN=$(TOOLS) GOFLAGS= $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
	@mv $(TOOLS)/staticcheck $@

# fuzz finds the Fuzz targets of every package (go test -list) and fuzzes each
# for FUZZTIME. make test gives it an input count (1000x) rather than a
# duration: with a duration, Go 1.26 can fail a clean run at its deadline
# (golang/go#75804). A failing input is saved under the package's testdata/fuzz/,
# where it becomes a regression test of the ordinary go test run.
fuzz: check-go ## run every Fuzz* target for FUZZTIME (default 10s) each
	@failed=; n=0; \
	while read -r pkg dir; do \
	  grep -qs '^func Fuzz' "$$dir"/*_test.go || continue; \
	  if ! list=$$($(GO) test -list '^Fuzz' "$$pkg" </dev/null); then failed="$$failed $$pkg(build)"; continue; fi; \
	  for target in $$(echo "$$list" | grep '^Fuzz' || true); do \
	    n=$$((n+1)); \
	    echo "== fuzz $$pkg $$target for $(FUZZTIME)"; \
	    $(GO) test -run '^$$' -fuzz "^$$target\$$" -fuzztime $(FUZZTIME) "$$pkg" </dev/null || failed="$$failed $$pkg:$$target"; \
	  done; \
	done < <($(GO) list -f '{{.ImportPath}} {{.Dir}}' ./...); \
	if [ -n "$$failed" ]; then echo "make fuzz: FAILED:$$failed" >&2; exit 1; fi; \
	echo "fuzz ok: $$n targets"

bench: check-go ## SFU benchmarks (go test -bench . -benchmem ./sfu/...)
	$(GO) test -run '^$$' -bench . -benchmem $(BENCHFLAGS) ./sfu/...

clean: ## remove bin/ (tools included); ./data is kept
	rm -rf bin
