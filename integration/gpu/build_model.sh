#!/usr/bin/env bash
# The synthetic bge-m3-shaped model for the GPU benchmark, built off the critical path: the first device
# call starts it in the background with the image's own torch while the ONNX Runtime chunks travel; the
# last call waits for it.
#
#   integration/gpu/build_model.sh start [--small]   # detach the build (setsid nohup); returns at once
#   integration/gpu/build_model.sh wait SECONDS      # wait for done/failed; a failure prints the log whole
#   integration/gpu/build_model.sh run [--small]     # build in the foreground (the CPU rehearsal)
#
# Work dir: $LEXEMBED_GPU_WORK (default /tmp/lexembed-gpu): model/ (the lexembed model directory),
# model.log, and the marker model.done or model.failed. Env: LEXEMBED_PYTHON, LEXEMBED_GPU_LAYERS (24),
# LEXEMBED_GPU_MAX_SEQ (512), LEXEMBED_GPU_TOKENIZER (default: tokenizer.json(.xz) in the work dir, else
# the one setup installed).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
work="${LEXEMBED_GPU_WORK:-/tmp/lexembed-gpu}"
log="$work/model.log"

python_for_torch() {
  if [ -n "${LEXEMBED_PYTHON:-}" ]; then echo "$LEXEMBED_PYTHON"; return; fi
  for p in /opt/torch/.venv/bin/python "${LEXEMBED_VENV:-$HOME/.cache/lexembed/venv}/bin/python" python3; do
    command -v "$p" >/dev/null 2>&1 && { echo "$p"; return; }
  done
}

tokenizer() {
  if [ -n "${LEXEMBED_GPU_TOKENIZER:-}" ]; then echo "$LEXEMBED_GPU_TOKENIZER"; return; fi
  if [ -f "$work/tokenizer.json.xz" ] && [ ! -f "$work/tokenizer.json" ]; then
    xz -dc "$work/tokenizer.json.xz" > "$work/tokenizer.json.tmp" && mv "$work/tokenizer.json.tmp" "$work/tokenizer.json"
  fi
  if [ -f "$work/tokenizer.json" ]; then echo "$work/tokenizer.json"; return; fi
  echo "${LEXEMBED_HOME:-$HOME/.cache/lexembed}/tokenizers/xlm-roberta/tokenizer.json"
}

build() {
  local small=("$@") py tok
  py="$(python_for_torch)"; tok="$(tokenizer)"
  rm -f "$work/model.done" "$work/model.failed"
  echo "[build_model $(date +%H:%M:%S)] $py, tokenizer $tok, layers ${LEXEMBED_GPU_LAYERS:-24}, max_seq ${LEXEMBED_GPU_MAX_SEQ:-512} ${small[*]}"
  if HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1 "$py" "$ROOT/integration/python/make_synthetic_bge_m3.py" "$work/synthetic" \
      --layers "${LEXEMBED_GPU_LAYERS:-24}" --max-seq-length "${LEXEMBED_GPU_MAX_SEQ:-512}" --tokenizer "$tok" "${small[@]}"; then
    echo "[build_model $(date +%H:%M:%S)] done"; touch "$work/model.done"
  else
    local rc=$?
    echo "[build_model $(date +%H:%M:%S)] failed (exit $rc)"; touch "$work/model.failed"; return 1
  fi
}

case "${1:-}" in
  start)
    shift; mkdir -p "$work"
    setsid nohup "$0" run "$@" > "$log" 2>&1 < /dev/null &
    echo "model build started in the background (log $log)" ;;
  run)
    shift; mkdir -p "$work"; build "$@" ;;
  wait)
    deadline=$(( $(date +%s) + ${2:-300} ))
    while [ ! -f "$work/model.done" ] && [ ! -f "$work/model.failed" ]; do
      if [ "$(date +%s)" -ge "$deadline" ]; then
        echo "model build: not done after ${2:-300} s; its log so far:" >&2; cat "$log" >&2 2>/dev/null || true; exit 124
      fi
      sleep 2
    done
    if [ -f "$work/model.failed" ]; then echo "model build failed; its log:" >&2; cat "$log" >&2; exit 1; fi
    echo "$work/synthetic/model" ;;
  *) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
