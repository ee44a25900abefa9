# leptos-auth: the two commands a person needs are `make run` and `make test`.

SHELL := /bin/bash
TOOLS_DIR ?= $(HOME)/.cache/leptos-auth/tools
export PATH := $(TOOLS_DIR)/node_modules/.bin:$(HOME)/.cargo/bin:$(PATH)
CARGO_TARGET_DIR ?= target
export CARGO_TARGET_DIR

.PHONY: run build release dist test tools-test test-rust test-e2e test-dist budget bench bench-browser fuzz-api fuzz-api-postgres lint fmt clippy migrate create-admin tools clean-data

## run: build (debug) and serve on SQLite at http://localhost:3000, installing missing tools first
run: tools
	cargo leptos build
	@addr=$${LEPTOS_SITE_ADDR:-127.0.0.1:3000}; echo "==> listening on $$addr: open http://localhost:$${addr##*:} (passkeys need the name localhost; Ctrl-C to stop)"
	$(CARGO_TARGET_DIR)/debug/leptos-auth serve

## build: debug build of the server and the site (target/debug/leptos-auth, target/site)
build: tools
	cargo leptos build

## release: optimised build (target/release/leptos-auth, target/site), with wasm-opt;
## a .br and a .gz beside every site file, served as they are
release:
	./scripts/ensure-tools.sh --release
	cargo leptos build --release --precompress

## dist: the runtime artefact the container image copies: dist/leptos-auth, dist/site,
## and dist/hash.txt when the build hashes its file names (the server reads it beside itself)
dist: release
	rm -rf dist
	mkdir -p dist
	cp $(CARGO_TARGET_DIR)/release/leptos-auth dist/leptos-auth
	if [ -f $(CARGO_TARGET_DIR)/release/hash.txt ]; then cp $(CARGO_TARGET_DIR)/release/hash.txt dist/hash.txt; fi
	cp -r target/site dist/site

## test: everything: formatting, lints, unit and integration tests on SQLite and PostgreSQL,
## browser tests, API fuzzing, the release artefact; installs what is missing first
test: tools-test lint
	cargo leptos build
	cargo test --features ssr
	$(MAKE) test-e2e
	$(MAKE) fuzz-api
	$(MAKE) test-dist
	$(MAKE) budget

## test-dist: build dist/ and run it from another directory against a throwaway PostgreSQL
test-dist: dist
	./scripts/test-dist.sh

## budget: the brotli-compressed wasm + js of a built site (SITE, default dist/site) within
## ASSET_BUDGET_KIB (150); needs the .br files of `cargo leptos build --release --precompress`
SITE ?= dist/site
budget:
	./scripts/check-asset-budget.sh $(SITE)

## test-rust: only the Rust tests (both databases)
test-rust:
	cargo test --features ssr

## test-e2e: browser tests in Chromium (after a build); ARGS are passed to playwright
test-e2e:
	./end2end/run.sh $(ARGS)

BENCH_VENV := $(TOOLS_DIR)/bench-venv
CRYPTOGRAPHY_VERSION := 48.0.0

## bench: benchmark suite on the release build: Lighthouse on five pages and a repeat visit
## (bench/lighthouse.py), then SQLite and PostgreSQL; writes bench/results/latest.json and BENCHMARKS.md
bench: dist
	./scripts/ensure-tools.sh --bench
	@command -v wrk >/dev/null 2>&1 || { echo "==> installing wrk with apt"; \
	  if [ "$$(id -u)" = 0 ]; then apt-get install -y -qq wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }; \
	  else sudo apt-get install -y -qq wrk; fi; }
	@$(BENCH_VENV)/bin/python -c "import cryptography" 2>/dev/null || { \
	  echo "==> installing cryptography $(CRYPTOGRAPHY_VERSION) from PyPI into $(BENCH_VENV) (the passkey scenario signs with it)"; \
	  python3 -m venv $(BENCH_VENV) && $(BENCH_VENV)/bin/pip install -q cryptography==$(CRYPTOGRAPHY_VERSION); }
	cargo bench --features ssr --bench micro
	$(BENCH_VENV)/bin/python bench/run.py

## bench-browser: only the browser part, against BIN (default dist/leptos-auth) and SITE (default
## site/ beside BIN); prints the table, writes bench/results/browser.json and the Lighthouse reports
## in bench/results/lighthouse/. ARGS go to bench/lighthouse.py (--runs 1, --pages /,/login, --record)
BIN ?= dist/leptos-auth
bench-browser:
	./scripts/bench-browser-tools.sh
	python3 bench/lighthouse.py --bin $(BIN) $(if $(filter command line environment,$(origin SITE)),--site-dir $(SITE)) $(ARGS)

## fuzz-api: validate the OpenAPI document and fuzz the API with schemathesis (SQLite; FUZZ_EXAMPLES, FUZZ_SEED)
fuzz-api:
	./scripts/fuzz-api.sh

## fuzz-api-postgres: the same against a throwaway PostgreSQL cluster
fuzz-api-postgres:
	FUZZ_BACKEND=postgres ./scripts/fuzz-api.sh

lint: fmt clippy

fmt:
	cargo fmt --all -- --check

clippy:
	cargo clippy --all-targets --all-features -- -D warnings
	cargo clippy --lib --no-default-features --features hydrate --target wasm32-unknown-unknown -- -D warnings

## migrate: apply migrations to DATABASE_URL (default: the SQLite file in data/)
migrate:
	cargo run --features ssr -- migrate

## create-admin: EMAIL=you@example.com make create-admin
create-admin:
	cargo run --features ssr -- create-admin --email "$(EMAIL)"

tools:
	@./scripts/ensure-tools.sh

tools-test:
	@./scripts/ensure-tools.sh --test

## clean-data: remove the local SQLite database and the generated development secret
clean-data:
	rm -rf data
