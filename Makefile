# Two commands on a fresh machine: `make run` and `make test`. Both create .venv themselves.
PY ?= python3
VENV := .venv
UV := .tools/bin/uv
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(VENV)

.PHONY: run test bench lint setup clean

# uv is not preinstalled: bootstrap it with pip into a private folder, then let it build .venv.
$(UV):
	$(PY) -m venv .tools
	.tools/bin/pip install --quiet --disable-pip-version-check "uv>=0.4"

$(VENV)/.synced: $(UV) pyproject.toml uv.lock
	$(UV) sync --python $(PY) --quiet
	@touch $@

setup: $(VENV)/.synced

run: setup
	$(VENV)/bin/python -m bot serve

test: setup
	$(VENV)/bin/python -m pytest -q $(PYTEST_ARGS)

bench: setup
	$(VENV)/bin/python -m bench

lint: setup
	$(VENV)/bin/ruff check bot tests bench

clean:
	rm -rf $(VENV)
