# gan-interp: the two commands are `make train` and `make test`; both set up .venv on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: venv install train test test-slow lint format bench clean-venv

venv: $(STAMP)

# torch/torchvision first, pinned to the releases on this machine's disk (the pyproject ranges admit them).
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: venv

train: venv
	$(PY) -m gan_interp.train model=dcgan data=synthetic_posters $(ARGS)

test: venv
	$(PY) -m pytest -q $(ARGS)

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: venv
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

test-slow: venv
	$(PY) -m pytest -q -m slow $(ARGS)

bench: venv
	$(PY) -m benchmarks $(ARGS)

clean-venv:
	rm -rf $(VENV)
