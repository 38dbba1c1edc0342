# The README's two commands: `make run` and `make test`. Everything else is a helper.
PYTHON ?= python3
# The packages are installed without bytecode (pip --no-compile, below): Python writes it for
# each module the first time a process imports it. An environment with PYTHONDONTWRITEBYTECODE
# set would have every process (each Worker, Celery worker and test) compile all it imports
# from source again; not here.
unexport PYTHONDONTWRITEBYTECODE
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install run test lint format bench chaos test-unit test-integration test-e2e browser clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "scanhub needs Python 3.11 or newer (set PYTHON=...)")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# --no-compile: no bytecode for every installed file up front (botocore, moto and the
	# rest would take a minute of CPU); Python compiles what is imported, once, on first use
	# (PYTHONDONTWRITEBYTECODE is unexported above).
	$(BIN)/python -m pip install --quiet --no-compile -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

run: install
	$(BIN)/python -m deploy.launcher $(ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy .

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# The status-page test drives a real headless browser: Debian's chromium and chromium-driver
# (matching versions from the distribution). Installed here when running as root with apt;
# otherwise that one test is skipped, and this says which packages are missing.
browser:
	@if command -v chromedriver >/dev/null && { command -v chromium || command -v chromium-browser; } >/dev/null; then \
		:; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing Debian's chromium and chromium-driver for the status-page browser test"; \
		{ timeout 300 apt-get update -qq && DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -qq chromium chromium-driver; } >/dev/null \
			|| echo "could not install chromium chromium-driver: the status-page browser test will be skipped"; \
	else \
		echo "missing Debian packages chromium and chromium-driver (apt-get install chromium chromium-driver, as root): the status-page browser test will be skipped"; \
	fi

# Tests are independent (each integration or end-to-end test starts its own Redis, processes on
# free ports and network namespaces of its own): two at a time (pytest-xdist), layer by layer.
# End-to-end tests marked `alone` (the quick bench, whose figures come from short load runs)
# run after the rest, one at a time. The browser for the status-page test is installed
# meanwhile (it is only needed by the end-to-end layer).
test: install
	@$(MAKE) --no-print-directory browser > $(VENV)/browser-install.log 2>&1 & browser=$$!; \
	status=0; \
	{ $(MAKE) --no-print-directory lint \
		&& $(BIN)/python -m pytest -q -m unit -n 2 \
		&& $(BIN)/python -m pytest -q -m integration -n 2; } || status=$$?; \
	wait $$browser; cat $(VENV)/browser-install.log; \
	[ $$status -eq 0 ] && $(MAKE) --no-print-directory test-e2e

test-unit: install
	$(BIN)/python -m pytest -q -m unit

test-integration: install
	$(BIN)/python -m pytest -q -m integration

test-e2e: install
	$(BIN)/python -m pytest -q -m "e2e and not alone" -n 2 --dist loadgroup
	$(BIN)/python -m pytest -q -m "e2e and alone"

# `make bench RULES=/path/to/rules` measures with a rule directory of your own; BENCH_ARGS adds options.
bench: install
	$(BIN)/python -m bench $(if $(RULES),--rules $(RULES)) $(BENCH_ARGS)
	$(BIN)/python -m bench.cache
	$(BIN)/python -m bench.startup

# Faults injected one at a time into a loaded local cluster; prints what each costs.
chaos: install
	$(BIN)/python -m bench.chaos $(CHAOS_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
