# Two commands set everything up on a fresh machine: `make serve` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/pip --disable-pip-version-check
# Every package comes from one lock, requirements.lock: exact versions with their hashes, resolved once by
# `make lock` (uv pip compile) and installed with pip in hash-checking mode, so that the same commit installs the
# same packages on any day. torch is the local CPU wheel (torch==2.13.0+cpu); an unpinned torch would pull CUDA.
# pyproject.toml keeps ranges for people who `pip install rerankd` into an environment of their own.
LOCK   := requirements.lock
PIP_VERSION ?= 26.3
UV     ?= uv==0.13.10
# `make test-latest` sets LATEST=1: the newest releases within pyproject's ranges instead of the lock.
LATEST ?= 0
TORCH  ?= torch==2.13.0
HOST   ?= 127.0.0.1
PORT   ?= 8000

.PHONY: install install-test serve test bench lint lock test-latest clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q pip==$(PIP_VERSION)

# The lock holds the test and benchmark tools too (one lock for installs, tests and CI); rerankd and
# rerankd-support themselves go in editable, without build isolation (setuptools is in the lock).
ifeq ($(LATEST),1)
$(VENV)/.installed: pyproject.toml support/pyproject.toml | $(BIN)/python
	echo '$(TORCH)' > $(VENV)/torch-constraint.txt
	$(PIP) install -q $(TORCH)
	$(PIP) install -q --upgrade --upgrade-strategy eager -c $(VENV)/torch-constraint.txt -e '.[test,bench]' -e ./support
	touch $@
else
$(VENV)/.installed: $(LOCK) pyproject.toml support/pyproject.toml | $(BIN)/python
	$(PIP) install -q --require-hashes -r $(LOCK)
	$(PIP) install -q --no-deps --no-build-isolation -e . -e ./support
	touch $@
endif

# The support package (support/: generated models, the server harness, benchmark machinery) is a
# distribution of its own that tests and benchmarks import; it is never part of rerankd.
# The store's tests run a throw-away PostgreSQL server too: Debian's postgresql package, installed where missing.
# The browser tests (tests/web/) drive Debian's chromium, with fonts-noto-cjk for the Chinese page; Playwright
# never downloads a browser of its own.
$(VENV)/.installed-test: $(VENV)/.installed
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || (apt-get update -q && apt-get install -y -q postgresql)
	(command -v chromium && ls /usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc) >/dev/null 2>&1 || \
		(apt-get update -q && apt-get install -y -q chromium fonts-noto-cjk)
	touch $@

# The playground's JavaScript (src/rerankd/web/static/) is served as written: ES modules, no bundler, no build
# step. Node only checks it: tsc type-checks the modules' JSDoc types (// @ts-check, tsconfig.json, nothing
# emitted) and node's own test runner runs the unit tests of their pure functions (tests/web/js/). TypeScript is
# the one npm package, pinned in package-lock.json and installed by `npm ci` into the git-ignored node_modules/;
# node and npm are Debian's packages, installed where missing (bookworm's node 18 passes both, as does node 20).
# Named by a glob, not the folder: node 18 and 20 take from a folder only files named like *.test.mjs.
NODE_TESTS := tests/web/js/test_*.mjs

node_modules/.installed: package.json package-lock.json
	(command -v node && command -v npm) >/dev/null 2>&1 || (apt-get update -q && apt-get install -y -q nodejs npm)
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

install: $(VENV)/.installed

install-test: $(VENV)/.installed-test

serve: install
	$(BIN)/rerankd serve --host $(HOST) --port $(PORT) $(if $(CONFIG),--config $(CONFIG))

# The JavaScript's unit tests first: a few seconds, no server, no browser.
test: install-test node_modules/.installed
	node --test --test-reporter=spec $(NODE_TESTS)
	$(BIN)/python -m pytest -q -ra $(PYTEST_ARGS)

# One run, everything under $(BENCH_OUT) (about 1.5 h on 2 cores): the servers against each other and the matmul
# peak (perf/), the share of the bare forward pass and of the peak reached through HTTP in each threads layout, for
# two cross-encoders and the Qwen3-0.6B-shaped LLM reranker (ceiling-*.md), an LLM reranker's shared prefix against
# the tokens it saves (prefix.md), the cache's gains (cache.md) and the fidelity of each precision on Cranfield
# (precision/). BENCH_ARGS go to bench_perf.py (e.g. --quick).
BENCH_OUT ?= benchmarks/results
bench: install
	mkdir -p $(BENCH_OUT)
	$(BIN)/python benchmarks/bench_perf.py --out $(BENCH_OUT)/perf $(BENCH_ARGS)
	$(BIN)/python benchmarks/bench_ceiling.py --model minilm-l6 > $(BENCH_OUT)/ceiling-minilm-l6.md && cat $(BENCH_OUT)/ceiling-minilm-l6.md
	$(BIN)/python benchmarks/bench_ceiling.py --model bert-base --requests 16 > $(BENCH_OUT)/ceiling-bert-base.md && cat $(BENCH_OUT)/ceiling-bert-base.md
	$(BIN)/python benchmarks/bench_ceiling.py --model qwen3-0.6b --docs 10 --requests 8 --clients 4 --rounds 2 > $(BENCH_OUT)/ceiling-qwen3-0.6b.md && cat $(BENCH_OUT)/ceiling-qwen3-0.6b.md
	$(BIN)/python benchmarks/bench_prefix.py --docs 4 > $(BENCH_OUT)/prefix.md && cat $(BENCH_OUT)/prefix.md
	$(BIN)/python benchmarks/bench_cache.py --queries 10 --concurrency 1 > $(BENCH_OUT)/cache.md && cat $(BENCH_OUT)/cache.md
	$(BIN)/python benchmarks/bench_precision.py --fidelity --out $(BENCH_OUT)/precision

# Zero findings: ruff, and mypy --strict on the runtime package, plain mypy on the code around it; then tsc, strict,
# on the playground's JavaScript.
lint: install-test node_modules/.installed
	$(BIN)/ruff check src tests benchmarks support
	$(BIN)/ruff format --check src tests benchmarks support
	$(BIN)/mypy --strict src
	$(BIN)/mypy tests support benchmarks
	node_modules/.bin/tsc --noEmit -p tsconfig.json

# Re-resolve the lock: the newest releases within pyproject's ranges, for this platform (Linux x86_64, CPython
# 3.11), torch kept at the local CPU wheel; the otel extra (OpenTelemetry tracing) is in it, as `all` and `test`
# take it in too. Commit the new requirements.lock once `make test` passes on it.
lock: | $(BIN)/python
	$(PIP) install -q $(UV)
	echo 'torch==2.13.0+cpu' > $(VENV)/torch-constraint.txt
	$(BIN)/uv pip compile -q pyproject.toml support/pyproject.toml --extra test --extra bench --extra otel \
		--find-links /opt/wheels -c $(VENV)/torch-constraint.txt --generate-hashes \
		--python-version 3.11 --python-platform x86_64-manylinux_2_28 --upgrade -o $(LOCK)

# Lint and the whole suite against the newest releases, in a venv of their own, so that a release that breaks
# rerankd is seen here before `make lock` takes it in.
test-latest:
	$(MAKE) lint test VENV=.venv-latest LATEST=1

clean:
	rm -rf $(VENV) .venv-latest build dist src/*.egg-info support/*.egg-info .pytest_cache .mypy_cache .ruff_cache \
		node_modules
