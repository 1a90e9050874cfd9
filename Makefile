# Two commands set everything up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test bench ui install clean pool-up pool-down load-run browser

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,postgres,celery]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/forge-pool demo

test: $(STAMP)
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python -m benchmarks.run

ui: $(STAMP)
	$(BIN)/forge-pool ui

# Debian's chromium and its driver for the browser test (tests/ui/test_browser.py), installed when missing.
browser:
	command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; }

clean:
	rm -rf .forge build dist *.egg-info

# A local production-like pool (docs/deployment.md): PostgreSQL on 127.0.0.1:5432, the
# broker in FORGE_CELERY_BROKER (default redis://127.0.0.1:6379/0), two Celery workers;
# runs the demo requests and settles today's cycle through them, then stops every worker.
POOL_ARGS ?= --workers 2 forge_pipeline/catalog/demo/*.yaml forge_pipeline/catalog/demo/*.json
pool-up: $(STAMP)
	$(BIN)/python -m forge_pipeline.deploy.local_pool up $(POOL_ARGS)

pool-down: $(STAMP)
	$(BIN)/python -m forge_pipeline.deploy.local_pool down

# 1,000 small workloads through one billing cycle on the embedded default, then ledger verify
# and reconciliation (LOAD_ARGS="pool --workloads 40" for the local pool; see benchmarks/distributed.py).
LOAD_ARGS ?= embedded --workloads 1000
load-run: $(STAMP)
	PYTHONPATH=. $(BIN)/python -m benchmarks.distributed $(LOAD_ARGS)
