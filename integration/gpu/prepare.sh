#!/usr/bin/env bash
# Prepares, here, everything the GPU run needs on the device machine (no network there), in git-ignored
# folders of the checkout, then lays out the device calls and checks that they fit
# (integration/gpu/plan.py → target/gpu/plan.json, printed as a table; it fails when a call is over
# 60 MiB with the tree, a command over 2,000 characters, or the calls with the machine's start over 14
# minutes of device time):
#   .gpu1/ … .gpuN/  ONNX Runtime GPU in chunks of ≤ 48 MiB (../shared/gpu/pack-ort-gpu.sh, ~8 min; N and
#                    the names come from there: .gpuN/CHUNKS, .gpuN/unpack.sh)
#   .gpu-tok/        the XLM-R tokenizer.json (xz): the first call starts the model build with it
#   .gpu-data/       lexembed-bench (bench-release, encode only: no lance/datafusion) and the first
#                    4,096 BOE articles, both xz-compressed
#
#   integration/gpu/prepare.sh          # then make the calls of target/gpu/plan.json, in order
#   integration/gpu/prepare.sh --plan   # only lay out and check the calls (the folders exist)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
source integration/env.sh
if [ "${1:-}" != --plan ]; then
  shared="$ROOT/../shared/gpu"
  ls .gpu[0-9]*/CHUNKS >/dev/null 2>&1 || "$shared/pack-ort-gpu.sh"
  cargo build --profile bench-release -p lexembed-bench --no-default-features --locked
  rm -rf .gpu-data .gpu-tok && mkdir -p .gpu-data .gpu-tok
  bin="$(mktemp)"; cp "$CARGO_TARGET_DIR/bench-release/lexembed-bench" "$bin"; strip "$bin" 2>/dev/null || true
  xz -6 -T2 -c "$bin" > .gpu-data/lexembed-bench.xz; rm -f "$bin"
  head -n 4096 "$LEXEMBED_HOME/data/boe_articles.jsonl" | xz -6 -T2 > .gpu-data/boe_articles.jsonl.xz
  xz -6 -c "$LEXEMBED_HOME/tokenizers/xlm-roberta/tokenizer.json" > .gpu-tok/tokenizer.json.xz
  du -sh .gpu*/
fi
python3 integration/gpu/plan.py --root "$ROOT" --out "$ROOT/target/gpu/plan.json"
cat <<'MSG'
Make the calls of target/gpu/plan.json back to back, each with its carry, command and timeout_s (the
machine stays warm ~30 s after each; /tmp survives only while it does). Results come back under $OUT:
phases.json (each phase's outcome), preflight.json, bench_encode.json, every phase's log whole.
MSG
