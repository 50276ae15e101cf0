# Two commands set everything up on a fresh machine: `make serve` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/pip --disable-pip-version-check
# torch is pinned and installed first: 2.13.0 has a local CPU wheel; an unpinned torch would pull CUDA packages.
TORCH  ?= torch==2.13.0
HOST   ?= 127.0.0.1
PORT   ?= 8000

.PHONY: install install-test serve test bench lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(PIP) install -q $(TORCH)
	$(PIP) install -q -e '.[all]'
	touch $@

# The support package (support/: generated models, the server harness, benchmark machinery) is a
# distribution of its own that tests and benchmarks import; it is never part of rerankd.
# The store's tests run a throw-away PostgreSQL server too: Debian's postgresql package, installed where missing.
# The browser tests (tests/web/) drive Debian's chromium, with fonts-noto-cjk for the Chinese page; Playwright
# never downloads a browser of its own.
$(VENV)/.installed-test: pyproject.toml support/pyproject.toml $(VENV)/.installed
	$(PIP) install -q -e '.[test]'
	$(PIP) install -q -e ./support
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || (apt-get update -q && apt-get install -y -q postgresql)
	(command -v chromium && ls /usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc) >/dev/null 2>&1 || \
		(apt-get update -q && apt-get install -y -q chromium fonts-noto-cjk)
	touch $@

install: $(VENV)/.installed

install-test: $(VENV)/.installed-test

serve: install
	$(BIN)/rerankd serve --host $(HOST) --port $(PORT) $(if $(CONFIG),--config $(CONFIG))

test: install-test
	$(BIN)/python -m pytest -q -ra $(PYTEST_ARGS)

# One run, everything under $(BENCH_OUT): the servers against each other and the matmul peak (perf/), the share
# of the bare forward pass reached through HTTP (ceiling-*.md), the cache's gains (cache.md) and the fidelity of
# each precision on Cranfield (precision/). BENCH_ARGS go to bench_perf.py (e.g. --quick).
BENCH_OUT ?= benchmarks/results
bench: install
	$(PIP) install -q -e '.[bench]'
	$(PIP) install -q -e ./support
	mkdir -p $(BENCH_OUT)
	$(BIN)/python benchmarks/bench_perf.py --out $(BENCH_OUT)/perf $(BENCH_ARGS)
	$(BIN)/python benchmarks/bench_ceiling.py --model minilm-l6 > $(BENCH_OUT)/ceiling-minilm-l6.md && cat $(BENCH_OUT)/ceiling-minilm-l6.md
	$(BIN)/python benchmarks/bench_ceiling.py --model bert-base --requests 16 > $(BENCH_OUT)/ceiling-bert-base.md && cat $(BENCH_OUT)/ceiling-bert-base.md
	$(BIN)/python benchmarks/bench_cache.py --queries 10 --concurrency 1 > $(BENCH_OUT)/cache.md && cat $(BENCH_OUT)/cache.md
	$(BIN)/python benchmarks/bench_precision.py --fidelity --out $(BENCH_OUT)/precision

# Zero findings: ruff, and mypy --strict on the runtime package, plain mypy on the code around it.
lint: install-test
	$(BIN)/ruff check src tests benchmarks support
	$(BIN)/ruff format --check src tests benchmarks support
	$(BIN)/mypy --strict src
	$(BIN)/mypy tests support benchmarks

clean:
	rm -rf $(VENV) build dist src/*.egg-info support/*.egg-info .pytest_cache .mypy_cache .ruff_cache
