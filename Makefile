# Every target creates the virtual environment it needs (.venv) on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
# Parallel test workers (pytest-xdist); CI machines have 2 cores.
JOBS   ?= 2

.PHONY: demo test lint check bench bench-peers clean screenshot

# Installed with the exact versions of constraints.txt (pyproject.toml gives the ranges).
$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev,server,dask,arrow]'
	touch $(STAMP)

# Bytecode for e3's own sources: an editable install does not get it from pip, and
# without it every e3 command compiles its modules first (tens of milliseconds).
.PHONY: bytecode
bytecode: $(STAMP)
	$(BIN)/python -m compileall -q src

## Run the demo dataflow end to end on a fresh local repository (.e3-demo/repo).
demo: bytecode
	PATH="$(CURDIR)/$(BIN):$$PATH" bash scripts/demo.sh

## Run the whole test suite.
test: $(STAMP)
	$(BIN)/pytest -n $(JOBS) -q

## Static checks: formatting, lint, types.
lint: $(STAMP)
	$(BIN)/ruff format --check src tests benchmarks examples fuzz
	$(BIN)/ruff check src tests benchmarks examples fuzz
	$(BIN)/mypy
	$(BIN)/lint-imports

check: lint test

## Benchmarks (on demand; prints tables). BENCH_ARGS=--quick for a short run.
bench: bytecode
	$(BIN)/python -m benchmarks $(BENCH_ARGS)

## The README's picture of the web view (needs /usr/bin/chromium).
screenshot: bytecode
	$(BIN)/python scripts/web_view_screenshot.py

## e3 side by side with peer engines (benchmarks/peers): one virtual environment per peer
## under $(PEER_VENVS), installed from its pinned requirements file, then one comparison run.
## PEERS_ARGS=--quick for a short run.
PEERS      := hamilton joblib dask redun prefect
PEER_VENVS := .bench-peers

$(PEER_VENVS)/%/.installed-stamp: benchmarks/peers/requirements/%.txt
	rm -rf $(PEER_VENVS)/$*
	$(PYTHON) -m venv $(PEER_VENVS)/$*
	$(PEER_VENVS)/$*/bin/pip install --quiet --disable-pip-version-check -r $<
	touch $@

bench-peers: bytecode $(foreach p,$(PEERS),$(PEER_VENVS)/$(p)/.installed-stamp)
	$(BIN)/python -m benchmarks.peers --venvs $(PEER_VENVS) $(PEERS_ARGS)

clean:
	rm -rf $(VENV) $(PEER_VENVS) .e3-demo .pytest_cache .mypy_cache .ruff_cache
