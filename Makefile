# One command per chore. `make run` and `make test` set everything up on a fresh clone.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
HOST   ?= 127.0.0.1
PORT   ?= 8000
STAMP   = $(VENV)/.installed
# torch and transformers live in their own environment: `make test` never imports them
VALIDATION_VENV ?= .venv-validation
VBIN    = $(VALIDATION_VENV)/bin
VSTAMP  = $(VALIDATION_VENV)/.installed

.PHONY: run test lint openapi bench bench-planner bench-serving bench-load bench-writes measure accuracy measure-hf measure-lora clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)  ## serve on HOST:PORT (default 127.0.0.1:8000)
	HOST=$(HOST) PORT=$(PORT) $(BIN)/python -m service serve

test: $(STAMP)  ## the whole test suite
	$(BIN)/python -m pytest

lint: $(STAMP)  ## static checks
	$(BIN)/ruff check service tests benchmarks scripts migrations validation

$(VSTAMP): pyproject.toml
	test -x $(VBIN)/python || $(PYTHON) -m venv $(VALIDATION_VENV)
	$(VBIN)/python -m pip install --quiet --upgrade pip
	$(VBIN)/python -m pip install --quiet 'torch==2.13.0' -e '.[validation]'
	$(VBIN)/python -m pip install --quiet 'bitsandbytes>=0.45' || echo "bitsandbytes did not install: 8-bit AdamW is not measured"
	touch $(VSTAMP)

measure: $(VSTAMP)  ## measure real PyTorch implementations on the CPU (validation/measurements/), then ACCURACY.md
	$(VBIN)/python validation/measure.py
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
