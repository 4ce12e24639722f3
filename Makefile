# The two commands of the README:
#   make demo   - set up (first time) and run the main job on the embedded default benchmark
#   make test   - set up (first time) and run the test suite (what CI runs)
# Set-up creates .venv with torch 2.14.1 + torchvision 0.29.1 and this package (editable).

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup demo test docs bench clean

setup: $(STAMP)

$(STAMP): setup.py pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/nasbench-xfer demo

test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(PY) -m pytest -q -n auto --maxprocesses 4 --dist loadfile

docs: $(STAMP)
	$(VENV)/bin/mkdocs build --strict -d site

clean:
	rm -rf $(VENV) build dist *.egg-info runs site
