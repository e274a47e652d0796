# The lab's front door. `make fault=memory-leak load` is the main job.
# Variables: fault=SLUG fixed=1 duration=30s users=50 workers=2 profile=none|py-spy|memray shape=constant|step|spike
#            rate=200 (open model, req/s) load_processes=2 (Locust master + workers)

PYTHON   ?= python3
VENV     ?= .venv
LAB      := $(VENV)/bin/lab
PY       := $(VENV)/bin/python
STAMP    := $(VENV)/.installed

fault    ?=
fixed    ?=
# Empty: the scenario's own (its default load; a deployment scenario's workers).
duration ?=
users    ?=
workers  ?=
profile  ?= none
shape    ?= constant
workload ?=
# Empty: the closed model (users wait for each answer); one Locust process.
rate     ?=
load_processes ?=
out      ?= runs

RUN_FLAGS = $(if $(duration),--duration $(duration)) $(if $(users),--users $(users)) \
            $(if $(workers),--workers $(workers)) --profile $(profile) --shape $(shape) --out $(out) \
            $(if $(workload),--workload $(workload)) $(if $(rate),--rate $(rate)) \
            $(if $(load_processes),--load-processes $(load_processes))

.DEFAULT_GOAL := help
.PHONY: eval handbook help install services up down status load compare serve scenarios test test-unit lint bench clean require-fault

help:
	@echo "make fault=memory-leak load            faulty variant under load, report at the end"
	@echo "make fault=memory-leak fixed=1 load    the fixed variant, same load"
	@echo "make fault=memory-leak compare         both, then a before/after comparison"
	@echo "make fault=memory-leak serve           the app alone with the fault on (port 8000)"
	@echo "make services | up | status | down    install, start, inspect, stop PostgreSQL, Redis, Toxiproxy, Prometheus, upstream, inventory"
	@echo "make scenarios | handbook | test | lint | bench | eval | clean"
	@echo "variables (unset: the scenario's own): duration=30s users=50 workers=2 profile=none|py-spy|memray shape=constant|step|spike workload=mixed|..."
	@echo "  rate=200              open model: 200 req/s on a schedule, latency from each request's intended time (users then cap requests in flight)"
	@echo "  load_processes=2      Locust as a master and 2 worker processes (at most one per core)"

# The venv is made, and the project installed into it, the first time it is needed.
$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is needed: set PYTHON=python3.11 (or newer)")'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "installing the lab into $(VENV) (first time only)..." >&2
	@$(PY) -m pip install --quiet --upgrade pip
	@$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

require-fault:
	@test -n "$(fault)" || { echo "error: say which scenario, e.g. 'make fault=memory-leak load'; 'make scenarios' lists them" >&2; exit 2; }

load: $(STAMP) require-fault
	@$(LAB) run $(fault) $(if $(fixed),--fixed) $(RUN_FLAGS)

compare: $(STAMP) require-fault
	@$(LAB) prove $(fault) $(RUN_FLAGS)

serve: $(STAMP)
	@$(LAB) serve $(fault) $(if $(fixed),--fixed) $(if $(workers),--workers $(workers))

handbook: $(STAMP)
	@$(LAB) handbook --out docs/scenarios

scenarios: $(STAMP)
	@$(LAB) scenarios

test: $(STAMP)
	@$(PY) -m pytest

test-unit: $(STAMP)
	@$(PY) -m pytest -m unit

lint: $(STAMP)
	@$(VENV)/bin/ruff check .
	@$(VENV)/bin/ruff format --check .
	@$(VENV)/bin/mypy

# A seeded corpus of every diagnosable scenario, diagnosed blind and scored
# (lab eval; `lab diagnose --eval FOLDER` scores run dirs you already have).
eval: $(STAMP)
	@$(LAB) eval --out $(out)/eval

bench: $(STAMP)
	@$(LAB) bench

services:
	@bash scripts/install-services.sh

# The native services as daemons under .lab/ (`make services` installs them).
up: $(STAMP)
	@$(LAB) up

down: $(STAMP)
	@$(LAB) down

status: $(STAMP)
	@$(LAB) status

# Stops the lab's services first: their data lives in .lab/. The Toxiproxy
# binary there goes too (`make services` builds it again).
clean:
	@if [ -x $(LAB) ]; then $(LAB) down || true; fi
	rm -rf runs .lab .pytest_cache .mypy_cache .ruff_cache
