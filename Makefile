# The course's two commands (see README.md):
#   make lab    set up and open the course in JupyterLab
#   make test   set up and run every test: unit tests, static checks and every notebook under nbval
# More checks:
#   make browser-test    every lesson in JupyterLab in headless Chromium: Run All, figures, the main widget
#   make runtime-report  time and peak memory of every lesson -> benchmarks/RESULTS.md
#   make site            the course as a static website in site/ (executed lessons, API, search); make site-test
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

.PHONY: setup lab test unit notebooks lint sync clean browser-deps browser-test runtime-report \
        site site-execute site-test

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
	$(BIN)/ruff check mmlab tests browser_tests data benchmarks notebooks site_src

unit: setup
	$(BIN)/python -m pytest -q tests

# One notebook after another in a fresh kernel each (never in parallel: torch processes fight over 2 cores).
# Each lesson that passes is also written with its outputs to $(EXECUTED) (site_src/executed_copies.py), so that
# `make site` renders this run instead of executing every lesson again.
EXECUTED := build/executed
notebooks: setup
	MPLBACKEND=$(INLINE) $(BIN)/python -m pytest -q -p no:cacheprovider \
	  -p site_src.executed_copies --executed-dir $(EXECUTED) \
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

# The course as a static website in site/ (Sphinx + myst-nb + the book theme; see site_src/conf.py). Nothing is
# executed twice: the lessons come from $(EXECUTED), written by `make notebooks` (nbval); only a lesson without an
# up-to-date copy there (none, or one run from another version of the notebook) is executed, by site-execute.
# Sphinx builds under build/ (myst-nb writes its image folder beside the output folder) and the result moves to site/.
# Offline: MathJax comes from the sphinx-mathjax-offline package, the pages load nothing from other hosts.
SITE_STAMP := $(VENV)/.mmlab-site-installed
$(SITE_STAMP): $(STAMP)
	$(BIN)/pip install -q -e ".[site]"
	touch $(SITE_STAMP)

site-execute: setup
	@stale="$$($(BIN)/python -m site_src.build --executed $(EXECUTED) --list-stale)"; \
	if [ -n "$$stale" ]; then echo "executing for the site: $$stale"; \
	  $(BIN)/python -m site_src.execute --out $(EXECUTED) $$stale; \
	else echo "every lesson has an up-to-date executed copy in $(EXECUTED)"; fi

site: $(SITE_STAMP) site-execute
	$(BIN)/python -m site_src.build --executed $(EXECUTED) --out build/site_src
	rm -rf site build/site_html
	$(BIN)/sphinx-build -q -b html -d build/site_doctrees build/site_src build/site_html/site
	mv build/site_html/site site
	@echo "the course website: site/index.html"

# The built site in headless Chromium (the browser test's Chromium): pages, figures, search, math, solutions.
site-test: browser-deps site
	MMLAB_SITE_DIR=$(CURDIR)/site $(BIN)/python -m pytest -q -p no:cacheprovider --tb=short browser_tests/test_site.py

sync: setup
	$(BIN)/jupytext --sync notebooks/*.py

clean:
	rm -rf $(VENV) .pytest_cache artifacts/browser artifacts/site site build/site_src build/site_html build/site_doctrees $(EXECUTED)
