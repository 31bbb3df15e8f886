# faceedit-nb: the two commands of the README.
#   make book   execute every notebook (profile cpu, cached) and build the HTML book in book/_build/html
#   make test   unit tests + every notebook under nbval with the smoke profile
#   make check-book  make book, then one headless Chromium screenshot per page (book/_build/screenshots)
#   make clean  remove build products (book/_build, book/notebooks, build/); keeps .venv and the model
#               cache (~/.cache/faceedit-nb, or $FACEEDIT_CACHE)
#
# Both create .venv when it is missing and (re)install requirements.txt and the package only when
# requirements.txt or pyproject.toml changed since the last install (a content stamp inside .venv).

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.faceedit-nb-installed
PROFILE ?= cpu
# processes that train the shared models before the chapters run (the machine has 2 cores), then chapters
# executed at once (each in its own kernel)
PREBUILD_WORKERS ?= 2
BOOK_WORKERS ?= 2
# pytest-xdist workers for `make test` (2 cores here); PYTEST_ARGS adds options, e.g. PYTEST_ARGS=-x
JOBS   ?= 2
TEST_THREADS ?= 1
PYTEST_ARGS ?=
# pip prints hundreds of "WARNING: Location ... is ignored" lines on the project machines: drop them.
PIP    := $(PY) -m pip --disable-pip-version-check
QUIET_PIP := { grep -v -E '^WARNING: Location .* is ignored' || true; }

.PHONY: help setup book test check-book clean

help:
	@echo "make book   - execute the notebooks (profile $(PROFILE)) and build book/_build/html"
	@echo "make test   - run tests/, every notebook (smoke profile) under nbval, and build the smoke book strictly"
	@echo "make check-book - make book, then a Chromium screenshot of every page (PROFILE=smoke for a quick look)"
	@echo "make clean  - remove build products (book/_build, book/notebooks, build/)"

setup:
	@if [ ! -x "$(PY)" ]; then \
	  echo "creating $(VENV) with $$($(PYTHON) --version)"; \
	  $(PYTHON) -m venv $(VENV); \
	fi
	@want="$$(cat requirements.txt pyproject.toml | sha256sum | cut -d' ' -f1)"; \
	if [ "$$(cat $(STAMP) 2>/dev/null)" != "$$want" ]; then \
	  echo "installing requirements.txt and faceedit_nb into $(VENV) ..."; \
	  $(PIP) install -q -r requirements.txt 2>&1 | $(QUIET_PIP); \
	  $(PIP) install -q -e . --no-deps 2>&1 | $(QUIET_PIP); \
	  echo "$$want" > $(STAMP); \
	else \
	  echo "$(VENV) is up to date with requirements.txt and pyproject.toml"; \
	fi

# First the models several chapters share, trained up front two at a time (a progress line per model at
# most every 30 s), then the chapters, two at a time, which load them from the model cache.
book: setup
	$(PY) -m faceedit_nb.prebuild --profile $(PROFILE) --workers $(PREBUILD_WORKERS)
	$(PY) -m faceedit_nb.book --profile $(PROFILE) --workers $(BOOK_WORKERS)

# The notebooks get the smoke parameters injected (not executed) into build/smoke/, and nbval executes
# them in the same pytest run as tests/, so CI reads one closing line. Exit code 5 (no tests collected)
# is a failure: an empty run must never look green. Each of the JOBS workers (and the notebook kernels it
# starts) gets TEST_THREADS torch/OpenMP threads: with 2 workers of 2 threads on 2 cores, OpenMP's
# spinning threads made a small evaluation 16x slower (40 s against 2.5 s, measured).
# Tests train every model from scratch in build/test-cache (never reuse the user's model cache).
# Then the smoke book is built strictly in a copy of book/ (TEST_BOOK), as `make book` builds it: nbval only
# sees errors, the build also sees a missing glue key or reference (warnings are errors), and the runner's
# HTML check sees what a reader would (a table shown as pipe text, a role left as text, a broken link or
# image). Its notebooks load the models nbval trained (same build/test-cache). NO_BOOK=1 skips it.
TEST_BOOK ?= build/test-book
test: setup
	rm -rf build/smoke build/test-cache $(TEST_BOOK)
	$(PY) -m faceedit_nb.book --profile smoke --prepare-only --out build/smoke
	@nbs="$$(if [ -d build/smoke ]; then find build/smoke -name '*.ipynb' | sort | tr '\n' ' '; fi)"; \
	cmd="$(PY) -m pytest -n $(JOBS) --dist loadfile --nbval-lax --nbval-current-env tests $$nbs $(PYTEST_ARGS)"; \
	echo "$$cmd"; \
	export FACEEDIT_CACHE=$(CURDIR)/build/test-cache OMP_NUM_THREADS=$(TEST_THREADS) MKL_NUM_THREADS=$(TEST_THREADS); \
	rc=0; $$cmd || rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests: failing" >&2; rc=1; fi; \
	brc=0; \
	if [ -z "$${NO_BOOK:-}" ]; then \
	  echo "make test: building the smoke book strictly in $(TEST_BOOK)"; \
	  mkdir -p $(TEST_BOOK); \
	  tar -C book --exclude=./_build --exclude=./notebooks --exclude=./_generated -cf - . | tar -C $(TEST_BOOK) -xf -; \
	  $(PY) -m faceedit_nb.book --profile smoke --book-dir $(TEST_BOOK) --workers $(JOBS) || brc=$$?; \
	  if [ $$brc -ne 0 ]; then echo "make test: the strict smoke book build FAILED (see above)" >&2; \
	  echo "book: 0 passed, 1 failed"; else echo "book: 1 passed, 0 failed"; fi; \
	fi; \
	if [ $$rc -ne 0 ]; then exit $$rc; fi; \
	exit $$brc

# The book (PROFILE, default cpu: what readers see; PROFILE=smoke for a quick look), then one full-page
# screenshot per page with Debian's chromium (apt-get install chromium), for a person to look at.
check-book: book
	$(PY) scripts/screenshot_book.py

clean:
	rm -rf book/_build book/notebooks build
