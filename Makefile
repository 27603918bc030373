# OpsPortal. `make run` serves the portal with a worker, beat and the demo model; `make test` runs the suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Serving needs only requirements.txt; tests, lint and benchmarks add requirements-dev.txt.
# Each stamp is older than a requirements file that changed, so that file is installed again.
STAMP := $(VENV)/.installed-runtime
DEV_STAMP := $(VENV)/.installed-dev

.PHONY: run install install-dev migrate test lint format bench bench-env bench-evidently-env clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): requirements.txt requirements-nodeps.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -r requirements-nodeps.txt
	touch $(STAMP)

$(DEV_STAMP): requirements-dev.txt requirements.txt $(STAMP)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $(DEV_STAMP)

install: $(STAMP)

install-dev: $(DEV_STAMP)

migrate: $(STAMP)
	$(BIN)/python manage.py migrate --noinput

# run_portal prints the URL (and the first admin password) once /readyz answers; Ctrl-C exits 0.
# The demo's uptime checks look at this machine (the portal's /healthz and ports), so `make run` lets checks and
# webhooks reach 127.0.0.1 unless OPSPORTAL_OUTBOUND_ALLOWLIST is set (docs/aiops.md, "Checks").
run: migrate
	$(BIN)/python manage.py seed_demo
	$(BIN)/python manage.py ensure_admin --announce-later
	OPSPORTAL_OUTBOUND_ALLOWLIST="$${OPSPORTAL_OUTBOUND_ALLOWLIST:-127.0.0.1}" $(BIN)/python manage.py run_portal

test: $(DEV_STAMP)
	$(BIN)/python manage.py check
	$(BIN)/python manage.py makemigrations --check --dry-run
	$(BIN)/pytest

lint: $(DEV_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache

format: $(DEV_STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: $(DEV_STAMP)
	$(BIN)/python -m bench

# The reference `mlflow server` for `python -m bench mlflow` (benchmark-only: never in requirements*.txt).
BENCH_VENV := var/bench-venv
bench-env: $(BENCH_VENV)/.installed
$(BENCH_VENV)/.installed: bench/mlflow-server/requirements.txt
	test -x $(BENCH_VENV)/bin/python || $(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install --quiet -r bench/mlflow-server/requirements.txt
	touch $@

# Evidently's DataDriftPreset for `python -m bench drift` (benchmark-only: never in requirements*.txt).
BENCH_EVIDENTLY_VENV := var/bench-evidently-venv
bench-evidently-env: $(BENCH_EVIDENTLY_VENV)/.installed
$(BENCH_EVIDENTLY_VENV)/.installed: bench/evidently/requirements.txt
	test -x $(BENCH_EVIDENTLY_VENV)/bin/python || $(PYTHON) -m venv $(BENCH_EVIDENTLY_VENV)
	$(BENCH_EVIDENTLY_VENV)/bin/python -m pip install --quiet -r bench/evidently/requirements.txt
	touch $@

clean:
	rm -rf $(VENV) var/staticfiles .pytest_cache
