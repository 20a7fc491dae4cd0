# The two commands a fresh machine needs: `make serve` and `make test`.
# Both create .venv and install obsrelay into it on first use.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SERVE_STAMP := $(VENV)/.installed-server

CHROMIUM ?= /usr/bin/chromium
NGINX ?= /usr/sbin/nginx

.PHONY: serve test test-fast lint style typecheck pytest lowest screenshots bench clean chromium nginx

$(BIN)/python:
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "obsrelay needs Python 3.11 or newer"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# `make serve`: what serving needs (the [server] extra), no test tools.
$(SERVE_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[server]'
	touch $(SERVE_STAMP)

# `make test` and the other targets: the service, the dev tools and the benchmarks' peer.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[server,dev,bench]'
	touch $(STAMP) $(SERVE_STAMP)

serve: $(SERVE_STAMP)
	$(BIN)/obsrelay serve

lint: style typecheck

style: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# At the lowest priority: beside the tests (make test) it takes only the CPU they leave.
typecheck: $(STAMP)
	nice -n 19 $(BIN)/mypy

# A Debian package that some tests need, installed when its program ($(2)) is missing;
# where that cannot be done those tests are skipped, saying so (under CI=true they fail).
define debian_package
@test -x $(2) || { \
	  echo "Installing Debian's $(1) for $(3)"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo "sudo -n" ); \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q $(1) >/dev/null 2>&1 || \
	  { $$SUDO apt-get update -q >/dev/null 2>&1 && \
	    $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q $(1) >/dev/null 2>&1; } || \
	  echo "warning: could not install $(1); $(3) will be skipped"; }
endef

# The console's browser tests drive Debian's Chromium.
chromium:
	$(call debian_package,chromium,$(CHROMIUM),the browser tests)

# The reverse-proxy test runs deploy/nginx/obsrelay.conf in Debian's nginx (the
# package's service is not started: the test runs its own nginx).
nginx:
	$(call debian_package,nginx,$(NGINX),the reverse-proxy test)

# The style check first, as it takes a second; then mypy beside the tests: on a fresh
# checkout it takes 24 s of one core, at the lowest priority (see typecheck), so that it
# runs in what the tests leave free (their waits on servers, coverage's report) instead
# of slowing their start, when the three workers want both cores.
test: style
	@$(MAKE) --no-print-directory -j2 typecheck pytest

# Three workers on this 2-core machine: much of the suite waits on servers and I/O. Each
# test module runs on one worker, so that a module's server, browser or network of
# processes starts once; the longest modules go first (tests/conftest.py says which).
pytest: $(STAMP) chromium nginx
	$(BIN)/pytest -n 3 --dist loadfile --no-loadscope-reorder

# The declared lower bounds really work: a venv of its own with each direct dependency
# of the service at the lowest version pyproject.toml allows (their own dependencies
# resolved as usual), where a smoke test starts the server and sends a job round.
# .ci/run runs it after the suite.
LOWEST := .venv-lowest
$(LOWEST)/.installed: pyproject.toml .ci/lowest_constraints.py
	rm -rf $(LOWEST)
	$(PYTHON) -m venv $(LOWEST)
	$(LOWEST)/bin/python -m pip install --quiet --upgrade pip
	$(PYTHON) .ci/lowest_constraints.py > $(LOWEST)/constraints.txt
	$(LOWEST)/bin/python -m pip install --quiet -c $(LOWEST)/constraints.txt -e '.[server]'
	touch $@

lowest: $(LOWEST)/.installed
	@echo "On the lowest declared versions:" $$(cat $(LOWEST)/constraints.txt)
	timeout 300 $(LOWEST)/bin/python .ci/smoke.py

# While working: everything but the tests marked slow, without coverage (its floor is
# for the whole suite). `make test` is what CI runs.
test-fast: $(STAMP)
	$(BIN)/pytest -n 3 --dist loadfile --no-loadscope-reorder -m "not slow" --no-cov

# The browser tests write their screenshots under var/ (ignored); this refreshes the
# committed ones that the README shows. Look at them before committing.
screenshots: $(STAMP) chromium
	OBSRELAY_SCREENSHOTS=docs/screenshots $(BIN)/pytest tests/web/test_console.py --no-cov -q

bench: $(STAMP)
	$(BIN)/python -m bench.jobs

clean:
	rm -rf $(VENV) $(LOWEST) var .pytest_cache .mypy_cache .ruff_cache .hypothesis
