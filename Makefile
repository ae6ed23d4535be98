# One entry point for the chores. `make up` runs the platform, `make test` runs every test.
#
# Builds share one target dir outside the clone (set CARGO_TARGET_DIR to move it).
export CARGO_TARGET_DIR ?= /var/tmp/cinema-target
CARGO ?= cargo
SHELL := /bin/bash
TEST_LOG := $(CARGO_TARGET_DIR)/cinema-test.log
WASM_TARGET := wasm32-wasip2
# Edge components of the platform (spin.toml) and test-only fixtures.
COMPONENTS := hello auth catalog ugc admin docs
FIXTURES := fixture-probe fixture-forbidden-import fixture-guarded
COMPONENT_DIR := build/components
CINEMA := $(CARGO_TARGET_DIR)/release/cinema
# Where `make up` links the `cinema` binary, so it runs by name (a directory on the PATH).
BIN_DIR ?= /usr/local/bin
# Where `make up` installs bash completion for `cinema` (bash-completion's system folder).
BASH_COMPLETION_DIR ?= /etc/bash_completion.d
# The catalog search index the host's ETL keeps.
INDEX_DIR ?= /var/tmp/cinema-index

.PHONY: up test test-tools services components host install-cli check-imports lint fmt bench bench-load fuzz

## up: start local services, build everything, migrate, and serve the app on 127.0.0.1:3000
up: services components host install-cli
	$(CINEMA) migrate
	$(CINEMA) up --from spin.toml --runtime-config-file cinema-runtime-config.toml \
		--index-dir $(INDEX_DIR) --kafka-brokers 127.0.0.1:9092 --first-run

## test: start local services, build components, run every test (the import check of
## every spin.toml component is one of them), drop the databases the tests made, then the
## lints, then a short fuzzing run (schemathesis, 100 examples per operation)
test: services components test-tools
	set -o pipefail; $(CARGO) test --release --workspace --no-fail-fast --lib --bins --tests 2>&1 | tee $(TEST_LOG)
	scripts/sweep-test-databases.sh
	$(MAKE) lint
	CINEMA_BIN=$(CINEMA) scripts/fuzz.sh 100
	@awk '/^test result:/ {p+=$$4; f+=$$6} END {printf "tests: %d passed, %d failed\n", p, f}' $(TEST_LOG)

## test-tools: an independent JWT library (PyJWT) the token tests verify against, an
## SMTP server (aiosmtpd) the mail tests receive with, and headless Chromium with chromedriver (Debian's packages) for the admin console's
## browser tests
test-tools:
	@python3 -c "import jwt, cryptography" 2>/dev/null || python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore "pyjwt[crypto]==2.10.1"
	@python3 -c "import aiosmtpd" 2>/dev/null || python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore "aiosmtpd==1.4.6"
	@command -v chromedriver >/dev/null && command -v chromium >/dev/null || { \
		echo "installing chromium and chromium-driver (browser tests)..."; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; }

## services: install (if missing) and start Postgres, Redis, a Kafka-protocol broker, ClickHouse
services:
	scripts/services.sh up

## components: build every component for wasm32-wasip2 into build/components/ (first vendoring
## Swagger UI from npm for the docs component, once)
components:
	@rustup target list --installed 2>/dev/null | grep -qx $(WASM_TARGET) || rustup target add $(WASM_TARGET)
	@scripts/vendor-swagger-ui.sh
	@echo "building components: $(COMPONENTS) $(FIXTURES)"
	$(CARGO) build --profile wasm-release --target $(WASM_TARGET) $(foreach c,$(COMPONENTS) $(FIXTURES),-p $(c))
	@mkdir -p $(COMPONENT_DIR)
	@for c in $(COMPONENTS) $(FIXTURES); do \
		f=$$(echo $$c | tr - _); \
		cp $(CARGO_TARGET_DIR)/$(WASM_TARGET)/wasm-release/$$f.wasm $(COMPONENT_DIR)/$$f.wasm; \
	done
	@ls -l $(COMPONENT_DIR)

## host: build the cinema binary
host:
	$(CARGO) build --release -p cinema-host

## install-cli: link the cinema binary into BIN_DIR (default /usr/local/bin), so `cinema` runs by name,
## and install its bash completion into BASH_COMPLETION_DIR (new shells complete `cinema <Tab>`)
install-cli: host
	@if mkdir -p $(BIN_DIR) 2>/dev/null && ln -sfn $(CINEMA) $(BIN_DIR)/cinema 2>/dev/null; then \
		echo "cinema: $(BIN_DIR)/cinema -> $(CINEMA)"; \
	else \
		echo "could not link cinema into $(BIN_DIR): run $(CINEMA) by its path, or set BIN_DIR to a writable directory on your PATH"; \
	fi
	@if mkdir -p $(BASH_COMPLETION_DIR) 2>/dev/null && $(CINEMA) completions bash > $(BASH_COMPLETION_DIR)/cinema 2>/dev/null; then \
		echo "bash completion: $(BASH_COMPLETION_DIR)/cinema (other shells: cinema completions --help)"; \
	else \
		echo "could not write $(BASH_COMPLETION_DIR)/cinema: set BASH_COMPLETION_DIR, or run: source <($(CINEMA) completions bash)"; \
	fi

## check-imports: fail when a platform component imports anything outside wit/ (world edge)
check-imports: host
	$(CINEMA) check-imports --wit wit $(foreach c,$(COMPONENTS),$(COMPONENT_DIR)/$(subst -,_,$(c)).wasm)

## lint: rustfmt, the feature-unification check (host build = test build), the deploy/ files
## (systemd unit, Containerfile, Kubernetes and SpinKube manifests) with pinned validators, and
## clippy (native and wasm) with warnings as errors
lint:
	$(CARGO) fmt --all -- --check
	scripts/check-feature-unification.sh
	scripts/check-deploy.sh
	$(CARGO) clippy --release --workspace --all-targets -- -D warnings
	$(CARGO) clippy --release --target $(WASM_TARGET) -p cinema-domain -p cinema-edge $(foreach c,$(COMPONENTS) $(FIXTURES),-p $(c)) -- -D warnings

fmt:
	$(CARGO) fmt --all

## bench: component runtime vs native axum, logins vs argon2 alone, catalog on 100k films, the token path
## (revocation check on and off), the token check alone, catalog side by side with the FastAPI peer, UGC intake,
## then the load report (a mixed load on 100k films and a 10-minute soak) into bench/results/
bench: services components
	bench/runtime.sh
	bench/auth.sh
	bench/catalog.sh
	bench/token_path.sh
	bench/token_check.sh
	bench/compare.sh
	bench/ugc.sh
	bench/load.sh

## fuzz: schemathesis against the OpenAPI documents on a running platform; fails on any 5xx
fuzz: services components
	scripts/fuzz.sh

## bench-load: only the load report and the soak (bench/results/load.md, soak.md)
bench-load: services components
	bench/load.sh
