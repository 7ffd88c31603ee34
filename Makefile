# The course's two commands (see README.md):
#   make lab    set up and open the course in JupyterLab
#   make test   set up and run every test: unit tests, static checks and every notebook under nbval
# More checks:
#   make browser-test    every lesson in JupyterLab in headless Chromium: Run All, figures, the main widget
#   make runtime-report  time and peak memory of every lesson -> benchmarks/RESULTS.md
# Both take LESSONS="notebooks/00_setup.ipynb ..." to check only some lessons.
PYTHON ?= python3
VENV   ?= .venv
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
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[course,test]"
	touch $(STAMP)

setup: $(STAMP)

# Kernels inherit the server's environment: figures need the inline backend there, not the Agg set above.
lab: setup
	MPLBACKEND=$(INLINE) $(BIN)/jupyter lab --ServerApp.root_dir=$(CURDIR) --LabApp.default_url=/lab/tree/notebooks \
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
	    $(SUDO) apt-get update -qq && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
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
