# Fieldhub developer tasks. `make test` is what CI runs (via .ci/run).
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c

GO ?= go
GO_PACKAGES = $$($(GO) list ./...)
GO_DIRS = $$($(GO) list -f '{{.Dir}}' ./...)

.PHONY: all generate build install container run cluster test check-generated vet fmt-check lint bench e2e node_modules nats-server postgres chromium systemd-analyze

# What `fieldhub version` prints. A clean clone of a tagged commit reads
# e.g. v1.2.0; otherwise the tag plus commits since and -dirty for local
# changes. SOURCE_DATE_EPOCH, when set, fixes the build time (reproducible builds).
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
BUILD_TIME ?= $(shell date -u -d "@$(or $(SOURCE_DATE_EPOCH),$$(date +%s))" +%Y-%m-%dT%H:%M:%SZ)
LDFLAGS = -X main.version=$(VERSION) -X main.commit=$(COMMIT) -X main.buildTime=$(BUILD_TIME)

# Where `make build` writes the binary and `make install` puts things.
BIN ?= fieldhub
PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
UNITDIR ?= /etc/systemd/system
CONFDIR ?= /etc/fieldhub
DESTDIR ?=

all: build

# node_modules is installed from the lockfile when missing or older than it
# (a pull that pinned a new package; npm ci writes node_modules/.package-lock.json).
node_modules:
	@if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then npm ci --no-audit --no-fund; fi

## generate: rebuild static/ from web/ (esbuild) and views/*_templ.go from *.templ
generate: node_modules
	npm run --silent build
	$(GO) tool templ generate -log-level warn

## build: the fieldhub binary, stamped with the version, commit and build time
# Says so before a build that has work to do (no binary yet, or sources newer
# than it), and warns when that includes compiling SQLite with cgo: minutes
# on a first build, with no output meanwhile. Quiet when nothing changed.
build:
	@if [ ! -e $(BIN) ] || [ -n "$$(find . \( -path ./node_modules -o -path ./e2e/artifacts -o -path ./data -o -path ./.git \) -prune \
		-o \( -name '*.go' -o -name '*.sql' -o -name go.mod -o -name go.sum -o -path './static/*' \) -newer $(BIN) -print -quit)" ]; then \
		if [ "$$($(GO) list -f '{{.Stale}}' github.com/mattn/go-sqlite3 2>/dev/null)" = true ]; then \
			echo "Building $(BIN) (the first build compiles SQLite and takes a few minutes)…"; \
		else \
			echo "Building $(BIN)…"; \
		fi; \
	fi
	@$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/fieldhub

## install: the binary into $(DESTDIR)$(BINDIR), the systemd unit into $(DESTDIR)$(UNITDIR),
## an example environment file into $(DESTDIR)$(CONFDIR) (kept if present)
install: build
	install -D -m 0755 $(BIN) $(DESTDIR)$(BINDIR)/fieldhub
	sed 's|/usr/local/bin/fieldhub|$(BINDIR)/fieldhub|g' deploy/fieldhub.service > $(BIN).service
	install -D -m 0644 $(BIN).service $(DESTDIR)$(UNITDIR)/fieldhub.service
	rm -f $(BIN).service
	@if [ ! -e $(DESTDIR)$(CONFDIR)/fieldhub.env ]; then \
		install -D -m 0640 deploy/fieldhub.env $(DESTDIR)$(CONFDIR)/fieldhub.env; \
	else echo "kept $(DESTDIR)$(CONFDIR)/fieldhub.env"; fi
	@echo
	@echo "Installed $(DESTDIR)$(BINDIR)/fieldhub ($(VERSION)) and $(DESTDIR)$(UNITDIR)/fieldhub.service. Next:"
	@echo "  1. set the host devices dial and the ports in $(CONFDIR)/fieldhub.env"
	@echo "  2. sudo $(BINDIR)/fieldhub doctor --data /var/lib/fieldhub   # with the same settings: set -a; . $(CONFDIR)/fieldhub.env"
	@echo "  3. sudo systemctl daemon-reload && sudo systemctl enable --now fieldhub"
	@echo "  4. journalctl -u fieldhub   # the first admin password is logged on the first start"

## container: build the container image from deploy/Containerfile with podman or docker (not run in CI)
container:
	$${CONTAINER_ENGINE:-$$(command -v podman || command -v docker)} build -f deploy/Containerfile \
		--build-arg VERSION=$(VERSION) --build-arg COMMIT=$(COMMIT) --build-arg BUILD_TIME=$(BUILD_TIME) \
		-t fieldhub:$(VERSION) .

## run: build and start a demo hub on ./data (prints the URL and the admin password)
run: build
	./fieldhub serve --demo --data ./data

## cluster: build and start a throwaway 3-instance cluster on loopback (PostgreSQL, NATS, demo devices;
## prints the URLs and the login; Ctrl-C stops it all): scripts/cluster.sh
cluster: build postgres nats-server
	FIELDHUB_BIN=./$(BIN) scripts/cluster.sh

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

## postgres: PostgreSQL 15, which the PostgreSQL store's tests start throwaway servers of
## (installed with apt-get when run as root; otherwise the command to run is printed)
postgres:
	@if [ ! -x /usr/lib/postgresql/15/bin/initdb ]; then \
		if [ "$$(id -u)" = 0 ]; then \
			apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql-15; \
		else \
			echo "PostgreSQL 15 is not installed; the store suites need it. Install it with:"; \
			echo "  sudo apt-get install -y --no-install-recommends postgresql-15"; \
			exit 1; \
		fi; \
	fi

## test: everything CI checks: generated files, vet, gofmt, Go tests with -race (the PostgreSQL and NATS
## suites fail rather than skip: FIELDHUB_REQUIRE_PG=1, FIELDHUB_REQUIRE_NATS=1; cmd/fieldhub's end-to-end
## tests outlast go test's default 10 minutes on a busy 2-core machine), browser tests
test: check-generated lint postgres nats-server chromium systemd-analyze
	FIELDHUB_REQUIRE_PG=1 FIELDHUB_REQUIRE_NATS=1 $(GO) test -race -timeout 30m ./...
	cd third_party/mochi-mqtt-server && $(GO) test -race ./...
	$(MAKE) e2e

# nats-server: the bus tests (package bus) run a real one; installed with
# apt-get when root, else the command to run is printed.
nats-server:
	@if ! command -v nats-server >/dev/null; then \
		if [ "$$(id -u)" = 0 ]; then apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends nats-server; \
		else echo "nats-server is missing; install it with: sudo apt-get install -y nats-server"; exit 1; fi; \
	fi

# chromium: the browser tests drive Debian's /usr/bin/chromium (CHROMIUM names
# another); installed with apt-get when root, else the command is printed.
chromium:
	@if [ -z "$${CHROMIUM:-}" ] && [ ! -x /usr/bin/chromium ]; then \
		if [ "$$(id -u)" = 0 ]; then \
			apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium; \
		else \
			echo "Chromium is missing; the browser tests need it. Install it with:"; \
			echo "  sudo apt-get install -y --no-install-recommends chromium"; \
			exit 1; \
		fi; \
	fi

# systemd-analyze: cmd/fieldhub TestMakeInstall checks deploy/fieldhub.service with it.
systemd-analyze:
	@if ! command -v systemd-analyze >/dev/null; then \
		if [ "$$(id -u)" = 0 ]; then \
			apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends systemd; \
		else \
			echo "systemd-analyze is missing; TestMakeInstall needs it. Install it with:"; \
			echo "  sudo apt-get install -y --no-install-recommends systemd"; \
			exit 1; \
		fi; \
	fi

## e2e: browser tests against the real binary in headless Chromium
e2e: node_modules chromium
	npm run --silent test:e2e

## bench: the performance figures of the issues, each beside a same-run baseline (about 4 min; bench/run.sh)
bench:
	GO=$(GO) bench/run.sh
