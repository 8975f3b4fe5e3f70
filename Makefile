# attnaudit build. Targets:
#   make setup   install what builds and tests need (Debian packages, npm test tools)
#   make         build bin/attnaudit and fetch ONNX Runtime's CPU library
#   make ort-gpu ONNX Runtime's official CUDA build (from the onnxruntime-gpu wheel)
#   make demo    run the whole pipeline on the embedded default into runs/
#   make test    every test: Go (with DuckDB and headless Chromium checks) and Python
#   make bench   benchmarks, written to bench/RESULTS.md
#   make convert-checkpoints  re-export the shipped checkpoints in CONTRACT (default 2), same weights
#   make bench-storage  attention storage precisions on the demo run, against float32
#   make tokenizers  the Rust tokenizers library the Go side links (cargo, crates pinned in Cargo.lock)
#   make hf-env  the pinned transformers environment export_hf.py runs in (third_party/hf)
#   make export-hf MODEL=DIR OUT=DIR [SRC_LANG=ko TGT_LANG=en]  a Hugging Face checkpoint to contract 2
ORT_VERSION := 1.30.0
ORT_DIR     := third_party/onnxruntime
ORT_LIB     := $(ORT_DIR)/libonnxruntime.so.1
# ONNX Runtime's official CUDA 13 build: PyPI's onnxruntime-gpu wheel holds the
# C library (onnxruntime/capi/libonnxruntime.so.1.*, a GPU build) next to the
# CUDA provider. The binary finds third_party/onnxruntime-gpu on a GPU machine.
ORT_GPU_VERSION := 1.31.1
ORT_GPU_DIR     := third_party/onnxruntime-gpu
ORT_GPU_LIB     := $(ORT_GPU_DIR)/libonnxruntime.so.1
PYTHON          ?= python3

# Debian packages for the tests: the Python exporter (torch, sentencepiece,
# onnx), spm_encode for tokenizer parity, a Hangul font and Chromium for the
# report tests, and a one-node Slurm cluster (munge, slurmctld, slurmd,
# sbatch; 22.05.8 on Debian 12) that runs docs/scale/slurm-array.sh.
APT_PACKAGES := python3-torch python3-sentencepiece python3-onnx python3-numpy \
	sentencepiece fonts-nanum chromium python3-venv \
	munge slurmctld slurmd slurm-client

# pyarrow, pinned, in its own virtual environment: the tests read attention
# parts with it as users do (store/pyarrow_test.go).
PYARROW_VERSION := 25.0.1
PYARROW_ENV     := third_party/pyarrow
PYARROW_PY      := $(PYARROW_ENV)/bin/python

.PHONY: all build ort ort-gpu setup demo test test-go bench bench-storage validity tokenizers hf-env export-hf hf-tiny
all: build

setup: ort
	@missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi
	cd store/testdata/duckdb && npm ci --silent --no-audit --no-fund
	$(MAKE) $(PYARROW_PY) $(HF_STAMP)

# Hugging Face tokenizers: the tokenizers crate behind a small C interface
# (inference/hftokenizer/ffi), a static library linked into the binary.
TOKENIZERS_LIB := third_party/tokenizers/target/release/libattnaudit_tokenizers.a
TOKENIZERS_SRC := $(wildcard inference/hftokenizer/ffi/src/*.rs) inference/hftokenizer/ffi/Cargo.toml inference/hftokenizer/ffi/Cargo.lock
tokenizers: $(TOKENIZERS_LIB)
$(TOKENIZERS_LIB): $(TOKENIZERS_SRC)
	cargo build --release --locked --quiet --manifest-path inference/hftokenizer/ffi/Cargo.toml --target-dir third_party/tokenizers/target
	@touch $@

# export_hf.py's environment: Debian's torch 1.13 and onnx, plus the pinned
# packages of export/requirements-hf.txt.
# The stamp, not bin/python, is the target: bin/python is a link to the
# system's python, whose old date would make every make rebuild the venv
# (under tests that export while others import transformers from it).
HF_ENV   := third_party/hf
HF_PY    := $(HF_ENV)/bin/python
HF_STAMP := $(HF_ENV)/.installed
hf-env: $(HF_STAMP)
$(HF_STAMP): export/requirements-hf.txt
	rm -rf $(HF_ENV) && /usr/bin/python3 -m venv --system-site-packages $(HF_ENV)
	$(HF_PY) -m pip install -q --disable-pip-version-check --no-deps -r export/requirements-hf.txt
	touch $@

SRC_LANG ?= ko
TGT_LANG ?= en
export-hf: $(HF_STAMP)
	@test -n "$(MODEL)" -a -n "$(OUT)" || { echo "usage: make export-hf MODEL=DIR OUT=DIR [SRC_LANG=ko TGT_LANG=en]" >&2; exit 2; }
	cd export && $(abspath $(HF_PY)) export_hf.py $(abspath $(MODEL)) $(abspath $(OUT)) --src-lang $(SRC_LANG) --tgt-lang $(TGT_LANG)

# Tiny random Marian, M2M100, NLLB and mBART-50 checkpoints with tokenizers
# trained on the ko-en data, exported, for the Go tests (inference/hf_test.go).
HF_TINY := .work/hf-tiny
hf-tiny: $(HF_TINY)/.done
$(HF_TINY)/.done: $(HF_STAMP) export/hf_tiny.py export/export_hf.py export/hf_tokenizer.py
	rm -rf $(HF_TINY) && mkdir -p $(HF_TINY)
	cd export && $(abspath $(HF_PY)) hf_tiny.py --data $(abspath $(KO_EN_DATA)) --out $(abspath $(HF_TINY))/models
	for f in marian m2m100 nllb mbart50; do \
		(cd export && $(abspath $(HF_PY)) export_hf.py $(abspath $(HF_TINY))/models/$$f $(abspath $(HF_TINY))/export/$$f) || exit 1; \
	done
	touch $@

$(PYARROW_PY):
	rm -rf $(PYARROW_ENV) && $(PYTHON) -m venv $(PYARROW_ENV)
	$(PYARROW_PY) -m pip install -q --disable-pip-version-check pyarrow==$(PYARROW_VERSION)

ort: $(ORT_LIB)

# The npm package's install script downloads CUDA files; we only unpack the CPU library.
$(ORT_LIB):
	mkdir -p $(ORT_DIR)/.pack
	cd $(ORT_DIR)/.pack && npm pack --silent onnxruntime-node@$(ORT_VERSION) >/dev/null
	tar -xzf $(ORT_DIR)/.pack/onnxruntime-node-$(ORT_VERSION).tgz -C $(ORT_DIR) --strip-components=5 \
		package/bin/napi-v6/linux/x64/libonnxruntime.so.1
	rm -rf $(ORT_DIR)/.pack

ort-gpu: $(ORT_GPU_LIB)

# The wheel's C library does not depend on the Python version; cp312 is pinned
# so that the download is the same file everywhere.
$(ORT_GPU_LIB):
	rm -rf $(ORT_GPU_DIR) && mkdir -p $(ORT_GPU_DIR)/.pack
	$(PYTHON) -m pip download -q --no-deps --only-binary=:all: --implementation cp --python-version 3.12 \
		--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
		-d $(ORT_GPU_DIR)/.pack onnxruntime-gpu==$(ORT_GPU_VERSION)
	$(PYTHON) -c 'import glob, os, sys, zipfile; \
		w = zipfile.ZipFile(glob.glob(sys.argv[1] + "/.pack/onnxruntime_gpu-*.whl")[0]); \
		names = {"libonnxruntime.so.$(ORT_GPU_VERSION)": "libonnxruntime.so.1", \
			"libonnxruntime_providers_cuda.so": None, "libonnxruntime_providers_shared.so": None}; \
		[open(os.path.join(sys.argv[1], names[n] or n), "wb").write(w.read("onnxruntime/capi/" + n)) for n in names]' $(ORT_GPU_DIR)
	rm -rf $(ORT_GPU_DIR)/.pack
	@ls -l $(ORT_GPU_DIR)

VERSION := $(shell git describe --always --dirty 2>/dev/null || echo dev)

build: ort $(TOKENIZERS_LIB)
	go build -ldflags "-X main.version=$(VERSION)" -o bin/attnaudit ./cmd/attnaudit

demo: build
	bin/attnaudit run --output-dir runs

test: test-go test-python

# Tests use the CPU build even where a GPU build is present.
test-go: ort $(TOKENIZERS_LIB) hf-tiny
	go vet ./...
	ATTNAUDIT_ORT_LIB=$(CURDIR)/$(ORT_LIB) ATTNAUDIT_HF_TINY=$(CURDIR)/$(HF_TINY) ATTNAUDIT_HF_PYTHON=$(CURDIR)/$(HF_PY) $(if $(wildcard $(PYARROW_PY)),ATTNAUDIT_PYARROW_PYTHON=$(CURDIR)/$(PYARROW_PY)) go test ./...

# Side-by-side ratios against the seed's PyTorch way, appended to bench/RESULTS.md.
# BENCH=infer,run,visualize,rss picks a subset; QUICK=1 is a smoke test;
# BENCH_THREADS=1 on a shared host (bench/lib.sh lists every knob).
bench: ort
	bench/run.sh

# docs/validity.md: each detector's detached-pair AUROC per layer, raw and
# norm-based, and the forced AER by layer, on the demo set and the held-out
# ko-en news test lines (needs ../shared/data/ko-en); the suspect share of
# every shipped checkpoint with carried thresholds. About 13 minutes on 2 cores.
validity: build
	$(PYTHON) bench/validity.py

# The Python exporter (export/): its tests, and the shipped reference model.
# Debian's python3 (torch 1.13) by default; the ONNX export runs on torch 1.13 or 2.x.
EXPORT_PYTHON ?= /usr/bin/python3
KO_EN_DATA    ?= ../shared/data/ko-en
REF_WORK      := .work
REF_EPOCHS    := 001 010 027
REF_DEVICE    ?= auto
.PHONY: test-python reference-model convert-checkpoints

test-python:
	cd export && $(EXPORT_PYTHON) -m unittest discover -s tests

# split -> tokenizer -> train (27 epochs, states at 1, 10, 27) -> export into
# examples/checkpoints/ko-en-small/ (contract 2; the tiny test pair in both). Minutes on a GPU, hours on a CPU; CUDA and
# CPU runs differ numerically, so only a CUDA run reproduces the shipped weights.
reference-model:
	cd export && $(EXPORT_PYTHON) data.py --data $(abspath $(KO_EN_DATA)) --out ../$(REF_WORK)/data
	cd export && $(EXPORT_PYTHON) tokenizer.py --train ../$(REF_WORK)/data/train.tsv --out ../$(REF_WORK)/tokenizer.model
	cd export && $(EXPORT_PYTHON) train.py --data ../$(REF_WORK)/data --tokenizer ../$(REF_WORK)/tokenizer.model \
		--out ../$(REF_WORK)/train --epochs 27 --save-epochs 1,10 --device $(REF_DEVICE) --test
	cd export && for e in $(REF_EPOCHS); do \
		$(EXPORT_PYTHON) export_onnx.py --state ../$(REF_WORK)/train/epoch-$$e.pt \
			--metrics ../$(REF_WORK)/train/metrics.json --tokenizer ../$(REF_WORK)/tokenizer.model \
			--out ../examples/checkpoints/ko-en-small/epoch-$$e || exit 1; \
	done
	cd export && $(EXPORT_PYTHON) export_onnx.py --random --d-model 32 --ffn 64 --seed 0 --name tiny-random \
		--contract 1 --parity-sentences 2 --tokenizer ../$(REF_WORK)/tokenizer.model --out ../testdata/checkpoints/tiny
	cd export && $(EXPORT_PYTHON) convert.py --checkpoint ../testdata/checkpoints/tiny --contract 2 \
		--out ../testdata/checkpoints/tiny-c2

# Re-export the shipped checkpoints in contract CONTRACT (default 2) in place,
# with the weights read back from their ONNX files (no training states needed).
CONTRACT ?= 2
convert-checkpoints:
	cd export && for e in $(REF_EPOCHS); do \
		$(EXPORT_PYTHON) convert.py --checkpoint ../examples/checkpoints/ko-en-small/epoch-$$e \
			--contract $(CONTRACT) --out ../examples/checkpoints/ko-en-small/epoch-$$e || exit 1; \
	done

# The demo run stored as float32, rewritten at every precision by one
# command: sizes, ratios, errors and write speed, appended to bench/RESULTS.md.
bench-storage: build
	rm -rf .bench-storage && bin/attnaudit infer --output-dir .bench-storage --precision float32 --threads 1 >/dev/null
	{ echo; echo "## $$(date -u '+%Y-%m-%d %H:%M') UTC — attention storage (make bench-storage)"; echo; \
	  ATTNAUDIT_STORAGE_RUN=$$(ls -d $(CURDIR)/.bench-storage/*/) GOMAXPROCS=1 go test ./store -run '^TestStorage(Table|Candidates)$$' -count=1 -timeout 30m -v \
	  | grep -v '^\(=== \|--- \|PASS\|ok \)'; } | tee -a bench/RESULTS.md
	rm -rf .bench-storage
