# Two commands do everything on a fresh machine:
#   make demo   - install, start the emulators and a real Airflow, run an example DAG end to end
#   make test   - install, lint, type-check, build the docs site (strict), unit + dag.test() + end-to-end tests on Airflow 3.3
#                 (incl. the real-browser check of the UI: chromium via apt, playwright via uv)
#                 (incl. the distributed CeleryExecutor suite), then the same on the Airflow 3.1 floor
#   make soak   - the long runs: 300 deferred runs on the distributed Airflow
#   make mutate - mutation testing of core/ and triggers/ (MODULES="core/storage.py" for one); docs/mutation.md
PYTHON ?= python3
AIRFLOW_VERSION ?= 3.3.2
AIRFLOW_FLOOR ?= 3.1.8
VENV := .venv
FLOOR := .venv-af31
# What the test environments install: the provider with the extras a user may choose, and the
# dev dependency group (PEP 735: pyproject's [dependency-groups], never published).
INSTALL := -e ".[emulator,aiohttp,s3,openlineage]" --group dev
# The repository's harness (dev/flowruns_dev) and benchmarks (dev/benchmarks), outside the wheel.
export PYTHONPATH := $(CURDIR)/dev$(if $(PYTHONPATH),:$(PYTHONPATH))
# Benchmarks only: the dev group plus the dbt Cloud provider (the bench group). Byte-compiled
# as pip and Airflow's images install (uv does not by default): a worker would otherwise compile
# Airflow's modules it imports inside a timed transfer.
BENCH := .venv-bench
# Three workers on two cores: most test time is spent waiting on emulated vendors, not computing.
# --dist loadfile keeps a file's module-scoped emulator in one worker.
PYTEST_FLAGS ?= -q -rs -p no:cacheprovider -n 3 --dist loadfile --durations=25
# make mutate only: installed into $(VENV) on first use, not in the dev group (CI's make test never needs it).
MUTMUT_VERSION := 3.8.1
MODULES ?=

.PHONY: demo test lint typecheck docs test-main test-floor test-floor-extra soak services clean emulator bench bench-smoke mutate

# The test environments carry the [openlineage] extra: tests/test_openlineage.py reads the events
# Airflow's OpenLineage listener emits for our tasks (the extra adds nothing while no transport is set).
$(VENV)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q --disable-pip-version-check uv
	$(VENV)/bin/uv pip install -q --python $(VENV)/bin/python "apache-airflow==$(AIRFLOW_VERSION)" $(INSTALL)
	touch $@

$(FLOOR)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(FLOOR)
	$(FLOOR)/bin/python -m pip install -q --disable-pip-version-check uv
	$(FLOOR)/bin/uv pip install -q --python $(FLOOR)/bin/python "apache-airflow==$(AIRFLOW_FLOOR)" $(INSTALL)
	touch $@

$(BENCH)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(BENCH)
	$(BENCH)/bin/python -m pip install -q --disable-pip-version-check uv
	$(BENCH)/bin/uv pip install -q --compile-bytecode --python $(BENCH)/bin/python "apache-airflow==$(AIRFLOW_VERSION)" -e ".[emulator,aiohttp,s3,openlineage]" --group bench
	touch $@

$(VENV)/.mutmut: $(VENV)/.installed Makefile
	$(VENV)/bin/uv pip install -q --python $(VENV)/bin/python "mutmut==$(MUTMUT_VERSION)"
	touch $@

# The browser check (tests/e2e/test_browser.py) drives Debian's chromium with playwright. playwright is
# a test tool installed here, not in the dev group, and `playwright install` is never run (it downloads a
# browser of its own); the test launches /usr/bin/chromium.
PLAYWRIGHT ?= playwright==1.65.2
CHROMIUM := /usr/bin/chromium

$(CHROMIUM):
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium </dev/null \
		|| (DEBIAN_FRONTEND=noninteractive apt-get update -q </dev/null \
			&& DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium </dev/null)

$(VENV)/.playwright: $(VENV)/.installed
	$(VENV)/bin/uv pip install -q --python $(VENV)/bin/python "$(PLAYWRIGHT)"
	touch $@

$(FLOOR)/.playwright: $(FLOOR)/.installed
	$(FLOOR)/bin/uv pip install -q --python $(FLOOR)/bin/python "$(PLAYWRIGHT)"
	touch $@

# PostgreSQL (metadata DB) and Redis (Celery broker), started if installed but stopped.
services:
	@bash tools/ensure_services.sh

demo: $(VENV)/.installed services
	$(VENV)/bin/python tools/run_demo.py

emulator: $(VENV)/.installed
	$(VENV)/bin/flowruns-emulator serve

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(VENV)/.installed
	$(VENV)/bin/mypy

# The documentation site (mkdocs.yml): --strict fails on a broken link, a missing page or snippet.
# Written to .run/site; `$(VENV)/bin/mkdocs serve` previews it.
docs: $(VENV)/.installed
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --quiet

test-main: $(VENV)/.installed $(VENV)/.playwright $(CHROMIUM) services
	@echo "== Airflow $(AIRFLOW_VERSION): unit, dag.test() and end-to-end tests (async requests over aiohttp, downloads over http.client)"
	$(VENV)/bin/python -m pytest $(PYTEST_FLAGS)

test-floor: $(FLOOR)/.installed $(FLOOR)/.playwright $(CHROMIUM) services
	@echo "== Airflow $(AIRFLOW_FLOOR) (floor): unit, dag.test() and end-to-end tests (async requests and downloads over httpx's own transport)"
	@echo "!! Not run on the floor, to keep CI short: the distributed CeleryExecutor suite (make test-floor-extra),"
	@echo "!! the benchmark smoke run and the in-loop load test (markers distributed, newest_only)"
	AIRFLOW__FLOWRUNS__ASYNC_TRANSPORT=httpx AIRFLOW__FLOWRUNS__DOWNLOAD_TRANSPORT=httpx \
		$(FLOOR)/bin/python -m pytest $(PYTEST_FLAGS) -m "not distributed and not newest_only"

test-floor-extra: $(FLOOR)/.installed services
	$(FLOOR)/bin/python -m pytest -q -rs -s -p no:cacheprovider -m "distributed or newest_only"

# One suite after the other. Side by side (make -j2) they took ~12 min instead of ~19, but the
# extra load widened an Airflow 3.1 scheduler race (a stale defer-exit "success" processed after
# the trigger fired marks the task up_for_retry: apache/airflow#67287, fixed after 3.1), and the
# floor's end-to-end test then saw a duplicate vendor run.
test: lint typecheck docs test-main test-floor

# The long runs: 200 deferred runs across the four vendors in one event loop (make test runs 40),
# then 300 deferred runs (75 per vendor) through two Celery workers and two triggerers, one killed.
soak: $(VENV)/.installed services
	FLOWRUNS_LOAD_RUNS=200 $(VENV)/bin/python -m pytest -q -p no:cacheprovider -s tests/test_load.py
	FLOWRUNS_DISTRIBUTED_RUNS=75 $(VENV)/bin/python -m pytest -q -rs -s -p no:cacheprovider tests/e2e/test_distributed.py

# Full benchmarks (a few minutes) in the bench environment; writes docs/benchmarks.md.
bench: $(BENCH)/.installed
	$(BENCH)/bin/python -m benchmarks --out docs/benchmarks.md --command "make bench"

# The seconds-long smoke run with the dbt Cloud baseline (make test runs it without dbt, in .venv).
bench-smoke: $(BENCH)/.installed
	$(BENCH)/bin/python -m benchmarks --smoke

# Mutation testing (not part of make test): each module of core/ and triggers/ against its fast tests
# (tools/mutate.py TARGETS), scores into docs/mutation.md. MODULES="core/storage.py" runs one.
mutate: $(VENV)/.mutmut
	$(VENV)/bin/python tools/mutate.py $(MODULES)

clean:
	rm -rf $(VENV) $(FLOOR) $(BENCH) .run demo-output .mypy_cache .ruff_cache .mutate
