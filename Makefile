# Every target sets itself up: on a fresh machine with only Python 3, `make demo` or `make test`
# creates .venv and installs the package with its dev extra (again whenever pyproject.toml changes).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-dev
# the docs extra is installed on its own (CI never builds the site, so `dev` does not carry it)
DOCS_STAMP := $(VENV)/.installed-docs

.DEFAULT_GOAL := help
.PHONY: help venv demo test fuzz lint bench bench-suite bench-merge docs clean distclean

help:
	@echo "make demo       run examples/demo.py (creates ./demo-table)"
	@echo "make test       run the test suite and ruff"
	@echo "make fuzz       the long profiles (LH_FUZZ=1) of every property test: differential harness, typed-error fuzz, ..."
	@echo "make lint       ruff + mypy"
	@echo "make bench      run benchmarks/bench_core.py (lakehouse vs raw pyarrow, ~5 min)"
	@echo "make bench-suite  the full suite vs pyarrow, deltalake, pyiceberg (10M rows, ~9 min; QUICK=1 for ~2 min)"
	@echo "make bench-merge  upsert/merge, update, delete, reads after deletes vs deltalake, pyiceberg (10M rows; QUICK=1 for 200k)"
	@echo "make docs       build the documentation site into ./site (mkdocs --strict; installs the docs extra)"
	@echo "make venv       create .venv and install the package with its dev extra"
	@echo "make clean      remove build and run artefacts; distclean also removes .venv"

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install -e '.[dev]'
	# moto's S3 server, pinned to what is installed: resolved freely together with s3fs, pip
	# backtracks through dozens of boto3/aiobotocore releases
	$(BIN)/python -m pip freeze --exclude-editable > $(VENV)/constraints.txt
	$(BIN)/python -m pip install -e '.[dev,s3server,azure]' -c $(VENV)/constraints.txt
	# Azurite, the Azure Blob emulator the azure tests start (npm). 3.35.0 is the last release that
	# runs on node < 21. Without npm the Python side still installs; the azure tests skip (fail under CI).
	@if command -v npm >/dev/null 2>&1; then \
		echo "npm install --prefix $(VENV)/azurite azurite@3.35.0"; \
		npm install --prefix $(VENV)/azurite --no-audit --no-fund --loglevel=error azurite@3.35.0; \
	else \
		echo "note: npm not found: Azurite is not installed, the azure tests will be skipped"; \
	fi
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/python examples/demo.py

test: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider
	$(BIN)/ruff check lakehouse tests

# the long profiles of the hypothesis harnesses (CI runs their bounded profiles within `make test`)
# every test module with a long profile behind LH_FUZZ=1 (CI runs their bounded profiles)
FUZZ_TESTS := $(shell grep -l LH_FUZZ tests/test_*.py)
fuzz: $(STAMP)
	LH_FUZZ=1 $(BIN)/python -m pytest -q -p no:cacheprovider $(FUZZ_TESTS)

lint: $(STAMP)
	$(BIN)/ruff check lakehouse tests examples benchmarks
	$(BIN)/mypy lakehouse

$(DOCS_STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -e '.[docs]'
	touch $(DOCS_STAMP)

docs: $(DOCS_STAMP)
	$(BIN)/mkdocs build --strict -d site

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_core.py

bench-suite: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	$(BIN)/python benchmarks/suite.py $(if $(QUICK),--quick,)

bench-merge: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	$(BIN)/python benchmarks/bench_merge.py $(if $(QUICK),--quick,)

clean:
	rm -rf build dist site *.egg-info demo-table benchmarks/results .pytest_cache .hypothesis .mypy_cache .ruff_cache
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)
