# batchreset — run `make help` for the targets.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
GO      ?= go
BIN     := bin/batchreset
# make install puts the binary in $(DESTDIR)$(PREFIX)/bin: /usr/local/bin, on
# cron's and systemd's PATH, and the absolute path contrib/ names.
PREFIX  ?= /usr/local
.PHONY: help build install demo demo/health demo/hooks test test/race test/short soak bench fuzz lint check tidy db/test db/reset

help: ## Show this help
	@grep -hE '^[a-zA-Z/_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

build: ## Build bin/batchreset
	$(GO) build -ldflags "-X main.version=$(VERSION)" -o $(BIN) ./cmd/batchreset

install: build ## Install bin/batchreset as $(DESTDIR)$(PREFIX)/bin/batchreset (default /usr/local/bin), version stamped
	install -d $(DESTDIR)$(PREFIX)/bin
	install -m 0755 $(BIN) $(DESTDIR)$(PREFIX)/bin/batchreset
	@echo "installed $(DESTDIR)$(PREFIX)/bin/batchreset: $$($(DESTDIR)$(PREFIX)/bin/batchreset --version | head -n 1)"

demo: ## Reset jobs.example.csv against the built-in emulator
	$(GO) run ./cmd/batchreset run --jobs jobs.example.csv --emulate --yes --out demo-results.csv --force

demo/health: build ## Reset jobs.example.csv in waves with --health agent; one emulated agent never returns (exit 1: one unhealthy)
	$(BIN) run --jobs jobs.example.csv --emulate --yes --out demo-health-results.csv --force \
		--health agent --health-timeout 30s --waves 25% --emulate-agent-lost 1 --emulate-failure-rate 0 --emulate-reset-max 3s; \
	  code=$$?; test $$code -eq 1 && echo "demo/health: exit 1, as intended: the instance whose agent never came back is unhealthy" || { echo "demo/health: exit $$code, want 1"; exit 1; }

demo/hooks: build ## Reset jobs.example.csv, each instance drained before and put back after by examples/hooks/drain.sh; the emulator fails one tat: drain (exit 1: one skipped)
	rm -f demo-hooks-results.csv* demo-hooks-tat-results.csv* # each run starts a new emulator: never resume an old one's resets
	$(BIN) run --jobs jobs.example.csv --emulate --yes --out demo-hooks-results.csv --force --log-level debug \
		--before-reset exec:examples/hooks/drain.sh --after-reset exec:examples/hooks/drain.sh \
		--emulate-failure-rate 0 --emulate-reset-max 3s
	$(BIN) run --jobs jobs.example.csv --emulate --yes --out demo-hooks-tat-results.csv --force \
		--before-reset tat:examples/hooks/drain-on-instance.sh --emulate-drain-fail 1 --emulate-failure-rate 0 --emulate-reset-max 3s; \
	  code=$$?; test $$code -eq 1 && echo "demo/hooks: exit 1, as intended: the instance whose drain failed was not reset (skipped, BeforeHookFailed)" || { echo "demo/hooks: exit $$code, want 1"; exit 1; }

test: ## go vet, every test with the race detector, then the fault matrix twice more (-count=3 in all), against PostgreSQL
	$(GO) vet ./...
	./.ci/withdb.sh sh -c '$(GO) test -race -count=1 -parallel 8 -timeout 25m ./... && $(GO) test -race -count=2 -parallel 8 -timeout 25m -run "^TestFault" ./runner/'


test/race: test ## Same as test

test/short: ## Unit tests only (no PostgreSQL, no subprocesses)
	$(GO) test -short -count=1 ./...

soak: ## 500 random histories of runs, operator actions and faults over one emulated fleet (hours; BATCHRESET_HISTORY_SEED=N replays one)
	./.ci/withdb.sh sh -c 'BATCHRESET_HISTORIES=$${BATCHRESET_HISTORIES:-500} $(GO) test -race -count=1 -timeout 12h -run "^TestHistories$$" -v ./cmd/batchreset/'

bench: ## Benchmarks (emulator throughput, CSV, Postgres store, runner)
	$(GO) test -run '^$$' -bench . -benchtime 1x -timeout 30m ./...

fuzz: ## Fuzz the CSV reader for 60s
	$(GO) test -run '^$$' -fuzz FuzzReader -fuzztime 60s ./store/csv/

lint: ## gofmt, go vet and staticcheck
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (gofmt -l $$(git ls-files '*.go'); echo "gofmt: files above need formatting"; exit 1)
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...

check: lint test ## lint and test, as CI runs them

tidy: ## go mod tidy
	$(GO) mod tidy

db/test: ## Check that a PostgreSQL server answers at TEST_DATABASE_URL (starting one if needed)
	./.ci/withdb.sh sh -c 'echo "PostgreSQL answers at $$TEST_DATABASE_URL"'

db/reset: ## Drop and recreate the test database
	psql "postgres://postgres@127.0.0.1:5432/postgres" -c 'DROP DATABASE IF EXISTS test' -c 'CREATE DATABASE test'
