# The two commands: `make run` (the whole platform) and `make test` (the whole suite).
# Both create .venv and install what they need; nothing else has to be set up by hand.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
PYTEST_ARGS ?=

.PHONY: vendor bench-dashboard run test lint format schema bench-api bench-turns bench-ws bench-memory bench-budgets bench-embeddings bench-cron services-up services-down services-status

$(PY):
	$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "Python 3.11 is required"'
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

# Stamps re-run an install only when its requirements change.
$(VENV)/.base-ml.stamp: requirements/base.txt requirements/ml.txt | $(PY)
	$(PIP) install -q -r requirements/base.txt -r requirements/ml.txt
	touch $@

$(VENV)/.dev.stamp: requirements/dev.txt $(VENV)/.base-ml.stamp
	$(PIP) install -q -r requirements/dev.txt
	touch $@

# The dashboard tests drive Debian's chromium through Playwright (never Playwright's own download).
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
$(VENV)/.browser.stamp: $(VENV)/.dev.stamp
	@command -v chromium >/dev/null || { \
	  echo "[make] installing Debian's chromium for the dashboard tests (apt-get, about a minute)"; \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive sh -c 'apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null'; }
	@chromium --version
	touch $@

run: $(VENV)/.base-ml.stamp
	$(PY) -m agentplatform.devserver

test: $(VENV)/.browser.stamp
	$(PY) -m agentplatform.embedded exec -- $(PY) -m pytest $(PYTEST_ARGS)

# lint-imports checks the import map in pyproject.toml ([tool.importlinter], docs/architecture.md).
lint: $(VENV)/.dev.stamp
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports --no-cache

format: $(VENV)/.dev.stamp
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# Regenerate the committed OpenAPI contract after an intended API change.
schema: $(VENV)/.dev.stamp
	$(PY) -m agentplatform.embedded exec -- $(PY) manage.py spectacular --file docs/openapi.yaml --validate

services-up: $(VENV)/.base-ml.stamp
	$(PY) -m agentplatform.embedded up

services-down: $(VENV)/.base-ml.stamp
	$(PY) -m agentplatform.embedded down

services-status: $(VENV)/.base-ml.stamp
	$(PY) -m agentplatform.embedded status

# Benchmarks print figures against DESIGN.md's budget; they are not part of the test suite.
# Each takes BENCH_ARGS; BENCH_ARGS=--json adds one JSON object of its figures as the last line.
bench-api: $(VENV)/.dev.stamp
	$(PY) -m agentplatform.embedded exec -- $(PY) bench/api_latency.py $(BENCH_ARGS)

bench-turns: $(VENV)/.dev.stamp
	$(PY) -m agentplatform.embedded exec -- $(PY) bench/turn_overhead.py

bench-ws: $(VENV)/.dev.stamp
	$(PY) -m agentplatform.embedded exec -- $(PY) bench/ws_fanout.py $(BENCH_ARGS)

# BENCH_ARGS="--rows 1000000" for the 1M run.
bench-memory: $(VENV)/.dev.stamp
	$(PY) -m agentplatform.embedded exec -- $(PY) bench/memory_search.py $(BENCH_ARGS)

# BENCH_ARGS="--turns 0 1000000" for the 1M-turn tenant.
bench-budgets: $(VENV)/.dev.stamp
	$(PY) -m agentplatform.embedded exec -- $(PY) bench/budget_reserve.py $(BENCH_ARGS)

# Query-embedding latency per local runtime (torch vs ONNX Runtime); no database needed.
# BENCH_ARGS="--threads 1 2" also measures two intra-op threads.
# Starts its own beat and one worker against the services (bench/cron.py).
bench-cron: $(VENV)/.dev.stamp
	$(PY) -m agentplatform.embedded exec -- $(PY) bench/cron.py $(BENCH_ARGS)

bench-embeddings: $(VENV)/.dev.stamp
	$(PY) bench/embeddings.py $(BENCH_ARGS)

# Refresh the dashboard's vendored browser libraries from the npm registry (docs/dashboard.md).
vendor: $(VENV)/.base-ml.stamp
	$(PY) manage.py vendor_refresh

# The chat page in chromium: POST to first token drawn, and the page's JS+CSS weight.
bench-dashboard: $(VENV)/.browser.stamp
	$(PY) -m agentplatform.embedded exec -- $(PY) bench/dashboard_stream.py $(BENCH_ARGS)
