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

.PHONY: demo test warm lint lava-env peer-envs apt-deps bench clean nir-peers results

$(VENV)/.stamp: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install $(PIP_FLAGS) --upgrade pip
	$(VENV)/bin/python -m pip install $(PIP_FLAGS) -c constraints.txt -e '.[dev]'
	# Norse (a test-only NIR peer) asks for torchvision, which PyPI has only beside a CUDA torch; Norse's NIR
	# import and its neurons need torch alone, so it goes in without its dependencies.
	$(VENV)/bin/python -m pip install $(PIP_FLAGS) --no-deps "norse==1.1.0"
	touch $@

# The first `quantal run` starts warm: the package's modules byte-compiled (an editable install leaves them as
# sources, which every process compiles again where bytecode is not written, as under PYTHONDONTWRITEBYTECODE)
# and hwsim's kernels compiled into Numba's cache; again whenever a source changes (a few seconds when the
# kernels did not).
PKG_DIRS := quantal compile hwsim train targets
$(VENV)/.warm: $(VENV)/.stamp $(shell find $(PKG_DIRS) -name '*.py')
	$(VENV)/bin/python -m compileall -q $(PKG_DIRS)
	$(VENV)/bin/quantal warmup -q
	touch $@

# Lava 0.10 runs only on Python 3.10 with numpy < 2: it gets its own venv, with quantal installed without
# dependencies (the IR and its reference semantics need only numpy and pyyaml), and lava-dl 0.6 (for its NetX
# reader) without its CUDA torch pin (targets/lava/netx_reader.py stands in for its two torch-only imports).
$(LAVA_VENV)/.stamp: pyproject.toml
	@if [ -z "$(LAVA_PY)" ]; then \
		echo "lava: no Python 3.10 found (set LAVA_PY=/path/to/python3.10); Lava steps are skipped"; \
		if [ "$$CI" = "true" ]; then echo "lava: CI=true, so this is an error"; exit 1; fi; \
	else \
		rm -rf $(LAVA_VENV) && "$(LAVA_PY)" -m venv $(LAVA_VENV) && \
		$(LAVA_VENV)/bin/python -m pip install $(PIP_FLAGS) --upgrade pip && \
		$(LAVA_VENV)/bin/python -m pip install $(PIP_FLAGS) "numpy>=1.24,<2" "pyyaml>=6" "h5py>=3.8" "lava-nc==0.10.0" && \
		$(LAVA_VENV)/bin/python -m pip install $(PIP_FLAGS) --no-deps -e . && \
		$(LAVA_VENV)/bin/python -m pip install $(PIP_FLAGS) --no-deps "lava-dl==0.6.0" && \
		$(LAVA_VENV)/bin/python -c "import lava.magma, quantal.compile; from quantal.targets.lava import netx_reader; netx_reader.install_standin(); import lava.lib.dl.netx" && touch $@; \
	fi

lava-env: $(LAVA_VENV)/.stamp

# NIR peers whose pins clash with quantal's venv, each in its own (test-only): sinabs 3.1 pins nir <= 1.0.4
# (installed without its hardware toolchain dependency samna), spyx 1.0 runs on JAX.
SINABS_VENV := .venv-sinabs
SPYX_VENV := .venv-spyx
$(SINABS_VENV)/.stamp: constraints.txt
	rm -rf $(SINABS_VENV) && $(PYTHON) -m venv $(SINABS_VENV)
	$(SINABS_VENV)/bin/python -m pip install $(PIP_FLAGS) -c constraints.txt torch==2.13.0 "nir==1.0.4" \
		"nirtorch==2.0.2" numpy h5py pbr matplotlib
	$(SINABS_VENV)/bin/python -m pip install $(PIP_FLAGS) --no-deps "sinabs==3.1.0"
	$(SINABS_VENV)/bin/python -c "import sinabs.nir" && touch $@
$(SPYX_VENV)/.stamp: constraints.txt
	rm -rf $(SPYX_VENV) && $(PYTHON) -m venv $(SPYX_VENV)
	$(SPYX_VENV)/bin/python -m pip install $(PIP_FLAGS) "spyx==1.0.0" "nir==1.0.8" h5py
	$(SPYX_VENV)/bin/python -c "import spyx.nir" && touch $@
peer-envs: $(SINABS_VENV)/.stamp $(SPYX_VENV)/.stamp

# The agreement table of docs/targets.md (quantal's NIR exports run in each peer, peers' exports in quantal).
nir-peers: $(VENV)/.stamp peer-envs
	$(VENV)/bin/python -m tests.targets.peers

# Debian packages the tests use (idempotent; needs root and the Debian archive).
APT_PACKAGES := dataset-fashion-mnist chromium
apt-deps:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "apt-get install $$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

warm: $(VENV)/.warm

lint: $(VENV)/.stamp
	$(VENV)/bin/ruff check .

test: $(VENV)/.warm lava-env peer-envs apt-deps lint
	$(VENV)/bin/python -m pytest -q

demo: $(VENV)/.warm lava-env
	$(VENV)/bin/python examples/demo.py --out runs/demo

# one table: W1-W4 against PyTorch, snnTorch and Norse, and Lava at batch 1 (needs the Lava venv for that row)
bench: $(VENV)/.warm lava-env
	$(VENV)/bin/python benchmarks/run.py

# Every number in the docs, regenerated (examples/results.py; `make results NAME=s2m` for one of them)
results: $(VENV)/.warm lava-env peer-envs
	$(VENV)/bin/python examples/results.py $(or $(NAME),all)

clean:
	rm -rf $(VENV) $(LAVA_VENV) $(SINABS_VENV) $(SPYX_VENV) runs .pytest_cache .hypothesis
