# attnaudit build. `make` builds the binary and fetches ONNX Runtime's CPU library.
ORT_VERSION := 1.30.0
ORT_DIR     := third_party/onnxruntime
ORT_LIB     := $(ORT_DIR)/libonnxruntime.so.1
export ATTNAUDIT_ORT_LIB ?= $(CURDIR)/$(ORT_LIB)

.PHONY: all build ort test
all: build

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

test: ort
	go test ./...
