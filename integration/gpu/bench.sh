#!/usr/bin/env bash
# The GPU benchmark in one prepared script: builds the synthetic bge-m3-shaped model (random weights,
# real shape, fp32 + fp16 graphs with pooling inside), then runs `lexembed-bench encode` on the first
# 4,096 BOE articles at max_seq 512: lexembed vs sentence-transformers (fp16, best of batch 32/64/128)
# vs a bare ONNX Runtime CUDA loop with IO binding on lexembed's batches; real tokens/s, padding ratio,
# model busy fraction, fp16-GPU vs fp32-CPU min cosine. Writes bench_encode.json, bench.log and env.txt
# under $OUT (or --out). Meant to finish within 8 minutes on the GPU machine.
#
#   integration/gpu/bench.sh                          # on the GPU machine (after integration/gpu/prepare.sh
#                                                     # here and the transfers it prints)
#   integration/gpu/bench.sh --provider cpu --dry-run # here: the same steps on the CPU, small model and sample
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
provider=cuda limit=4096 rounds=3 layers=24 max_seq=512 out="${OUT:-$ROOT/target/gpu-bench}" dry=0
while [ $# -gt 0 ]; do
  case "$1" in
    --provider) provider="$2"; shift 2 ;;
    --limit) limit="$2"; shift 2 ;;
    --rounds) rounds="$2"; shift 2 ;;
    --layers) layers="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --dry-run) dry=1; shift ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "unknown argument $1 (see --help)"; exit 2 ;;
  esac
done
small=()
if [ "$dry" = 1 ]; then limit="${DRY_LIMIT:-48}" rounds=1 small=(--small); fi
mkdir -p "$out"
log() { printf '[gpu-bench %s] %s\n' "$(date +%H:%M:%S)" "$*" | tee -a "$out/bench.log" >&2; }
started=$(date +%s)

# What travels (integration/gpu/prepare.sh): .gpu-data/{boe_articles.jsonl,tokenizer.json.xz,lexembed-bench}.
data="$ROOT/.gpu-data"
[ -d "$data" ] || data=""
if [ "$provider" != cpu ]; then
  if [ -f "$ROOT/.gpu4/unpack.sh" ]; then source "$ROOT/.gpu4/unpack.sh"; fi
  [ -n "${ORT_DYLIB_PATH:-}" ] || { log "no ONNX Runtime GPU build: send the .gpu1-4 chunks first (integration/gpu/prepare.sh)"; exit 1; }
else
  source "$ROOT/integration/env.sh"
fi
python="${LEXEMBED_PYTHON:-}"
if [ -z "$python" ]; then
  for p in /opt/torch/.venv/bin/python "${LEXEMBED_VENV:-$HOME/.cache/lexembed/venv}/bin/python" python3; do
    if command -v "$p" >/dev/null 2>&1; then python="$p"; break; fi
  done
fi
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
bench="${LEXEMBED_BENCH:-}"
for b in "$data/lexembed-bench" "${CARGO_TARGET_DIR:-$ROOT/target}/bench-release/lexembed-bench" "${CARGO_TARGET_DIR:-$ROOT/target}/debug/lexembed-bench"; do
  if [ -z "$bench" ] && [ -x "$b" ]; then bench="$b"; fi
done
[ -n "$bench" ] || { log "no lexembed-bench binary: cargo build --profile bench-release -p lexembed-bench --no-default-features"; exit 1; }

work="${LEXEMBED_GPU_WORK:-/tmp/lexembed-gpu}"
mkdir -p "$work"
tokenizer="${LEXEMBED_HOME:-$HOME/.cache/lexembed}/tokenizers/xlm-roberta/tokenizer.json"
if [ -n "$data" ] && [ -f "$data/tokenizer.json.xz" ]; then
  xz -dc "$data/tokenizer.json.xz" > "$work/tokenizer.json"; tokenizer="$work/tokenizer.json"
fi
texts="${LEXEMBED_HOME:-$HOME/.cache/lexembed}/data/boe_articles.jsonl"
if [ -n "$data" ] && [ -f "$data/boe_articles.jsonl" ]; then texts="$data/boe_articles.jsonl"; fi

{
  echo "date: $(date -u +%FT%TZ)"
  echo "host: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB"
  command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || echo "gpu: none"
  echo "onnxruntime library: ${ORT_DYLIB_PATH:-}"
  "$python" -c 'import onnxruntime, torch, sentence_transformers as s; print("onnxruntime", onnxruntime.__version__, onnxruntime.get_available_providers()); print("torch", torch.__version__, "cuda", torch.cuda.is_available()); print("sentence-transformers", s.__version__)'
  echo "bench binary: $bench"
  echo "provider $provider, $limit texts, $rounds rounds, $layers layers, max_seq $max_seq"
} > "$out/env.txt" 2>&1
cat "$out/env.txt" | tee -a "$out/bench.log" >&2

model="$work/synthetic-$([ "$dry" = 1 ] && echo small || echo "${layers}l")"
if [ ! -f "$model/model/onnx/model_fp16.onnx" ]; then
  log "building the synthetic bge-m3-shaped model ($layers layers) in $model"
  "$python" integration/python/make_synthetic_bge_m3.py "$model" --layers "$layers" --max-seq-length "$max_seq" \
    --tokenizer "$tokenizer" "${small[@]}" 2>&1 | grep -E '^\[(synthetic|export)\]' | tee -a "$out/bench.log" >&2
fi
log "model ready after $(( $(date +%s) - started )) s"

set -o pipefail
LEXEMBED_LOG="${LEXEMBED_LOG:-info,ort=warn}" "$bench" encode --model "$model/model" --provider "$provider" \
  --texts "$texts" --fields text --limit "$limit" --rounds "$rounds" --python "$python" \
  --json-out "$out/bench_encode.json" 2>&1 | tee -a "$out/bench.log"
log "done in $(( $(date +%s) - started )) s; results in $out/bench_encode.json"
