# One command per chore. `make run` and `make test` set everything up on a fresh clone.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
HOST   ?= 127.0.0.1
PORT   ?= 8000
STAMP   = $(VENV)/.installed
# pinned installs: requirements/lock.txt (runtime, the Dockerfile's) and requirements/dev-lock.txt
# (runtime + the dev extra, .venv's), both compiled from pyproject.toml by `make lock`
LOCK     = requirements/lock.txt
DEV_LOCK = requirements/dev-lock.txt
UV_VERSION ?= 0.13.9
# for CPython 3.11 on Linux x86_64 (this machine, CI, the image); the dev lock keeps the runtime lock's pins
UV_COMPILE = --quiet --python-version 3.11 --python-platform x86_64-unknown-linux-gnu \
             --custom-compile-command 'make lock' $(LOCK_FLAGS)
LINT_PATHS = service tests benchmarks scripts migrations validation
# torch and transformers live in their own environment: `make test` never imports them
VALIDATION_VENV ?= .venv-validation
VBIN    = $(VALIDATION_VENV)/bin
VSTAMP  = $(VALIDATION_VENV)/.installed

.PHONY: run test lint lock lock-upgrade openapi bench bench-planner bench-serving bench-load bench-writes measure measure-recurrent-acts accuracy measure-hf measure-lora clean

$(STAMP): pyproject.toml $(DEV_LOCK)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r $(DEV_LOCK)
	$(BIN)/python -m pip install --quiet --no-deps -e .
	$(BIN)/python -m pip check  # a dependency that pyproject.toml names and the lock lacks: run `make lock`
	touch $(STAMP)

run: $(STAMP)  ## serve on HOST:PORT (default 127.0.0.1:8000)
	HOST=$(HOST) PORT=$(PORT) $(BIN)/python -m service serve

test: lint  ## the lint, then the whole test suite (`pytest -m "not slow"` for a quick run)
	$(BIN)/python -m pytest

lint: $(STAMP)  ## ruff's checks and its formatting, as the code base keeps them
	$(BIN)/ruff check $(LINT_PATHS)
	$(BIN)/ruff format --check $(LINT_PATHS)

lock:  ## recompile the locks from pyproject.toml with uv, keeping the pins it still allows
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet 'uv==$(UV_VERSION)'
	$(BIN)/uv pip compile $(UV_COMPILE) pyproject.toml -o $(LOCK)
	$(BIN)/uv pip compile $(UV_COMPILE) pyproject.toml --extra dev --constraint $(LOCK) -o $(DEV_LOCK)

lock-upgrade:  ## recompile the locks at the newest versions pyproject.toml allows
	$(MAKE) --no-print-directory lock LOCK_FLAGS=--upgrade

$(VSTAMP): pyproject.toml
	test -x $(VBIN)/python || $(PYTHON) -m venv $(VALIDATION_VENV)
	$(VBIN)/python -m pip install --quiet --upgrade pip
	$(VBIN)/python -m pip install --quiet 'torch==2.13.0' -e '.[validation]'
	$(VBIN)/python -m pip install --quiet 'bitsandbytes>=0.45' || echo "bitsandbytes did not install: 8-bit AdamW is not measured"
	touch $(VSTAMP)

measure: $(VSTAMP)  ## measure real PyTorch implementations on the CPU (validation/measurements/), then ACCURACY.md
	$(VBIN)/python validation/measure.py
	$(VBIN)/python validation/measure_recurrent_acts.py
	$(MAKE) accuracy

measure-recurrent-acts: $(VSTAMP)  ## re-measure Mamba, Mamba-2 and RWKV-4 layers' activations on the CPU, then ACCURACY.md
	$(VBIN)/python validation/measure_recurrent_acts.py
	$(MAKE) accuracy

accuracy: $(STAMP)  ## ACCURACY.md from the recorded measurements and the estimator (no torch)
	$(BIN)/python -m validation.accuracy

openapi: $(STAMP)  ## rewrite openapi/openapi.json from the app
	$(BIN)/python scripts/write_openapi.py

bench: $(STAMP)  ## calculator throughput against /healthz
	$(BIN)/python benchmarks/bench_calculators.py

bench-planner: $(STAMP)  ## planner: configurations per second, cold POST /v1/plan times
	$(BIN)/python benchmarks/bench_planner.py

bench-serving: $(STAMP)  ## serving plans per second against /healthz
	$(BIN)/python benchmarks/bench_serving.py

bench-load: $(STAMP)  ## a mix of catalog-backed requests under 64 connections against /healthz
	$(BIN)/python benchmarks/bench_load.py

bench-writes: $(STAMP)  ## 256 concurrent catalog writers with reads and plans, SQLite and Postgres, 1 and 2 workers
	$(BIN)/python benchmarks/bench_writes.py

measure-hf: $(STAMP)  ## re-measure validation/measurements/hf_models.json with transformers (needs the validation extra)
	@$(BIN)/python -c "import torch, transformers" 2>/dev/null || { echo "needs the validation extra: $(BIN)/pip install torch==2.13.0 && $(BIN)/pip install -e '.[dev,validation]'"; exit 1; }
	$(BIN)/python validation/measure_hf_models.py

measure-lora: $(STAMP)  ## re-measure validation/measurements/lora_params.json with transformers and peft (needs the validation extra)
	@$(BIN)/python -c "import torch, transformers, peft" 2>/dev/null || { echo "needs the validation extra: $(BIN)/pip install torch==2.13.0 && $(BIN)/pip install -e '.[dev,validation]'"; exit 1; }
	$(BIN)/python validation/measure_lora.py

clean:
	rm -rf $(VENV) $(VALIDATION_VENV) .pytest_cache .hypothesis

.PHONY: web-vendor
web-vendor:  ## re-vendor the page's charting library from web/package-lock.json (needs npm; `make run` does not)
	cd web && npm ci --ignore-scripts --no-audit --no-fund
	cp web/node_modules/chart.js/dist/chart.umd.min.js service/static/vendor/chart.umd.min.js
	cp web/node_modules/chart.js/LICENSE.md service/static/vendor/chart.js.LICENSE.md
