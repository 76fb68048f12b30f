# upkeep — build, test and measure. `make help` lists the targets.
SHELL := /bin/bash
GO ?= go
BIN := bin/upkeep
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
LDFLAGS := -s -w -X main.version=$(VERSION)
FUZZTIME ?= 10s
PKGS := ./...

.PHONY: help build build-kube run test deps lint unit e2e bench fuzz fuzz-short clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-11s %s\n", $$1, $$2}'

build: ## build bin/upkeep
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/upkeep

build-kube: ## build bin/upkeep-kube: the same binary plus `upkeep kube-updater` (links client-go and cosign)
	CGO_ENABLED=0 $(GO) build -tags kube -trimpath -ldflags "$(LDFLAGS)" -o bin/upkeep-kube ./cmd/upkeep

run: build ## validate the example fleet and serve it on 127.0.0.1:8080
	$(BIN) validate examples/fleet
	$(BIN) serve --source examples/fleet --listen 127.0.0.1:8080

test: deps lint unit fuzz-short ## everything CI runs: host tools, vet, gofmt, all tests (unit and e2e), short fuzzing

deps: ## install the host tools the tests drive (Debian packages) and build kube-apiserver + etcd for envtest; idempotent, cached
	bash e2e/install-deps.sh
	bash e2e/kube/build-envtest.sh >/dev/null

lint: ## go vet (with and without the kube tag) and gofmt
	$(GO) vet $(PKGS)
	$(GO) vet -tags kube ./cmd/upkeep
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

unit: ## all Go tests, end-to-end ones included
	$(GO) test -count=1 -timeout 30m $(PKGS)

e2e: ## only the end-to-end tests (built binary, real git, package managers)
	$(GO) test -count=1 -timeout 30m ./e2e/...

bench: ## the benchmarks whose figures the README reports
	$(GO) test -run '^$$' -bench . -benchmem $(PKGS)

fuzz-short: ## every fuzz target for FUZZTIME (default 10s)
	@set -e -o pipefail; for spec in $$(grep -rl --include='*_test.go' '^func Fuzz' . | xargs grep -H -o '^func Fuzz[A-Za-z0-9_]*' | sed 's/:func /:/'); do \
		file=$${spec%%:*}; name=$${spec##*:}; \
		echo "fuzz $$name in $$(dirname $$file) for $(FUZZTIME)"; \
		log=$$(mktemp); \
		if ! $(GO) test -run '^$$' -fuzz "^$$name$$" -fuzztime $(FUZZTIME) ./$$(dirname $$file) 2>&1 | tee $$log; \
		  then \
			if grep -q 'context deadline exceeded' $$log && ! grep -q 'Failing input written' $$log; then \
				echo "$$name: Go's fuzz coordinator reported its own deadline (go.dev/issue/75804, fixed in Go 1.27) with no failing input; running it once more"; \
				$(GO) test -run '^$$' -fuzz "^$$name$$" -fuzztime $(FUZZTIME) ./$$(dirname $$file); \
			else rm -f $$log; exit 1; fi; \
		fi; \
		rm -f $$log; \
	done

fuzz: FUZZTIME = 2m
fuzz: fuzz-short ## every fuzz target for 2 minutes

clean: ## remove build output
	rm -rf bin
