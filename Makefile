# thaw — the two commands a newcomer needs: `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

export THAW_DATA ?= $(abspath ../shared/data)
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export THAW_THREADS ?= 1
DEMO_DB ?= var/demo.sqlite

.PHONY: setup browser demo test test-fast bench-quality bench-quality-smoke bench-serve clean

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) on PATH"; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check --upgrade "pip>=24,<27"
	$(BIN)/pip install --quiet --disable-pip-version-check -e ".[dev]"
	@touch $(STAMP)

setup: $(STAMP)  ## build the environment only

demo: setup  ## MovieLens 100K: ingest, evaluate thaw beside the baselines, train, then serve it (DEMO_SERVE=0: stop before serving)
	THAW=$(BIN)/thaw DEMO_DB=$(DEMO_DB) scripts/demo.sh

browser:  ## Debian's chromium for the dashboard's browser tests (installed by apt, never downloaded by playwright)
	@command -v chromium >/dev/null || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium fonts-dejavu-core fonts-liberation; }

test: setup browser  ## the whole test suite (PostgreSQL/MariaDB tests skip with a reason when no server answers)
	$(BIN)/python -m pytest -q

test-fast: setup
	$(BIN)/python -m pytest -q -m "not slow and not encoder"

bench-serve: setup  ## serving latency/throughput (CiteULike, wrk from Debian, else the Python load generator) and freshness
	@command -v wrk >/dev/null || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends wrk; } \
		|| echo "wrk not installed; using bench/loadgen/pyload.py"
	$(BIN)/python bench/bench_serve.py

bench-quality: setup  ## the quality benchmarks of docs/benchmarks.md, 5 folds (hours on 2 cores): baselines, thaw + ablations, GAN ablation
	$(BIN)/python bench/bench_quality.py
	$(MAKE) bench-model bench-gan

.PHONY: bench-model
bench-model: setup  ## thaw against the baselines (targets of issue 4) and its ablations -> bench/results/model-*.json, docs/benchmarks/model.md
	mkdir -p var/bench-model
	$(BIN)/python bench/bench_model.py --only citeulike-cold --results bench/results && cp var/bench-model-reports.pkl var/bench-model/cold.pkl
	$(BIN)/python bench/bench_model.py --only citeulike-warm --results bench/results && cp var/bench-model-reports.pkl var/bench-model/warm.pkl
	$(BIN)/python bench/bench_model.py --only movielens --ablations --results bench/results && cp var/bench-model-reports.pkl var/bench-model/ml.pkl
	$(BIN)/python bench/bench_model.py --combine var/bench-model/cold.pkl var/bench-model/warm.pkl var/bench-model/ml.pkl

.PHONY: bench-ablations
bench-ablations: setup  ## thaw's parts switched off one at a time on MovieLens, 5 folds (about 15 min) -> docs/benchmarks/ablations.md
	$(BIN)/python bench/bench_model.py --only movielens --ablations --models thaw,thaw-no-id-dropout,thaw-no-attention,thaw-no-whitening,thaw-tfidf,thaw-bpr,thaw-aldi,thaw-no-prior,thaw-fixed-prior --results bench/results/ablations --markdown docs/benchmarks/ablations.md

.PHONY: bench-ablations-citeulike
bench-ablations-citeulike: setup  ## thaw's parts switched off one at a time on CiteULike cold items, its settings, 2 folds (about 40 min) -> docs/benchmarks/ablations-citeulike.md
	$(BIN)/python bench/bench_model.py --only citeulike-cold --ablations --folds 2 --models thaw,thaw-no-id-dropout,thaw-no-attention,thaw-no-whitening,thaw-tfidf,thaw-bpr,thaw-aldi,thaw-no-borrowed-ids --results bench/results/ablations-citeulike --markdown docs/benchmarks/ablations-citeulike.md

bench-quality-smoke: setup  ## the CI-sized version (ml-100k, 1 fold) into var/bench-smoke
	$(BIN)/python bench/bench_quality.py --smoke --results var/bench-smoke/results --docs var/bench-smoke/quality.md --db-dir var/bench-smoke/db

.PHONY: bench-fairness
bench-fairness: setup  ## cold-item exposure vs accuracy of the re-rankings (ml-100k 5 folds, citeulike-a 2) -> bench/results/fairness.json, docs/benchmarks/fairness.md
	$(BIN)/python bench/bench_fairness.py

.PHONY: bench-ann
bench-ann: setup  ## HNSW vs exact scan on a synthetic 1M x 64-d catalogue -> bench/results/ann.json, docs/benchmarks/ann.md
	$(BIN)/python bench/bench_ann.py

clean:
	rm -rf var build dist .pytest_cache

.PHONY: bench-distributed bench-privacy
bench-distributed: setup  ## thaw on 2 processes (DDP over gloo) vs 1, ml-100k 5 folds -> bench/results/distributed.json, docs/benchmarks/distributed.md
	$(BIN)/python bench/bench_distributed.py

bench-privacy: setup  ## user-level DP-SGD (epsilon 8, 1) vs non-private, ml-100k 5 folds -> bench/results/privacy.json, docs/benchmarks/privacy.md
	$(BIN)/python bench/bench_privacy.py

.PHONY: bench-gan
bench-gan: setup  ## GAR adversarial generator and generated feedback vs thaw, cold-item on citeulike-a + ml-100k -> bench/results/gan.json, docs/benchmarks/gan.md
	$(BIN)/python bench/bench_gan.py
