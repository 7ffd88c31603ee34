# The course's two commands (see README.md):
#   make lab    set up and open the course in JupyterLab
#   make test   set up and run every test: unit tests, static checks and every notebook under nbval
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.mmlab-installed
export OMP_NUM_THREADS ?= 2
export HF_HUB_OFFLINE ?= 1
export TRANSFORMERS_OFFLINE ?= 1
export MPLBACKEND ?= Agg

.PHONY: setup lab test unit notebooks lint sync clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[course,test]"
	touch $(STAMP)

setup: $(STAMP)

lab: setup
	$(BIN)/jupyter lab --ServerApp.root_dir=$(CURDIR) --LabApp.default_url=/lab/tree/notebooks \
	  $(if $(filter 0,$(shell id -u)),--allow-root)

lint: setup
	$(BIN)/ruff check mmlab tests data benchmarks notebooks

unit: setup
	$(BIN)/python -m pytest -q tests

# One notebook after another in a fresh kernel each (never in parallel: torch processes fight over 2 cores).
notebooks: setup
	MPLBACKEND=module://matplotlib_inline.backend_inline $(BIN)/python -m pytest -q -p no:cacheprovider \
	  --nbval-lax --nbval-current-env --nbval-cell-timeout=600 --durations=0 notebooks/*.ipynb

test: lint unit notebooks

sync: setup
	$(BIN)/jupytext --sync notebooks/*.py

clean:
	rm -rf $(VENV) .pytest_cache
