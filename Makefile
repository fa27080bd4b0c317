# mesh: build, test, lint, docs, bench. `make help` lists the targets.
SHELL := /bin/bash
GO ?= go
PKG := mesh.dev/mesh
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo 0.0.0-dev)
COMMIT ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
DATE ?= $(shell date -u +%Y-%m-%dT%H:%M:%SZ)
LDFLAGS := -X $(PKG)/internal/version.Version=$(VERSION) \
           -X $(PKG)/internal/version.GitCommit=$(COMMIT) \
           -X $(PKG)/internal/version.BuildDate=$(DATE)
BINARIES := mesh mesh-pilot mesh-proxy
# mesh-sample plays the Bookinfo services in the sandbox runtime (not shipped).
SANDBOX_BINARIES := mesh-sample
TEST_TIMEOUT ?= 40m

.PHONY: help build test test-unit lint docs bench tools sandbox-up sandbox-down demo demo-down clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

build: ## build mesh, mesh-pilot, mesh-proxy (and the sandbox's mesh-sample) into bin/
	@mkdir -p bin
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/ $(addprefix ./cmd/,$(BINARIES) $(SANDBOX_BINARIES))

tools: ## build the sandbox cluster's binaries into tools/bin (a no-op when up to date)
	$(MAKE) -C tools

test: build tools ## run every test, the sandbox ones included
	$(GO) test -timeout $(TEST_TIMEOUT) ./...

test-unit: ## run the tests that need no sandbox binaries
	MESH_SANDBOX=skip $(GO) test -timeout $(TEST_TIMEOUT) ./...

lint: ## gofmt and go vet
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	cd tools && $(GO) vet ./...

docs: ## regenerate docs/reference from the command tree
	$(GO) run ./internal/refdocs/gen -out docs/reference

bench: build tools ## run the benchmarks and rewrite docs/benchmarks.md
	$(GO) run ./bench

sandbox-up: tools ## start a local sandbox cluster and print how to use it
	$(GO) run ./internal/sandbox/cmd/sandbox up

sandbox-down: ## stop the local sandbox cluster
	$(GO) run ./internal/sandbox/cmd/sandbox down


demo: build tools ## the README's first command: sandbox cluster + runtime, install the mesh, Bookinfo with sidecars, traffic rules, mTLS, proxy views (needs root)
	$(GO) build -o bin/ ./internal/sandbox/cmd/mesh-demo ./internal/sandbox/runtime/cmd/sandbox-runtime
	./bin/mesh-demo up

demo-down: ## stop the demo's sandbox runtime and cluster
	@if [ -x bin/mesh-demo ]; then ./bin/mesh-demo down; else $(GO) run ./internal/sandbox/cmd/mesh-demo down; fi

clean: ## remove build output
	rm -rf bin dist
