# Fieldhub developer tasks. `make test` is what CI runs (via .ci/run).
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c

GO ?= go
GO_PACKAGES = $$($(GO) list ./...)
GO_DIRS = $$($(GO) list -f '{{.Dir}}' ./...)

.PHONY: all generate build run test check-generated vet fmt-check lint bench e2e node_modules

all: build

# node_modules is installed from the lockfile only when missing.
node_modules:
	@if [ ! -d node_modules ]; then npm ci --no-audit --no-fund; fi

## generate: rebuild static/ from web/ (esbuild) and views/*_templ.go from *.templ
generate: node_modules
	npm run --silent build
	$(GO) tool templ generate -log-level warn

## build: the fieldhub binary
build:
	$(GO) build -o fieldhub ./cmd/fieldhub

## run: build and start a demo hub on ./data (prints the URL and the admin password)
run: build
	./fieldhub serve --demo --data ./data

## check-generated: fail if the committed generated files are not what the sources produce
check-generated: generate
	@changed="$$(git status --porcelain -- static views '*_templ.go')"; \
	if [ -n "$$changed" ]; then \
		echo "Generated files are out of date or uncommitted:"; echo "$$changed"; \
		echo "Run 'make generate' and commit static/ and the *_templ.go files."; \
		git --no-pager diff --stat -- static views '*_templ.go'; \
		exit 1; \
	fi

vet:
	$(GO) vet ./...

fmt-check:
	@unformatted="$$(gofmt -l $(GO_DIRS))"; \
	if [ -n "$$unformatted" ]; then echo "Not gofmt-ed (run gofmt -w):"; echo "$$unformatted"; exit 1; fi

## lint: go vet and gofmt
lint: vet fmt-check

## test: everything CI checks: generated files, vet, gofmt, Go tests with -race, browser tests
test: check-generated lint
	$(GO) test -race ./...
	$(MAKE) e2e

## e2e: browser tests against the real binary in headless Chromium
e2e: node_modules
	npm run --silent test:e2e

## bench: the performance figures of the issues, each beside a same-run baseline (about 4 min; bench/run.sh)
bench:
	GO=$(GO) bench/run.sh
