# The README's two commands: `make bench` (the main job) and `make test`.
# Both bootstrap a local .venv by themselves; a second run rebuilds nothing.
VENV   ?= .venv
PY     := $(VENV)/bin/python
STACK  := $(VENV)/.pyg-hgconv-stack
DEVENV := $(VENV)/.pyg-hgconv-installed
KERNELS := tvconv/_lib/tvconv_kernels.so pyg_hgconv/_lib/pyg_hgconv_kernels.so

.PHONY: setup test lint bench clean

setup: $(DEVENV) $(KERNELS)

# torch 2.13.0 (CPU), torch-geometric 2.7.0 and the four compiled extensions.
$(STACK): tools/bootstrap.sh
	VENV=$(VENV) bash tools/bootstrap.sh

# This project, editable, with the dev tools (pytest, hypothesis, ruff).
$(DEVENV): $(STACK) pyproject.toml
	$(PY) -m pip install -q --disable-pip-version-check --no-build-isolation -e '.[dev]'
	touch $@

# The fused CPU kernels of TVConv and of the clustering (optional: without
# them the pure-PyTorch paths run).
tvconv/_lib/tvconv_kernels.so: $(DEVENV) tvconv/csrc/per_pixel_conv.cpp tools/build_kernels.py
	$(PY) tools/build_kernels.py --only tvconv_kernels

pyg_hgconv/_lib/pyg_hgconv_kernels.so: $(DEVENV) $(wildcard pyg_hgconv/csrc/*.cpp) \
		$(wildcard pyg_hgconv/csrc/*.h) tools/build_kernels.py
	$(PY) tools/build_kernels.py --only pyg_hgconv_kernels

lint: $(DEVENV) $(KERNELS)
	$(PY) -m ruff check .

test: lint
	$(PY) -m pytest

bench: $(DEVENV) $(KERNELS)
	$(PY) -m benchmarks.irregular_conv

clean:
	rm -rf $(VENV) tvconv/_lib pyg_hgconv/_lib results .pytest_cache .hypothesis .ruff_cache
