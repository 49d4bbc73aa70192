# kracked: one entry point for set-up, tests and running on one machine.
# Every target creates .venv and installs what it needs, so a fresh clone works.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install test lint typecheck unit integration run stack-up stack-down stack-status bench clean browser

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "$(PYTHON) not found: install Python 3.11 or set PYTHON=..."; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest tests/unit -q

integration: $(STAMP)
	$(BIN)/pytest tests/integration -q

# The whole suite: lint, types, unit and integration against a real broker and registry
# (KRACKED_BOOTSTRAP_SERVERS/KRACKED_SCHEMA_REGISTRY_URL if set, else testcontainers, else the local stack).
test: lint typecheck browser
	$(BIN)/pytest tests -q

# Debian's chromium and chromedriver for the dashboard's browser test (Selenium drives them; no browser download).
browser:
	command -v chromium >/dev/null && command -v chromedriver >/dev/null || (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver)

# Everything on one machine: the local stack (unless KRACKED_BOOTSTRAP_SERVERS is set) and every service.
run: $(STAMP)
	$(BIN)/kracked up

stack-up: $(STAMP)
	$(BIN)/kracked stack up
stack-down: $(STAMP)
	$(BIN)/kracked stack down
stack-status: $(STAMP)
	$(BIN)/kracked stack status

bench: $(STAMP)
	@for b in bench/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	-$(BIN)/kracked stack down 2>/dev/null
	rm -rf $(VENV) .kracked .mypy_cache .ruff_cache .pytest_cache
