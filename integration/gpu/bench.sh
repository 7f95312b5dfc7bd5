#!/usr/bin/env bash
# The GPU benchmark's last device call, in phases that each have a time limit and write what they found
# to $OUT as they go (a run cut short still brings its results back):
#   unpack    ONNX Runtime GPU from the chunks (checksums; ../shared/gpu's unpack.sh)
#   preflight nvidia-smi, ldd of the CUDA provider, Python's ONNX Runtime lists CUDA, and the Rust
#             binary on the tracked tiny fixture with the GPU provider (node placement checked) against
#             both reference engines: stops at the first failure, the reason in $OUT/preflight.json
#   model     waits for the synthetic bge-m3-shaped model the first call started building
#             (integration/gpu/build_model.sh), its log whole if it failed
#   bench     lexembed-bench encode on 4,096 BOE articles: lexembed vs sentence-transformers (fp16,
#             batch search on 1,024 texts) vs a bare ORT loop; GPU busy from nvidia-smi every 200 ms
# $OUT/phases.json lists each phase's outcome; every log is kept whole in $OUT/<phase>.log.
#
#   integration/gpu/bench.sh                                   # on the GPU machine (see prepare.sh)
#   integration/gpu/bench.sh --provider cpu --dry-run          # here: every phase on the CPU, small model
#   integration/gpu/bench.sh --provider cpu --dry-run --full-size   # here: the real-size graphs (minutes)
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
provider=cuda limit=4096 rounds=3 out="${OUT:-$ROOT/target/gpu-bench}" dry=0 full=0
while [ $# -gt 0 ]; do
  case "$1" in
    --provider) provider="$2"; shift 2 ;;
    --limit) limit="$2"; shift 2 ;;
    --rounds) rounds="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --dry-run) dry=1; shift ;;
    --full-size) full=1; shift ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "unknown argument $1 (see --help)"; exit 2 ;;
  esac
done
if [ "$dry" = 1 ]; then limit="${DRY_LIMIT:-48}" rounds=1; fi
[ "$full" = 1 ] && [ "$dry" = 1 ] && limit="${DRY_LIMIT:-8}"
export LEXEMBED_GPU_WORK="${LEXEMBED_GPU_WORK:-/tmp/lexembed-gpu}"
work="$LEXEMBED_GPU_WORK"
mkdir -p "$out" "$work"
started=$(date +%s)
log() { printf '[gpu-bench %s] %s\n' "$(date +%H:%M:%S)" "$*" | tee -a "$out/bench.log" >&2; }
echo '[]' > "$out/phases.json"

# Records phase NAME's outcome (ok/failed/timed_out, seconds, reason) in phases.json.
record() {
  python3 - "$out/phases.json" "$@" <<'PY'
import json, sys
path, name, outcome, seconds, reason = sys.argv[1:6]
phases = json.load(open(path))
phases.append({"phase": name, "outcome": outcome, "seconds": float(seconds), "reason": reason or None})
json.dump(phases, open(path, "w"), indent=2)
PY
}

# Runs phase NAME with a time limit, its output whole in $OUT/NAME.log; stops the script on failure.
phase() {
  local name="$1" limit="$2"; shift 2
  local t0; t0=$(date +%s)
  log "phase $name (limit ${limit} s)"
  timeout --kill-after=10 "$limit" "$@" > "$out/$name.log" 2>&1
  local rc=$? took=$(( $(date +%s) - t0 ))
  if [ $rc = 0 ]; then record "$name" ok "$took" ""; return 0; fi
  local outcome=failed reason
  [ $rc = 124 ] || [ $rc = 137 ] && outcome=timed_out
  reason="$(grep -E '^(preflight|plan|model build|ORT GPU|error)' "$out/$name.log" | tail -1)"
  [ -n "$reason" ] || reason="$(tail -1 "$out/$name.log")"
  record "$name" "$outcome" "$took" "$reason"
  log "phase $name $outcome after ${took} s: $reason (log: $out/$name.log)"
  cat "$out/$name.log" >&2
  exit 1
}

python="${LEXEMBED_PYTHON:-}"
if [ -z "$python" ]; then
  for p in /opt/torch/.venv/bin/python "${LEXEMBED_VENV:-$HOME/.cache/lexembed/venv}/bin/python" python3; do
    if command -v "$p" >/dev/null 2>&1; then python="$p"; break; fi
  done
fi
export LEXEMBED_PYTHON="$python" HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1

# What travels (prepare.sh): .gpu-data/ (binary and texts, xz) with this call or an earlier one (then in $work).
for f in lexembed-bench.xz boe_articles.jsonl.xz tokenizer.json.xz; do
  [ -f "$ROOT/.gpu-data/$f" ] && cp "$ROOT/.gpu-data/$f" "$work/"
  [ -f "$ROOT/.gpu-tok/$f" ] && [ ! -f "$work/$f" ] && cp "$ROOT/.gpu-tok/$f" "$work/"
done
[ -f "$work/lexembed-bench.xz" ] && [ ! -x "$work/lexembed-bench" ] && xz -dc "$work/lexembed-bench.xz" > "$work/lexembed-bench" && chmod +x "$work/lexembed-bench"
[ -f "$work/boe_articles.jsonl.xz" ] && [ ! -f "$work/boe_articles.jsonl" ] && xz -dc "$work/boe_articles.jsonl.xz" > "$work/boe_articles.jsonl"
bench="${LEXEMBED_BENCH:-}"
for b in "$work/lexembed-bench" "${CARGO_TARGET_DIR:-$HOME/.cache/lexembed-target}/bench-release/lexembed-bench" "${CARGO_TARGET_DIR:-$HOME/.cache/lexembed-target}/debug/lexembed-bench"; do
  if [ -z "$bench" ] && [ -x "$b" ]; then bench="$b"; fi
done
texts="$work/boe_articles.jsonl"
[ -f "$texts" ] || texts="${LEXEMBED_HOME:-$HOME/.cache/lexembed}/data/boe_articles.jsonl"

# --- unpack: ONNX Runtime GPU from the chunks; its environment saved for the phases after it.
unpack() {
  local chunks; chunks="$(ls "$ROOT"/.gpu[0-9]*/CHUNKS 2>/dev/null | sort -V | tail -1)"
  [ -n "$chunks" ] || { echo "ORT GPU: no .gpuN/CHUNKS in this call: carry the last chunk folder"; return 1; }
  # shellcheck disable=SC1090
  source "$(dirname "$chunks")/unpack.sh" || return 1
  { echo "export ORT_DYLIB_PATH='$ORT_DYLIB_PATH'"; echo "export LD_LIBRARY_PATH='$LD_LIBRARY_PATH'"; echo "export PYTHONPATH='$PYTHONPATH'"; } > "$work/ort.env"
}
if [ "$provider" != cpu ]; then
  export -f unpack; export ROOT work
  phase unpack 120 bash -c unpack
  source "$work/ort.env"
else
  source "$ROOT/integration/env.sh"
fi

# --- preflight: stops at the first check that fails; preflight.json says which and why.
preflight() {
  local checks=() step
  pf() { checks+=("$1"); echo "preflight: $1"; }
  if [ "$provider" != cpu ]; then
    local provider_lib; provider_lib="$(dirname "$ORT_DYLIB_PATH")/libonnxruntime_providers_cuda.so"
    ldd "$provider_lib" || { echo "preflight: ldd cannot read $provider_lib"; return 1; }
    if ldd "$provider_lib" | grep -q 'not found'; then
      echo "preflight: the CUDA provider misses $(ldd "$provider_lib" | grep 'not found' | awk '{print $1}' | tr '\n' ' ')"; return 1
    fi
    pf "cuda provider links"
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || { echo "preflight: nvidia-smi failed"; return 1; }
  fi
  [ -n "$bench" ] || { echo "preflight: no lexembed-bench binary (carry .gpu-data, or build it)"; return 1; }
  "$python" -c 'import onnxruntime as o, sys; p = o.get_available_providers(); print("onnxruntime", o.__version__, o.__file__, p); want = sys.argv[1]; sys.exit(0 if want in p else f"preflight: Python ONNX Runtime lacks {want}")' \
    "$([ "$provider" = cpu ] && echo CPUExecutionProvider || echo CUDAExecutionProvider)" || return 1
  pf "python onnxruntime has the provider"
  "$bench" encode --model "$ROOT/operators/encoder/tests/fixtures/tiny-xlmr" --provider "$provider" --precision fp32 \
    --texts "$texts" --fields text --limit 16 --rounds 1 --fp32-sample 4 --python "$python" \
    --json-out "$out/preflight_encode.json" || { echo "preflight: lexembed-bench on the tiny fixture failed with --provider $provider"; return 1; }
  pf "rust binary, tiny fixture, both references"
  python3 - "$out/preflight_encode.json" "$provider" <<'PY' || return 1
import json, sys
r = json.load(open(sys.argv[1]))
want = "CUDAExecutionProvider" if sys.argv[2] != "cpu" else "CPUExecutionProvider"
print("placement:", r["placement"])
if want not in (r["placement"] or ""):
    sys.exit(f"preflight: no node on {want}: {r['placement']}")
if r["min_cosine_vs_sentence_transformers"] < 0.999:
    sys.exit(f"preflight: vectors differ from sentence-transformers (min cosine {r['min_cosine_vs_sentence_transformers']})")
PY
  pf "nodes placed on the provider"
}
export -f preflight; export ROOT provider python bench texts out
preflight_started=$(date +%s)
if timeout --kill-after=5 "${PREFLIGHT_LIMIT:-90}" bash -c preflight > "$out/preflight.log" 2>&1; then
  python3 -c 'import json,sys; json.dump({"ok": True, "seconds": int(sys.argv[1])}, open(sys.argv[2], "w"))' \
    "$(( $(date +%s) - preflight_started ))" "$out/preflight.json"
  record preflight ok "$(( $(date +%s) - preflight_started ))" ""
else
  rc=$?
  reason="$(grep '^preflight: ' "$out/preflight.log" | grep -v -E '^preflight: (cuda provider links|python onnxruntime has|rust binary|nodes placed)' | tail -1)"
  [ $rc = 124 ] && reason="preflight: timed out after ${PREFLIGHT_LIMIT:-90} s ($(tail -1 "$out/preflight.log"))"
  [ -n "$reason" ] || reason="preflight: $(tail -1 "$out/preflight.log")"
  python3 -c 'import json,sys; json.dump({"ok": False, "reason": sys.argv[1], "log": open(sys.argv[2]).read()}, open(sys.argv[3], "w"), indent=2)' \
    "$reason" "$out/preflight.log" "$out/preflight.json"
  record preflight failed "$(( $(date +%s) - preflight_started ))" "$reason"
  log "$reason"; cat "$out/preflight.log" >&2
  exit 1
fi

# --- model: built in the background by the first call; here (CPU rehearsal) in the foreground.
{
  echo "date: $(date -u +%FT%TZ)"
  echo "host: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB"
  command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || echo "gpu: none"
  echo "onnxruntime library: ${ORT_DYLIB_PATH:-}"
  echo "bench binary: $bench; provider $provider, $limit texts, $rounds rounds"
} > "$out/env.txt" 2>&1
size=()
[ "$full" = 1 ] || [ "$dry" = 0 ] || size=(--small)
if [ "$provider" = cpu ] && [ ! -f "$work/model.done" ]; then
  phase model "${MODEL_LIMIT:-2400}" integration/gpu/build_model.sh run "${size[@]}"
else
  [ -f "$work/model.done" ] || [ -f "$work/model.failed" ] || [ -f "$work/model.log" ] \
    || integration/gpu/build_model.sh start "${size[@]}"
  phase model "${MODEL_LIMIT:-300}" integration/gpu/build_model.sh wait "${MODEL_WAIT:-280}"
fi
model="$work/synthetic/model"
if [ "$full" = 1 ]; then
  phase graphs 300 "$python" integration/gpu/check_graphs.py "$model" --full-size
fi

# --- bench: GPU busy sampled every 200 ms beside the model-call intervals lexembed reports.
sampler=""
if command -v nvidia-smi >/dev/null && [ "$provider" != cpu ]; then
  nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used --format=csv,noheader,nounits -lms 200 > "$out/gpu_util.csv" 2>&1 &
  sampler=$!
fi
phase bench "${BENCH_LIMIT:-300}" env LEXEMBED_LOG="${LEXEMBED_LOG:-info,ort=warn}" "$bench" encode --model "$model" \
  --provider "$provider" --texts "$texts" --fields text --limit "$limit" --rounds "$rounds" --python "$python" \
  --st-search-texts "${ST_SEARCH_TEXTS:-1024}" --json-out "$out/bench_encode.json"
[ -n "$sampler" ] && kill "$sampler" 2>/dev/null
if [ -s "${out}/gpu_util.csv" ]; then
  python3 - "$out/gpu_util.csv" "$out/bench_encode.json" <<'PY'
import json, sys
rows = [l.split(",") for l in open(sys.argv[1]) if l.count(",") == 2]
util = [float(r[1]) for r in rows if r[1].strip().replace(".", "", 1).isdigit()]
report = json.load(open(sys.argv[2]))
report["gpu_busy_nvidia_smi"] = {"samples": len(util), "mean_percent": sum(util) / max(len(util), 1),
                                 "busy_share": sum(u > 0 for u in util) / max(len(util), 1)}
json.dump(report, open(sys.argv[2], "w"), indent=2)
print("gpu busy:", report["gpu_busy_nvidia_smi"])
PY
fi
log "done in $(( $(date +%s) - started )) s; results in $out/bench_encode.json"
