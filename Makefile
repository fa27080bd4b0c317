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
# The Gateway API conformance suite's echo server, from its module (the
# version in go.mod), which the sandbox runtime runs for the suite's
# echo-basic images (not shipped).
ECHO_BASIC := sigs.k8s.io/gateway-api/conformance/echo-basic
TEST_TIMEOUT ?= 40m

.PHONY: help prereqs build test test-unit lint docs bench conformance-report tools sandbox-up sandbox-down demo demo-down clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

build: ## build mesh, mesh-pilot, mesh-proxy (and the sandbox's mesh-sample and echo-basic) into bin/
	@mkdir -p bin
	@echo "build: $(BINARIES) $(SANDBOX_BINARIES) echo-basic into bin/ (the first build downloads the modules and compiles for about 2 minutes; later ones take seconds)"
	@start=$$(date +%s); $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/ $(addprefix ./cmd/,$(BINARIES) $(SANDBOX_BINARIES)) && \
	$(GO) build -trimpath -o bin/echo-basic $(ECHO_BASIC) && \
	echo "build: done in $$(( $$(date +%s) - start ))s"

tools: ## build the sandbox cluster's binaries into tools/bin (a no-op when up to date)
	@$(MAKE) --no-print-directory -C tools

prereqs: ## check (and as root install) what the demo and the tests need: packages, root, disk, kernel features
	@tools/prereqs.sh demo

test: ## run every test, the sandbox ones included
	@tools/prereqs.sh test
	@$(MAKE) --no-print-directory build tools
	$(GO) test -timeout $(TEST_TIMEOUT) ./...

test-unit: ## run the tests that need no sandbox binaries
	MESH_SANDBOX=skip $(GO) test -timeout $(TEST_TIMEOUT) ./...

lint: ## gofmt and go vet
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	cd tools && $(GO) vet ./...

docs: ## regenerate docs/reference from the command tree
	$(GO) run ./internal/refdocs/gen -out docs/reference

bench: ## run the benchmarks and rewrite docs/benchmarks.md
	@tools/prereqs.sh bench
	@$(MAKE) --no-print-directory build tools
	$(GO) run ./bench

conformance-report: ## run the Gateway API conformance suite on the sandbox (needs root) and rewrite docs/conformance/report.yaml
	@tools/prereqs.sh test
	@$(MAKE) --no-print-directory build tools
	MESH_CONFORMANCE_REPORT=1 $(GO) test -count=1 -timeout 30m -run TestGatewayAPIConformance ./e2e/gatewayconformance/

sandbox-up: tools ## start a local sandbox cluster and print how to use it
	$(GO) run ./internal/sandbox/cmd/sandbox up

sandbox-down: ## stop the local sandbox cluster
	$(GO) run ./internal/sandbox/cmd/sandbox down


# One `make demo` at a time per checkout (.sandbox/demo.lock, held by flock
# itself, -o, so the detached sandbox does not keep it): a second one
# says so instead of rebuilding bin/ under the first. With the demo already
# up, `make demo` shows how to use it rather than starting another.
demo: ## the README's first command: sandbox cluster + runtime, install the mesh, Bookinfo with sidecars, traffic rules, mTLS, proxy views (needs root)
	@tools/prereqs.sh demo
	@mkdir -p .sandbox
	@flock -n -o -E 75 .sandbox/demo.lock $(MAKE) --no-print-directory demo-locked; rc=$$?; \
	if [ $$rc = 75 ]; then echo "make demo: another make demo is running in this checkout: wait for it to finish (its sandbox stays up to explore), or stop it with make demo-down"; exit 1; fi; exit $$rc

.PHONY: demo-locked
demo-locked:
	@if [ -x bin/mesh-demo ] && ./bin/mesh-demo running; then exec ./bin/mesh-demo up; fi; \
	$(MAKE) --no-print-directory build tools && \
	$(GO) build -o bin/ ./internal/sandbox/cmd/mesh-demo ./internal/sandbox/runtime/cmd/sandbox-runtime && \
	./bin/mesh-demo up

demo-down: ## stop the demo's sandbox runtime and cluster
	@if [ -x bin/mesh-demo ]; then ./bin/mesh-demo down; else $(GO) run ./internal/sandbox/cmd/mesh-demo down; fi

clean: ## remove build output
	rm -rf bin dist
