# lmforge developer and user entry points, in virtual environments created on first use:
#   .venv       the user's environment (lmforge and its locked dependencies), what quickstart and bench run in;
#   .venv-test  the same plus the test tools and the optional extras the tests exercise (bitsandbytes, galore),
#               kept apart so that `make test` never changes what `lmforge` loads (and how fast it starts) in .venv.
#   make quickstart   install, then build a tiny model, pretrain, LoRA-SFT it and chat (offline; <2 CPU-min)
#   make test         install into .venv-test with the test tools, then run the test suite
#   make lint         ruff check + format check + mypy (type check with the [tool.mypy] config)
#   make bench        compare against LLaMA-Factory / TRL on the shared benchmark workloads (../shared/bench)

PYTHON   ?= python3
VENV     ?= .venv
TEST_VENV ?= .venv-test
PY       := $(VENV)/bin/python
PIP      := $(PY) -m pip
TEST_PY  := $(TEST_VENV)/bin/python
# CPU build of torch by default; GPU users install their own CUDA torch into .venv first (see README).
TORCH_SPEC ?= torch==2.13.0

.PHONY: quickstart test lint format bench lock clean

%/bin/python:
	$(PYTHON) -m venv $*

# torch goes in first: otherwise a dependency's loose "torch" requirement pulls a multi-GB CUDA build.
# $(1): the venv folder, $(2): the requirements file.
define install
	$(1)/bin/python -c "import torch" 2>/dev/null || $(1)/bin/python -m pip install -q "$(TORCH_SPEC)"
	$(1)/bin/python -m pip install -q -r $(2)
	$(1)/bin/python -m pip install -q --no-deps -e .
	touch $@
endef

$(VENV)/.installed: requirements/lock.txt pyproject.toml | $(VENV)/bin/python
	$(call install,$(VENV),requirements/lock.txt)

$(TEST_VENV)/.installed-dev: requirements/lock.txt requirements/lock-dev.txt pyproject.toml | $(TEST_VENV)/bin/python
	$(call install,$(TEST_VENV),requirements/lock-dev.txt)

quickstart: $(VENV)/.installed
	PATH="$(abspath $(VENV))/bin:$$PATH" bash examples/quickstart.sh

test: $(TEST_VENV)/.installed-dev
	$(TEST_PY) -m pytest

lint: $(TEST_VENV)/.installed-dev
	$(TEST_VENV)/bin/ruff check src tests bench examples docs/*.py
	$(TEST_VENV)/bin/ruff format --check src tests bench examples docs/*.py
	$(TEST_VENV)/bin/mypy src

format: $(TEST_VENV)/.installed-dev
	$(TEST_VENV)/bin/ruff format src tests bench examples docs/*.py
	$(TEST_VENV)/bin/ruff check --fix src tests bench examples docs/*.py

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
