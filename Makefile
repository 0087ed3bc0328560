# Two commands matter: `make demo` and `make test`. Both set everything up.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
DEMO_DB ?= demo.duckdb
PORT ?= 8501
PYTHON ?= python3

.PHONY: install demo test test-all lint typecheck bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# The CPU build of torch first, pinned, so nothing later pulls a CUDA build.
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[all,dev]'
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(VENV)/bin/libra demo build --db $(DEMO_DB)
	$(VENV)/bin/libra demo score --db $(DEMO_DB)
	$(VENV)/bin/libra app --db $(DEMO_DB) --port $(PORT)

# The fast tier: unit and integration tests on a DuckDB file, the store contract on both
# backends (about 4 minutes on two cores). See "Tests" in the README.
test: install
	$(PY) -m pytest --durations=25

# Every tier: also the real browser, Ray at size, kill and load at size, object storage,
# the notebook, the quality floors on ../shared/data, and every test on both backends.
test-all: install
	$(PY) -m pytest --all --durations=25

lint: install
	$(VENV)/bin/ruff check .

typecheck: install
	$(VENV)/bin/mypy

bench: install
	$(PY) bench/ingest.py
	$(PY) bench/judge_cost.py
	$(PY) bench/dashboard.py

clean:
	rm -rf $(VENV) $(DEMO_DB) .pytest_cache artifacts
