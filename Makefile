# The course's two commands (see README.md):
#   make lab    set up and open the course in JupyterLab
#   make test   set up and run every test: unit tests, static checks and every notebook under nbval
# More checks:
#   make browser-test    every lesson in JupyterLab in headless Chromium: Run All, figures, the main widget
#   make runtime-report  time and peak memory of every lesson -> benchmarks/RESULTS.md
# Both take LESSONS="notebooks/00_setup.ipynb ..." to check only some lessons.
PYTHON ?= python3
VENV   ?= .venv
# torch's one pin (environment.yml must match; tests/test_packaging.py checks). On this course's machines pip finds
# a CPU wheel of it. On an ordinary Linux machine PyPI's torch wheel is the multi-GB CUDA build: for a laptop
# without an NVIDIA GPU, use PyTorch's CPU-only index:  make lab TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
TORCH_VERSION := 2.13.0
TORCH_INDEX_URL ?=
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.mmlab-installed
export OMP_NUM_THREADS ?= 2
export HF_HUB_OFFLINE ?= 1
export TRANSFORMERS_OFFLINE ?= 1
export MPLBACKEND ?= Agg

BROWSER_STAMP := $(VENV)/.mmlab-browser-installed
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
INLINE := module://matplotlib_inline.backend_inline

.PHONY: setup lab test unit notebooks lint sync clean browser-deps browser-test runtime-report

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==$(TORCH_VERSION) $(if $(TORCH_INDEX_URL),--index-url $(TORCH_INDEX_URL))
	$(BIN)/pip install -q -e ".[course,test]"
	touch $(STAMP)

setup: $(STAMP)

# JupyterLab for the course: no news prompt or update check (settings written at set-up), the file browser at
# notebooks/ with each lesson once (the jupytext .py twins stay paired on disk but hidden), lesson 0 open.
# Kernels inherit the server's environment: figures need the inline backend there, not the Agg set above.
LAB_SETTINGS  := $(VENV)/share/jupyter/lab/settings
LAB_OVERRIDES := {"@jupyterlab/apputils-extension:notification": {"fetchNews": "false", "checkForUpdates": false}}
LAB_HIDE      := ["__pycache__", "*.pyc", "*.pyo", ".DS_Store", "*~", ".ipynb_checkpoints", "[0-9][0-9]_*.py"]
lab: setup
	mkdir -p $(LAB_SETTINGS) && printf '%s\n' '$(LAB_OVERRIDES)' > $(LAB_SETTINGS)/overrides.json
	MPLBACKEND=$(INLINE) $(BIN)/jupyter lab --ServerApp.root_dir=$(CURDIR)/notebooks \
	  --LabApp.default_url=/lab/tree/00_setup.ipynb \
	  --LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate \
	  '--ContentsManager.hide_globs=$(LAB_HIDE)' \
	  $(if $(filter 0,$(shell id -u)),--allow-root)

lint: setup
	$(BIN)/ruff check mmlab tests browser_tests data benchmarks notebooks

unit: setup
	$(BIN)/python -m pytest -q tests

# One notebook after another in a fresh kernel each (never in parallel: torch processes fight over 2 cores).
notebooks: setup
	MPLBACKEND=$(INLINE) $(BIN)/python -m pytest -q -p no:cacheprovider \
	  --nbval-lax --nbval-current-env --nbval-cell-timeout=600 --durations=0 notebooks/*.ipynb

test: lint unit notebooks

# The real-browser test needs Playwright (the `browser` extra) and a Chromium: Debian's package where apt-get
# exists (Playwright's own browser download cannot work offline), else Playwright's download; MMLAB_CHROMIUM
# names any other Chromium or Chrome executable.
$(BROWSER_STAMP): $(STAMP)
	$(BIN)/pip install -q -e ".[browser]"
	touch $(BROWSER_STAMP)

browser-deps: $(BROWSER_STAMP)
	@if [ -z "$$MMLAB_CHROMIUM" ] && ! command -v chromium >/dev/null 2>&1 \
	  && ! command -v chromium-browser >/dev/null 2>&1 && ! command -v google-chrome >/dev/null 2>&1; then \
	  if command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Debian's chromium"; \
	    ( $(SUDO) apt-get update -qq && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null ) \
	      || { echo "apt-get could not install chromium (see its message above); set MMLAB_CHROMIUM to a browser"; exit 1; }; \
	  else \
	    $(BIN)/playwright install chromium; \
	  fi; \
	fi

# One JupyterLab server and one headless Chromium for all lessons; screenshots in artifacts/browser/.
browser-test: browser-deps
	$(BIN)/python -m pytest -q -p no:cacheprovider --tb=short browser_tests $(foreach l,$(LESSONS),--lesson $(l))

# Every lesson one after another in a fresh kernel: wall time, CPU time, peak memory -> benchmarks/RESULTS.md.
runtime-report: setup
	$(BIN)/python benchmarks/course_runtime.py $(LESSONS)

sync: setup
	$(BIN)/jupytext --sync notebooks/*.py

clean:
	rm -rf $(VENV) .pytest_cache artifacts/browser
