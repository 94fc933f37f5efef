# Two entry points, each doing all set-up from a fresh clone (see README.md):
#   make demo   generate the skills, then run the real all-MiniLM-L6-v2 skill on a few sentences
#   make test   check generated/ and the registry snapshot are current, then run the test suite
#   make test-all   make test, then the slow tests and the mutation check (what .ci/run runs)
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
# Compiled MAX graphs, Mojo modules and MAX's kernel cache live here, outside the clone, so a
# fresh clone (CI's every run) reuses them: a MAX compile costs about a minute of CPU cold.
export MODULAR_CACHE_DIR ?= $(HOME)/.cache/skillmill/modular
export HF_HUB_OFFLINE := 1

.PHONY: demo test test-slow mutation test-all install generate check clean

$(STAMP): pyproject.toml setup.py $(wildcard native/src/*) $(wildcard native/include/*) native/build_native.py \
          engines/web/package-lock.json
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip setuptools wheel
	# torch 2.13.0 is the CPU build on this machine's disk; any other pin pulls a CUDA build.
	$(BIN)/pip install --quiet torch==2.13.0
	# Editable install: also builds the native SIMD kernels through cffi; [modular] is MAX 26.7.0
	# with the mojo compiler (the test extra lists it too, so CI runs MAX for real).
	$(BIN)/pip install --quiet -e ".[test,modular]"
	# The bench-backends report's render test (tests/measure/test_bench_backends.py) opens the HTML
	# page in Debian's chromium-headless-shell, driven by playwright through its path (playwright's
	# own browser download is not used). apt needs root (or password-less sudo); elsewhere this
	# warns, and the test fails under SKILLMILL_STRICT_SKIPS=1 (make test) rather than skip.
	@command -v chromium-headless-shell >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO="sudo -n"; fi; \
	  { $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq \
	    --no-install-recommends chromium-headless-shell >/dev/null; } || \
	  echo "warning: could not install chromium-headless-shell (apt-get install chromium-headless-shell)"; }
	# The wasm / webgpu / webnn targets (engines/web) serve the onnxruntime-web that
	# engines/web/package-lock.json pins, from engines/web/node_modules (npm from Debian's nodejs).
	@command -v npm >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO="sudo -n"; fi; \
	  { $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq \
	    --no-install-recommends nodejs npm >/dev/null; } || \
	  echo "warning: could not install npm (apt-get install nodejs npm)"; }
	@npm ci --prefix engines/web --no-audit --no-fund --ignore-scripts --loglevel=error || \
	  echo "warning: npm ci failed in engines/web: the browser targets will say so when asked for"
	touch $(STAMP)

install: $(STAMP)

generate: $(STAMP)
	$(BIN)/generate-skills --jobs 2

demo: generate
	$(BIN)/generate-skills demo

check: $(STAMP)
	$(BIN)/generate-skills --check --quiet
	$(BIN)/generate-skills scan --check

# SKILLMILL_STRICT_SKIPS=1: a test that would skip because a declared dependency is missing
# fails instead (tests/conftest.py), so a broken install cannot pass as "skipped".
test: check
	@SKILLMILL_STRICT_SKIPS=1 $(BIN)/python -m pytest -q -m "not slow" tests; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing on purpose"; exit 1; fi; exit $$rc

# The nightly-style rest: the slow tests (random-shape kernel sweeps, ...) and the hand-written
# mutants of the code that proves engines (tests/mutation/run.py); .ci/run calls it after `test`.
test-slow: $(STAMP)
	@SKILLMILL_STRICT_SKIPS=1 $(BIN)/python -m pytest -q -m slow tests; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no slow tests: failing on purpose"; exit 1; fi; exit $$rc

mutation: $(STAMP)
	$(BIN)/python tests/mutation/run.py

test-all: test test-slow mutation

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
