# Shared by bench/run.sh and bench/gpu.sh (sourced, not run). Every timing is
# taken inside one invocation, side by side, because only ratios measured on
# the same machine at the same time mean anything on a noisy host.

# Paths and knobs, each overridable from the environment:
#   BENCH_PYTHON      the Python with torch, onnx, sentencepiece (matplotlib for visualize)
#   BENCH_THREADS     intra-op threads for attnaudit (--threads) and torch (--threads)
#   BENCH_CHECKPOINT  checkpoint folder; default: the shipped final one, else the tiny test one
#   BENCH_WORK        scratch folder for run folders and logs (default: a new one in /tmp)
#   BENCH_KEEP=1      keep BENCH_WORK afterwards
#   BENCH_BIN         the attnaudit binary (default bin/attnaudit, rebuilt when Go is there)
#   BENCH_RESULTS     where the section is appended (default bench/RESULTS.md)
#   BENCH_SENTENCES   the sentence set (default bench/sentences.txt, made from the demo set)
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
PY=${BENCH_PYTHON:-/usr/bin/python3}
THREADS=${BENCH_THREADS:-$(nproc)}
BIN=${BENCH_BIN:-$ROOT/bin/attnaudit}
RESULTS=${BENCH_RESULTS:-$ROOT/bench/RESULTS.md}
SENTENCES=${BENCH_SENTENCES:-$ROOT/bench/sentences.txt}
DEMO=$ROOT/examples/data/demo.jsonl
# ONNX Runtime: $ATTNAUDIT_ORT_LIB when set, else attnaudit's own discovery
# (third_party/onnxruntime-gpu on a GPU machine, then third_party/onnxruntime).
WORK=${BENCH_WORK:-$(mktemp -d /tmp/attnaudit-bench.XXXXXX)}
mkdir -p "$WORK"
SECTION=$WORK/section.md
: >"$SECTION"
FAILED=0

# jget FILE EXPR: a Python expression over the JSON document d in FILE,
# printed; None prints nothing. (Python, not jq: the GPU machine has no jq.)
jget() {
	"$PY" -c 'import json, sys
d = json.load(open(sys.argv[1], encoding="utf-8"))
v = eval(sys.argv[2])
print("" if v is None else v)' "$1" "$2"
}

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
emit() { printf '%s\n' "$*" >>"$SECTION"; }

# checkpoint: the highest epoch of the shipped model, else the tiny test one.
pick_checkpoint() {
	if [ -n "${BENCH_CHECKPOINT:-}" ]; then
		CKPT=$BENCH_CHECKPOINT
	else
		CKPT=$(ls -d "$ROOT"/examples/checkpoints/ko-en-small/epoch-*/ 2>/dev/null | sort -V | tail -n1)
		CKPT=${CKPT%/}
		[ -n "$CKPT" ] || CKPT=$ROOT/testdata/checkpoints/tiny
	fi
	[ -f "$CKPT/checkpoint.json" ] || { log "no checkpoint at $CKPT"; exit 2; }
	CKPT_NAME=$(jget "$CKPT/checkpoint.json" '"{} epoch {} step {}".format(d.get("name"), d.get("epoch"), d.get("step"))')
}

# bench/sentences.txt: the demo set's Korean sources (made once, then committed).
ensure_sentences() {
	if [ ! -s "$SENTENCES" ]; then
		[ -f "$DEMO" ] || { log "neither $SENTENCES nor $DEMO exists"; exit 2; }
		"$PY" -c 'import json, sys
for line in open(sys.argv[1], encoding="utf-8"):
    if line.strip() and json.loads(line)["source"].strip():
        print(json.loads(line)["source"])' "$DEMO" >"$SENTENCES"
		log "wrote $SENTENCES from $DEMO ($(wc -l <"$SENTENCES") sentences)"
	fi
}

# first_n N OUT: the first N sentences of the set, cycling through it as needed.
first_n() {
	local n=$1 out=$2
	: >"$out"
	while [ "$(wc -l <"$out")" -lt "$n" ]; do cat "$SENTENCES" >>"$out"; done
	head -n "$n" "$out" >"$out.tmp" && mv "$out.tmp" "$out"
}

# build_go: sets GO_OK=1 when bin/attnaudit builds, or, where there is no Go
# (the GPU machine), when a binary built elsewhere is already there.
build_go() {
	GO_OK=0
	if ! command -v go >/dev/null; then
		if [ -x "$BIN" ]; then GO_OK=1; else log "no go and no $BIN"; echo "no go toolchain and no $BIN" >"$WORK/go-build.log"; fi
		return
	fi
	if go build -o "$BIN" ./cmd/attnaudit >"$WORK/go-build.log" 2>&1; then
		GO_OK=1
	else
		log "bin/attnaudit does not build: $(head -n3 "$WORK/go-build.log" | tr '\n' ' ')"
	fi
}

ensure_gnu_time() {
	[ -x /usr/bin/time ] && return
	log "installing GNU time"
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends time >/dev/null
}

# timed NAME CMD...: runs CMD with stdout in $WORK/NAME.out, stderr in
# $WORK/NAME.err and GNU time's report in $WORK/NAME.time; sets WALL (seconds)
# and RSS_MB (peak resident set); appends the command to the section's list.
timed() {
	local name=$1 t0 t1 rc=0
	shift
	printf '    %s\n' "$*" >>"$WORK/commands.txt"
	log "$name: $*"
	t0=$(date +%s.%N)
	/usr/bin/time -v -o "$WORK/$name.time" "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" || rc=$?
	t1=$(date +%s.%N)
	WALL=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
	RSS_MB=$(awk -F': ' '/Maximum resident set size/ { printf "%.0f", $2 / 1024 }' "$WORK/$name.time" 2>/dev/null)
	if [ "$rc" -ne 0 ]; then
		log "$name failed ($rc): $(tail -n3 "$WORK/$name.err" | tr '\n' ' ')"
		FAILED=1
	fi
	return "$rc"
}

# fail_note NAME: a line for the results saying why NAME has no number.
fail_note() { emit "- $1 failed: \`$(tail -n2 "$WORK/$1.err" | tr '\n`' ' \047')\`"; }

# manifest_of NAME OUTDIR: the manifest.json of the run folder the command
# printed last, or the only one under OUTDIR.
manifest_of() {
	local dir
	dir=$(tail -n1 "$WORK/$1.out" 2>/dev/null)
	if [ -f "$dir/manifest.json" ]; then echo "$dir/manifest.json"; return; fi
	find "$2" -name manifest.json 2>/dev/null | head -n1
}

# stage_seconds MANIFEST STAGE: stages.STAGE.seconds, or empty.
stage_seconds() { jget "$1" "round(d['stages']['$2']['seconds'], 2) if '$2' in (d.get('stages') or {}) else None" 2>/dev/null; }

# fastest A B: the smaller of two seconds, either of which may be empty.
fastest() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "") print b; else if (b == "" || a + 0 <= b + 0) print a; else print b }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a > 0 && b > 0) printf "%.2f", a / b; else printf "n/a" }'; }
per_s() { awk -v n="$1" -v s="$2" 'BEGIN { if (s > 0) printf "%.2f", n / s; else printf "n/a" }'; }
meets() { awk -v r="$1" -v t="$2" 'BEGIN { if (r == "n/a") print "—"; else if (r + 0 >= t) print "yes"; else print "**no**" }'; }

# machine_header TITLE: the section's heading, machine and versions.
machine_header() {
	local cpu mem
	cpu=$(lscpu 2>/dev/null | awk -F': *' '/^Model name/ { print $2; exit }')
	mem=$(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
	emit ""
	emit "## $(date -u '+%Y-%m-%d %H:%M UTC') — $1"
	emit ""
	emit "- commit: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null)$(git -C "$ROOT" diff --quiet 2>/dev/null || echo ' (working tree modified)')"
	emit "- machine: $cpu; nproc $(nproc); $mem; $(uname -sr)"
	emit "- threads: attnaudit \`--threads $THREADS\`, torch \`--threads $THREADS\`"
	emit "- checkpoint: \`${CKPT#"$ROOT"/}\` ($CKPT_NAME)"
	emit "- sentences: \`${SENTENCES#"$ROOT"/}\` ($(wc -l <"$SENTENCES") Korean sources)"
	emit "- tools: $(go version 2>/dev/null | awk '{ print $3 }'), $("$PY" -c 'import torch; print("torch", torch.__version__)' 2>/dev/null), ORT library \`${ATTNAUDIT_ORT_LIB:-found by attnaudit (manifest ort_library below)}\`"
}

# infer_compare PROVIDER DEVICE "BATCH SIZES" N: attnaudit infer (--provider
# PROVIDER) against torch_infer.py (--device DEVICE) on the first N
# sentences, alternating per batch size so both see the same machine state.
# With SAMPLE_GPU=1 the peak of nvidia-smi's memory.used is taken per command.
infer_compare() {
	local provider=$1 device=$2 sizes=$3 n=$4 data=$WORK/infer-data.txt bs used=""
	first_n "$n" "$data"
	emit ""
	emit "### Inference: attnaudit infer (Go + ORT, $provider) vs PyTorch eager ($device), $n sentences"
	emit ""
	emit "Same algorithm on both sides: batches sorted by source length, greedy, decoder re-run on the growing prefix (no cache), finished rows leaving the batch, max_len 2·src+10, one teacher-forced pass capturing encoder self-, decoder self- and cross-attention for every layer and head. attnaudit also writes them to Parquet; torch only copies them to the host. attnaudit's time is the manifest's \`stages.infer.seconds\` (model load included; process wall beside it); torch's excludes model load and one warm-up batch. \"seed greedy\" is the same torch code keeping finished rows in the batch until all are done, as the seed's \`Transformer.greedy\` (export/model.py) does (\`--keep-finished\`; BENCH_SEED_GREEDY=0 skips it)."
	emit ""
	if [ "${SAMPLE_GPU:-0}" = 1 ]; then
		emit "| batch | attnaudit s | attnaudit wall s | attnaudit sent/s | torch s | torch sent/s | ratio | ≥ 2x | attnaudit RSS MB | attnaudit GPU MiB (nvidia-smi) | torch GPU MiB (nvidia-smi) | torch max_memory_allocated MiB |"
		emit "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | :-: | ---: | ---: | ---: | ---: |"
	else
		emit "| batch | attnaudit s | attnaudit wall s | attnaudit sent/s | torch s | torch sent/s | ratio | ≥ 2x | seed greedy s | ratio vs seed greedy | attnaudit RSS MB | torch RSS MB |"
		emit "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | :-: | ---: | ---: | ---: | ---: |"
	fi
	for bs in $sizes; do
		local go_s="" go_wall="" go_rss="" go_gpu="" t_s="" t_rss="" t_gpu="" t_alloc="" k_s="" m
		if [ "$GO_OK" = 1 ]; then
			gpu_sample_start
			if timed "infer-go-bs$bs" "$BIN" infer --checkpoint "$CKPT" --data "$data" \
				--output-dir "$WORK/infer-go-bs$bs" --batch-size "$bs" --provider "$provider" \
				--threads "$THREADS" --detached-pairs=false; then
				go_wall=$WALL go_rss=$RSS_MB
				m=$(manifest_of "infer-go-bs$bs" "$WORK/infer-go-bs$bs")
				[ -n "$m" ] && go_s=$(stage_seconds "$m" infer) && used=$(jget "$m" "d.get('provider') + ', ONNX Runtime ' + d['tool'].get('ort_version', '?') + ' ' + d['tool'].get('ort_library', '')")
				go_s=${go_s:-$go_wall}
			else
				fail_note "infer-go-bs$bs"
			fi
			go_gpu=$(gpu_sample_stop)
		fi
		gpu_sample_start
		if timed "infer-torch-bs$bs" "$PY" bench/torch_infer.py --checkpoint "$CKPT" --data "$data" \
			--batch-sizes "$bs" --device "$device" --threads "$THREADS"; then
			t_s=$(jget "$WORK/infer-torch-bs$bs.out" "d['runs'][0]['seconds']")
			t_alloc=$(jget "$WORK/infer-torch-bs$bs.out" "round(d['runs'][0].get('peak_gpu_mem_bytes', 0) / 2**20) or None")
			t_rss=$RSS_MB
			cat "$WORK/infer-torch-bs$bs.out" >>"$WORK/raw.txt"
		else
			fail_note "infer-torch-bs$bs"
		fi
		t_gpu=$(gpu_sample_stop)
		if [ "${SAMPLE_GPU:-0}" != 1 ] && [ "${BENCH_SEED_GREEDY:-1}" = 1 ]; then
			if timed "infer-seed-bs$bs" "$PY" bench/torch_infer.py --checkpoint "$CKPT" --data "$data" \
				--batch-sizes "$bs" --device "$device" --threads "$THREADS" --keep-finished; then
				k_s=$(jget "$WORK/infer-seed-bs$bs.out" "d['runs'][0]['seconds']")
				cat "$WORK/infer-seed-bs$bs.out" >>"$WORK/raw.txt"
			else
				fail_note "infer-seed-bs$bs"
			fi
		fi
		local go_rate t_rate r
		go_rate=$(per_s "$n" "${go_s:-0}")
		t_rate=$(per_s "$n" "${t_s:-0}")
		r=$(ratio "${t_s:-0}" "${go_s:-0}")
		if [ "${SAMPLE_GPU:-0}" = 1 ]; then
			emit "| $bs | ${go_s:-—} | ${go_wall:-—} | $go_rate | ${t_s:-—} | $t_rate | $r | $(meets "$r" 2) | ${go_rss:-—} | ${go_gpu:-—} | ${t_gpu:-—} | ${t_alloc:-—} |"
		else
			emit "| $bs | ${go_s:-—} | ${go_wall:-—} | $go_rate | ${t_s:-—} | $t_rate | $r | $(meets "$r" 2) | ${k_s:-—} | $(ratio "${k_s:-0}" "${go_s:-0}") | ${go_rss:-—} | ${t_rss:-—} |"
		fi
	done
	[ -z "$used" ] || { emit ""; emit "attnaudit's provider (manifest.json): $used."; }
	if [ "$GO_OK" != 1 ]; then
		emit ""
		emit "attnaudit was not measured: \`go build ./cmd/attnaudit\` failed (\`$(head -n1 "$WORK/go-build.log")\`)."
	fi
}

# nvidia-smi sampling (bench/gpu.sh); no-ops unless SAMPLE_GPU=1.
gpu_sample_start() {
	[ "${SAMPLE_GPU:-0}" = 1 ] || return 0
	nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -i "${GPU_INDEX:-0}" -lms 100 >"$WORK/gpu-sample.txt" 2>/dev/null &
	GPU_SAMPLER=$!
}
gpu_sample_stop() {
	[ "${SAMPLE_GPU:-0}" = 1 ] || return 0
	kill "$GPU_SAMPLER" 2>/dev/null
	wait "$GPU_SAMPLER" 2>/dev/null
	sort -n "$WORK/gpu-sample.txt" | tail -n1
}

# finish TITLE: append the section (with its commands and raw numbers) to
# bench/RESULTS.md, keeping earlier sections.
finish() {
	emit ""
	emit "Commands (\`bench/lib.sh\` runs each under \`/usr/bin/time -v\`):"
	emit ""
	emit '```'
	[ -f "$WORK/commands.txt" ] && sed 's/^    //' "$WORK/commands.txt" | sed "s#$WORK#\$WORK#g; s#$ROOT/##g" >>"$SECTION"
	emit '```'
	if [ -s "$WORK/raw.txt" ]; then
		emit ""
		emit "Raw output of the Python baselines:"
		emit ""
		emit '```json'
		sed "s#$ROOT/##g" "$WORK/raw.txt" >>"$SECTION"
		emit '```'
	fi
	if [ ! -f "$RESULTS" ]; then
		printf '# attnaudit benchmarks\n\nAppended by `make bench` (CPU, `bench/run.sh`) and `bench/gpu.sh` (GPU), one section per run, newest last. Only ratios within one section compare: the machines are shared and noisy.\n' >"$RESULTS"
	fi
	cat "$SECTION" >>"$RESULTS"
	log "appended to ${RESULTS#"$ROOT"/}; logs in $WORK"
	if [ "${BENCH_KEEP:-0}" != 1 ] && [ "$FAILED" = 0 ] && [ -z "${BENCH_WORK:-}" ]; then
		rm -rf "$WORK"
	fi
}

# wants NAME: whether BENCH (a comma list, default all) selects NAME.
wants() { case ",${BENCH:-all}," in *,all,* | *,"$1",*) return 0 ;; *) return 1 ;; esac; }

# contract1_copy: a contract-1 copy of $CKPT with the same weights
# (export/convert.py), in $WORK; sets CKPT_C1, or returns non-zero.
contract1_copy() {
	CKPT_C1=$WORK/checkpoint-contract1
	[ -f "$CKPT_C1/checkpoint.json" ] && return 0
	(cd "$ROOT/export" && "$PY" convert.py --checkpoint "$CKPT" --contract 1 --out "$CKPT_C1") \
		>"$WORK/convert.out" 2>"$WORK/convert.err" || { log "convert.py failed: $(tail -n2 "$WORK/convert.err" | tr '\n' ' ')"; FAILED=1; return 1; }
}

# go_infer NAME CKPT PROVIDER BS DATA: times attnaudit infer; sets GO_S (the
# manifest's infer stage seconds), GO_WALL, GO_RSS and GO_USED, or returns non-zero.
# PIN, when set, are words run before the command (taskset for bench_scale),
# here and in torch_infer.
go_infer() {
	local name=$1 ckpt=$2 provider=$3 bs=$4 data=$5 m
	GO_S="" GO_WALL="" GO_RSS=""
	timed "$name" ${PIN:-} "$BIN" infer --checkpoint "$ckpt" --data "$data" --output-dir "$WORK/$name" --batch-size "$bs" \
		--provider "$provider" --threads "$THREADS" --detached-pairs=false || { fail_note "$name"; return 1; }
	GO_WALL=$WALL GO_RSS=$RSS_MB
	m=$(manifest_of "$name" "$WORK/$name")
	if [ -n "$m" ]; then
		GO_S=$(stage_seconds "$m" infer)
		GO_USED=$(jget "$m" "d.get('provider') + (', ' + str(d['parallelism']) if d.get('parallelism') else '') + ', ONNX Runtime ' + d['tool'].get('ort_version', '?') + ' ' + d['tool'].get('ort_library', '')")
	fi
	GO_S=${GO_S:-$GO_WALL}
}

# torch_infer NAME DEVICE BS DATA [FLAGS...]: times bench/torch_infer.py; sets T_S.
torch_infer() {
	local name=$1 device=$2 bs=$3 data=$4
	shift 4
	T_S=""
	timed "$name" ${PIN:-} "$PY" bench/torch_infer.py --checkpoint "$CKPT" --data "$data" --batch-sizes "$bs" \
		--device "$device" --threads "$THREADS" "$@" || { fail_note "$name"; return 1; }
	T_S=$(jget "$WORK/$name.out" "d['runs'][0]['seconds']")
	cat "$WORK/$name.out" >>"$WORK/raw.txt"
}

# infer_contracts PROVIDER DEVICE "BATCH SIZES" N: the key/value cache's
# gain. attnaudit on the contract-2 checkpoint (cached decoding, attention
# captured per step) against torch_infer.py --cached (the same algorithm in
# PyTorch eager), against attnaudit on a contract-1 copy of the same weights
# (prefix re-run, teacher-forced attention pass), and against torch's
# uncached way; every command alternates per batch size.
infer_contracts() {
	local provider=$1 device=$2 sizes=$3 n=$4 data=$WORK/infer-data.txt bs
	first_n "$n" "$data"
	emit ""
	emit "### Inference with the key/value cache: attnaudit contract 2 vs PyTorch cached vs attnaudit contract 1 ($provider / $device), $n sentences"
	emit ""
	emit "attnaudit c2: \`$(basename "$CKPT")\` as shipped (contract 2: decoder_with_past_model.onnx one position per step, finished rows leave batch and cache, free-pass attention from each step's rows, written to Parquet). torch cached: \`bench/torch_infer.py --cached\`, the same algorithm in PyTorch eager (attention copied to the host, not written). attnaudit c1: the same weights written as contract 1 by \`export/convert.py --contract 1\` (prefix re-run each step, then one teacher-forced pass). torch uncached: \`bench/torch_infer.py\` (contract 1's algorithm). Greedy, max_len 2·src+10, batches sorted by source length. attnaudit's times are the manifest's \`stages.infer.seconds\` (model load included); torch's exclude model load and one warm-up batch."
	emit ""
	[ "$GO_OK" = 1 ] || { emit "Not measured: bin/attnaudit does not build."; return; }
	contract1_copy || { emit "Not measured: export/convert.py could not write the contract-1 copy."; return; }
	emit "| batch | attnaudit c2 s | c2 sent/s | torch cached s | c2 vs torch cached | ≥ 2x | attnaudit c1 s | c2 vs c1 | torch uncached s | c2 vs torch uncached | c2 RSS MB | c1 RSS MB |"
	emit "| ---: | ---: | ---: | ---: | ---: | :-: | ---: | ---: | ---: | ---: | ---: | ---: |"
	for bs in $sizes; do
		local c2_s="" c2_rss="" c1_s="" c1_rss="" tc_s="" tu_s="" r
		go_infer "c2-bs$bs" "$CKPT" "$provider" "$bs" "$data" && c2_s=$GO_S c2_rss=$GO_RSS
		torch_infer "torch-cached-bs$bs" "$device" "$bs" "$data" --cached && tc_s=$T_S
		go_infer "c1-bs$bs" "$CKPT_C1" "$provider" "$bs" "$data" && c1_s=$GO_S c1_rss=$GO_RSS
		torch_infer "torch-uncached-bs$bs" "$device" "$bs" "$data" && tu_s=$T_S
		r=$(ratio "${tc_s:-0}" "${c2_s:-0}")
		emit "| $bs | ${c2_s:-—} | $(per_s "$n" "${c2_s:-0}") | ${tc_s:-—} | $r | $(meets "$r" 2) | ${c1_s:-—} | $(ratio "${c1_s:-0}" "${c2_s:-0}") | ${tu_s:-—} | $(ratio "${tu_s:-0}" "${c2_s:-0}") | ${c2_rss:-—} | ${c1_rss:-—} |"
	done
	emit ""
	emit "Targets: c2 ≥ 2x torch cached at every batch size; c2 ≥ 3x c1 at batch 64. attnaudit's provider (manifest.json): ${GO_USED:-?}."
}
