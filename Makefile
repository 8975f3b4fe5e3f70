# attnaudit build. Targets:
#   make setup   install what builds and tests need (Debian packages, npm test tools)
#   make         build bin/attnaudit and fetch ONNX Runtime's CPU library
#   make demo    run the whole pipeline on the embedded default into runs/
#   make test    every test: Go (with DuckDB and headless Chromium checks) and Python
#   make bench   benchmarks, written to bench/RESULTS.md
ORT_VERSION := 1.30.0
ORT_DIR     := third_party/onnxruntime
ORT_LIB     := $(ORT_DIR)/libonnxruntime.so.1
export ATTNAUDIT_ORT_LIB ?= $(CURDIR)/$(ORT_LIB)

# Debian packages for the tests: the Python exporter (torch, sentencepiece,
# onnx), spm_encode for tokenizer parity, a Hangul font and Chromium for the
# report tests.
APT_PACKAGES := python3-torch python3-sentencepiece python3-onnx python3-numpy \
	sentencepiece fonts-nanum chromium

.PHONY: all build ort setup demo test test-go bench
all: build

setup: ort
	@missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi
	cd store/testdata/duckdb && npm ci --silent --no-audit --no-fund

ort: $(ORT_LIB)

# The npm package's install script downloads CUDA files; we only unpack the CPU library.
$(ORT_LIB):
	mkdir -p $(ORT_DIR)/.pack
	cd $(ORT_DIR)/.pack && npm pack --silent onnxruntime-node@$(ORT_VERSION) >/dev/null
	tar -xzf $(ORT_DIR)/.pack/onnxruntime-node-$(ORT_VERSION).tgz -C $(ORT_DIR) --strip-components=5 \
		package/bin/napi-v6/linux/x64/libonnxruntime.so.1
	rm -rf $(ORT_DIR)/.pack

build: ort
	go build -o bin/attnaudit ./cmd/attnaudit

demo: build
	bin/attnaudit run --output-dir runs

test: test-go test-python

test-go: ort
	go vet ./...
	go test ./...

# Side-by-side ratios against the seed's PyTorch way, appended to bench/RESULTS.md.
# BENCH=infer,run,visualize,rss picks a subset; QUICK=1 is a smoke test;
# BENCH_THREADS=1 on a shared host (bench/lib.sh lists every knob).
bench: ort
	bench/run.sh
