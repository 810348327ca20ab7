# `make test` and `make demo` do all set-up: they create .venv and install meerkat into it once.
VENV ?= .venv
PY := $(VENV)/bin/python
# Never wait on the model hub: everything meerkat runs here is built from local files.
export HF_HUB_OFFLINE ?= 1

.PHONY: test demo ablation clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e ".[dev]"
	touch $@

test: $(VENV)/.installed
	$(PY) -m pytest

# The whole pipeline on the procedural world: generate → train (3 stages) → evaluate → chat.
demo: $(VENV)/.installed
	$(PY) -m demo.pipeline

# The demo's training with and without the OT and AC losses, one comparison table.
ablation: $(VENV)/.installed
	$(PY) -m demo.ablation

clean:
	rm -rf $(VENV) .pytest_cache
