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

# The first run: a DCGAN with the field's stabilisers (model=dcgan_stable) at 32 px on 16384 procedural posters,
# sized to finish in about 5 minutes of training on 2 idle CPU cores (README: measured time). ARGS adds overrides.
QUICKSTART := model=dcgan_stable model.ngf=32 model.ndf=32 data=synthetic_posters data.resolution=32 \
	data.source.n=16384 data.test_fraction=0.125 trainer.max_epochs=8

train: venv
	$(PY) -m gan_interp.train $(QUICKSTART) $(ARGS)

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
