# quantal — the two set-up commands are `make demo` and `make test`; both build what they need.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
LAVA_VENV := .venv-lava
PIP_FLAGS := --disable-pip-version-check -q
# Python 3.10 for Lava: an explicit LAVA_PY, else pyenv's 3.10.13, else python3.10 on PATH.
LAVA_PY ?= $(shell for p in "$$(pyenv root 2>/dev/null)/versions/3.10.13/bin/python3.10" \
		"$$(command -v python3.10 2>/dev/null)"; do \
		[ -n "$$p" ] && [ -x "$$p" ] && "$$p" -c 'import sys; assert sys.version_info[:2] == (3, 10)' 2>/dev/null \
		&& { echo "$$p"; break; }; done)

.PHONY: demo test lint lava-env apt-deps bench clean

$(VENV)/.stamp: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install $(PIP_FLAGS) --upgrade pip
	$(VENV)/bin/python -m pip install $(PIP_FLAGS) -c constraints.txt -e '.[dev]'
	touch $@

# Lava 0.10 runs only on Python 3.10 with numpy < 2: it gets its own venv, with quantal installed without
# dependencies (the IR and its reference semantics need only numpy and pyyaml).
$(LAVA_VENV)/.stamp: pyproject.toml
	@if [ -z "$(LAVA_PY)" ]; then \
		echo "lava: no Python 3.10 found (set LAVA_PY=/path/to/python3.10); Lava steps are skipped"; \
		if [ "$$CI" = "true" ]; then echo "lava: CI=true, so this is an error"; exit 1; fi; \
	else \
		rm -rf $(LAVA_VENV) && "$(LAVA_PY)" -m venv $(LAVA_VENV) && \
		$(LAVA_VENV)/bin/python -m pip install $(PIP_FLAGS) --upgrade pip && \
		$(LAVA_VENV)/bin/python -m pip install $(PIP_FLAGS) "numpy>=1.24,<2" "pyyaml>=6" "h5py>=3.8" "lava-nc==0.10.0" && \
		$(LAVA_VENV)/bin/python -m pip install $(PIP_FLAGS) --no-deps -e . && \
		$(LAVA_VENV)/bin/python -c "import lava.magma, quantal.compile" && touch $@; \
	fi

lava-env: $(LAVA_VENV)/.stamp

# Debian packages the tests use (idempotent; needs root and the Debian archive).
APT_PACKAGES := dataset-fashion-mnist chromium
apt-deps:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "apt-get install $$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

lint: $(VENV)/.stamp
	$(VENV)/bin/ruff check .

test: $(VENV)/.stamp lava-env apt-deps lint
	$(VENV)/bin/python -m pytest -q

demo: $(VENV)/.stamp lava-env
	$(VENV)/bin/python examples/demo.py --out runs/demo

bench: $(VENV)/.stamp
	$(VENV)/bin/python benchmarks/run.py
	$(VENV)/bin/python benchmarks/graphs.py

clean:
	rm -rf $(VENV) $(LAVA_VENV) runs .pytest_cache .hypothesis
