# The two entry points the README promises: `make run` and `make test`.
# Both install everything they need into .venv from PyPI first.
VENV ?= .venv
SPECS ?= examples/quickstart
PYTHON ?= python3

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $@

.PHONY: install run test lint
install: $(VENV)/.installed

run: install
	$(VENV)/bin/wnr run --specs $(SPECS)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy --strict reconciler

test: lint
	$(VENV)/bin/pytest
