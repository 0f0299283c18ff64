# The README's two commands:
#   make demo   set up .venv (if missing) and run the main job
#   make test   set up .venv with the test dependencies and run the whole test suite
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
# constraints.txt pins exact versions (torch==2.13.0: its CPU wheel is on every dev machine).
INSTALL := $(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt

# Debian packages the tests need: chromium (the browser test), fonts-noto-cjk (Chinese tokens in
# heatmaps), fortunes-zh (the Tang-poem corpus), and the translations (gettext catalogues in
# /usr/share/locale) of the packages from coreutils on, which the `languages` corpus is read from
# (qkv/data/languages.py, DEBIAN_PACKAGES). Installed only where missing.
DEBIAN_PACKAGES := chromium fonts-noto-cjk fortunes-zh coreutils tar grep sed findutils diffutils bash dpkg apt libc-l10n gettext binutils-common git gnupg-l10n wget make procps psmisc login libglib2.0-data libgtk-3-common shared-mime-info

.PHONY: demo test bench notebooks clean system-packages

demo: $(VENV)/.installed
	$(BIN)/qkv demo

test: $(VENV)/.installed-test system-packages
	$(BIN)/python -m pytest

system-packages:
	@missing=$$(for p in $(DEBIAN_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages: $$missing"; \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q $$missing; \
	fi

# Run docs/*.ipynb top to bottom in a fresh kernel and save them with their outputs; after a
# change to a notebook or to what it shows (tests/test_notebooks.py fails until then).
notebooks: $(VENV)/.installed-test
	$(BIN)/python docs/run_notebooks.py

# Every row of issue 15 against its reference, measured in one run (about 12 minutes on 2 cores;
# `BENCH_ARGS=--quick` for about 5). Not part of `make test`. benchmarks/README.md says more.
bench: $(VENV)/.installed-test
	$(BIN)/python benchmarks/run.py --json runs/bench.json $(BENCH_ARGS)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: $(BIN)/python pyproject.toml constraints.txt
	$(INSTALL) -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(INSTALL) -e '.[test]'
	touch $@

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis
