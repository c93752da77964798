# lmforge developer and user entry points. Everything runs inside .venv, created on first use.
#   make quickstart   install, then build a tiny model, pretrain, LoRA-SFT it and chat (offline, CPU, < 10 min)
#   make test         install with test tools, then run the test suite
#   make lint         ruff check + format check + mypy (type check with the [tool.mypy] config)
#   make bench        compare against LLaMA-Factory / TRL on the shared benchmark workloads (../shared/bench)

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
# CPU build of torch by default; GPU users install their own CUDA torch into .venv first (see README).
TORCH_SPEC ?= torch==2.13.0

.PHONY: quickstart test lint format bench lock clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

# torch goes in first: otherwise a dependency's loose "torch" requirement pulls a multi-GB CUDA build.
$(VENV)/.installed: requirements/lock.txt pyproject.toml | $(VENV)/bin/python
	$(PY) -c "import torch" 2>/dev/null || $(PIP) install -q "$(TORCH_SPEC)"
	$(PIP) install -q -r requirements/lock.txt
	$(PIP) install -q --no-deps -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed requirements/lock-dev.txt
	$(PIP) install -q -r requirements/lock-dev.txt
	touch $@

quickstart: $(VENV)/.installed
	PATH="$(abspath $(VENV))/bin:$$PATH" bash examples/quickstart.sh

test: $(VENV)/.installed-dev
	$(PY) -m pytest

lint: $(VENV)/.installed-dev
	$(VENV)/bin/ruff check src tests bench examples
	$(VENV)/bin/ruff format --check src tests bench examples
	$(VENV)/bin/mypy src

format: $(VENV)/.installed-dev
	$(VENV)/bin/ruff format src tests bench examples
	$(VENV)/bin/ruff check --fix src tests bench examples

bench: $(VENV)/.installed
	PATH="$(abspath $(VENV))/bin:$$PATH" bash bench/run_bench.sh

# Refresh the lock from the current .venv (after changing pyproject.toml and testing).
lock:
	{ echo "# Exact versions tested on CPU (Python 3.11). Install torch first (see Makefile), then: pip install -r requirements/lock.txt"; \
	  echo "# Regenerate with: make lock"; \
	  $(PIP) freeze --exclude-editable | grep -viE '^(torch==|pytest|ruff|mypy|librt|pathspec|hypothesis|iniconfig|pluggy|sortedcontainers|py-spy)'; \
	} > requirements/lock.txt

clean:
	rm -rf runs .pytest_cache .ruff_cache build dist src/*.egg-info
