# kracked: one entry point for set-up, tests and running on one machine.
# Every target creates .venv and installs what it needs, so a fresh clone works.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
NATIVE := $(VENV)/.native
# the native extension (Rust, built by maturin through pip); rustup puts cargo here
export PATH := $(HOME)/.cargo/bin:$(PATH)
NATIVE_SRC := native/Cargo.toml native/Cargo.lock native/pyproject.toml $(wildcard native/src/*.rs)

.PHONY: install test lint typecheck unit native-test integration run stack-up stack-down stack-status bench clean browser

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "$(PYTHON) not found: install Python 3.11 or set PYTHON=..."; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

$(NATIVE): $(STAMP) $(NATIVE_SRC)
	@command -v cargo >/dev/null 2>&1 || { echo "cargo not found: install Rust (https://rustup.rs) to build native/"; exit 1; }
	$(BIN)/pip install -q ./native
	touch $(NATIVE)

install: $(STAMP) $(NATIVE)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	cargo fmt --manifest-path native/Cargo.toml --check
	cargo clippy --release --quiet --manifest-path native/Cargo.toml -- -D warnings

typecheck: install
	$(BIN)/mypy

unit: install native-test
	$(BIN)/pytest tests/unit -q

# the native extension's own unit tests (Rust)
native-test:
	cargo test --release --quiet --manifest-path native/Cargo.toml

integration: install
	$(BIN)/pytest tests/integration -q

# The whole suite: lint, types, unit and integration against a real broker and registry
# (KRACKED_BOOTSTRAP_SERVERS/KRACKED_SCHEMA_REGISTRY_URL if set, else testcontainers, else the local stack).
test: lint typecheck native-test browser
	$(BIN)/pytest tests -q

# Debian's chromium and chromedriver for the dashboard's browser test (Selenium drives them; no browser download).
browser:
	command -v chromium >/dev/null && command -v chromedriver >/dev/null || (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver)

# Everything on one machine: the local stack (unless KRACKED_BOOTSTRAP_SERVERS is set) and every service.
run: install
	$(BIN)/kracked up

stack-up: install
	$(BIN)/kracked stack up
stack-down: install
	$(BIN)/kracked stack down
stack-status: install
	$(BIN)/kracked stack status

bench: install
	@for b in bench/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	-$(BIN)/kracked stack down 2>/dev/null
	rm -rf $(VENV) native/target .kracked .mypy_cache .ruff_cache .pytest_cache
