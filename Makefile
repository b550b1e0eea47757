# plugintoken — the two commands a newcomer needs are `make run` and `make test`.
GO      ?= go
# The upstream document, verbatim: openapi/upstream.yaml or openapi/upstream.json.
UPSTREAM = $(firstword $(wildcard openapi/upstream.yaml openapi/upstream.json))
# internal/specprep prepares the document to serve (README, "Regenerating").
SPECPREP = $(GO) -C internal/specprep run .
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)

# The library (server, store, gen) is the root module; the etcd backend, the
# binaries, the embedded test etcd and the linearizability checker are
# modules of their own, so that an embedder pays only for what it imports
# (README, "Modules"). The generator and oasdiff are tools of tools.mod.
MODULES := . store/etcdstore cmd internal/etcdtest internal/lincheck internal/specprep examples/gateway

.PHONY: run build test test-server fuzz lint lincheck bench scale generate check-generated vet docs-assets spec-diff update-spec

## run: build and serve on 127.0.0.1:8080 with the database in ./data (flags: make run ARGS='--addr 127.0.0.1:9090')
run: build
	./plugintoken serve $(ARGS)

## build: build the plugintoken binary
build:
	cd cmd && $(GO) build -ldflags "$(LDFLAGS)" -o ../plugintoken ./plugintoken

## test: the whole test suite, every module, with the race detector (about 3 minutes on a quiet machine, 4 with two other CPU-bound processes running; .ci/test-all)
test:
	@GO=$(GO) .ci/test-all

## test-server: the HTTP API's tests alone (the update path's tests run update-spec with UPDATE_TEST=test-server)
test-server:
	$(GO) test -count=1 ./server/...

## fuzz: fuzz each differential target of the validator's fast path for FUZZTIME (default 1m each) and keep what it finds in testdata/fuzz, to commit (FUZZ_SAVE=0: keep nothing, as CI runs it)
FUZZTIME ?= 1m
FUZZ_SAVE ?= 1
fuzz:
	@GO=$(GO) FUZZTIME=$(FUZZTIME) FUZZ_SAVE=$(FUZZ_SAVE) .ci/fuzz

## lincheck: long linearizability runs (2 minutes each, 16 clients): bbolt, in-process, two replicas on etcd, restarts
LINCHECK_DURATION ?= 2m
LINCHECK_CLIENTS ?= 16
lincheck:
	cd internal/lincheck && LINCHECK_DURATION=$(LINCHECK_DURATION) LINCHECK_CLIENTS=$(LINCHECK_CLIENTS) \
	  LINCHECK_OUT=$(CURDIR)/artifacts/lincheck $(GO) test -count=1 -timeout 60m -v -run 'TestBbolt|TestInProcess|TestEtcdTwoReplicas|TestRestart' ./...

## bench: Go benchmarks, then the real binary under load on loopback: bbolt, the floor (cmd/plugintoken-bench/floor), etcd (about 4 minutes)
bench:
	$(GO) test -run '^$$' -bench . -benchmem ./store/boltstore ./server
	cd cmd && $(GO) run ./plugintoken-bench

## scale: how costs grow with live token pairs, in stages up to 10 million on bbolt (SCALE_STAGES=10k,100k for a quick run; SCALE_BACKEND=etcd; SCALE_ARGS='-scattered -heapprofile DIR')
SCALE_STAGES ?= 10k,100k,1m,3m,10m
SCALE_BACKEND ?= bbolt
SCALE_ARGS ?=
scale:
	cd cmd && $(GO) run ./plugintoken-scale -backend $(SCALE_BACKEND) -stages $(SCALE_STAGES) -dir $(CURDIR)/artifacts/scale-$(SCALE_BACKEND) $(SCALE_ARGS)

## generate: regenerate gen/ from openapi/ (upstream document + overlay)
generate:
	$(GO) generate ./gen/...

## check-generated: fail if gen/ is not what the committed spec generates
check-generated: generate
	@git diff --exit-code --stat -- gen/ || { echo "gen/ is stale: run 'make generate' and commit the result"; exit 1; }
	@untracked=$$(git ls-files --others --exclude-standard -- gen/); \
	  if [ -n "$$untracked" ]; then echo "untracked generated files: $$untracked"; exit 1; fi

## lint: golangci-lint (.golangci.yml: staticcheck, errcheck, misspell, revive's exported rule) in every module
GOLANGCI_LINT ?= $(GO) run github.com/golangci/golangci-lint/v2/cmd/golangci-lint@v2.15.0
lint:
	@for m in $(MODULES); do (cd $$m && $(GOLANGCI_LINT) run --config $(CURDIR)/.golangci.yml ./...) || exit 1; done

## vet: go vet and a gofmt check
vet:
	@for m in $(MODULES); do (cd $$m && $(GO) vet ./...) || exit 1; done
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed: $$out"; exit 1; fi

## docs-assets: refresh the embedded Swagger UI from the npm registry
SWAGGER_UI_VERSION ?= 5.35.0
docs-assets:
	@tmp=$$(mktemp -d) && cd $$tmp && npm pack --silent swagger-ui-dist@$(SWAGGER_UI_VERSION) >/dev/null && tar xzf swagger-ui-dist-*.tgz && \
	  cp package/swagger-ui-bundle.js package/swagger-ui.css package/LICENSE package/NOTICE $(CURDIR)/server/docs/ && rm -rf $$tmp
	@echo "server/docs now holds swagger-ui-dist $(SWAGGER_UI_VERSION)"

## spec-diff NEW=path: what would change in the served document if NEW became the upstream document; fails when a change is breaking (or NEW cannot be served)
spec-diff:
	@test -n "$(NEW)" || { echo "usage: make spec-diff NEW=path/to/new-upstream.yaml"; exit 2; }
	@tmp=$$(mktemp -d); trap 'rm -rf $$tmp' EXIT; \
	  $(SPECPREP) prepare -root $(CURDIR) -in $(CURDIR)/$(UPSTREAM) -out $$tmp/current.yaml && \
	  $(SPECPREP) prepare -root $(CURDIR) -in $(abspath $(NEW)) -out $$tmp/new.yaml || exit 1; \
	  echo "== every change to the served document, breaking or not ($(UPSTREAM) -> $(NEW))"; \
	  $(GO) tool -modfile=tools.mod oasdiff changelog $$tmp/current.yaml $$tmp/new.yaml || exit 1; \
	  echo "== breaking changes"; \
	  $(GO) tool -modfile=tools.mod oasdiff breaking --fail-on ERR $$tmp/current.yaml $$tmp/new.yaml

## update-spec NEW=path [ACCEPT_BREAKING=1]: take NEW (YAML or JSON, gzipped or not) as the upstream document, regenerate, build and test; all or nothing
UPDATE_TEST ?= test
update-spec:
	@test -n "$(NEW)" || { echo "usage: make update-spec NEW=path/to/new-upstream.yaml [ACCEPT_BREAKING=1]"; exit 2; }
	@tmp=$$(mktemp -d); trap 'rm -rf $$tmp' EXIT; \
	  $(SPECPREP) prepare -root $(CURDIR) -in $(abspath $(NEW)) -out $$tmp/new.yaml || { \
	    echo "update-spec refused: the new document cannot be served as it is (above); nothing was changed."; exit 1; }
	@if ! $(MAKE) -s spec-diff NEW=$(abspath $(NEW)); then \
	  if [ "$(ACCEPT_BREAKING)" != 1 ]; then \
	    echo "update-spec refused: the new document has breaking changes (above); nothing was changed."; \
	    echo "Review them, then run again with ACCEPT_BREAKING=1 to take them."; exit 1; \
	  fi; \
	  echo "ACCEPT_BREAKING=1: taking the breaking changes."; \
	fi
	@backup=$$(mktemp -d) && cp -a openapi gen $$backup/ && \
	  if $(SPECPREP) take -root $(CURDIR) $(abspath $(NEW)) && $(MAKE) generate build $(UPDATE_TEST); then \
	    rm -rf $$backup; echo "updated: review 'git diff', then commit openapi/ and gen/ together"; \
	  else \
	    rm -rf openapi gen && cp -a $$backup/openapi $$backup/gen . && rm -rf $$backup plugintoken; \
	    echo "update-spec failed (above): openapi/ and gen/ are as they were."; exit 1; \
	  fi
