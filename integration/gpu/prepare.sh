#!/usr/bin/env bash
# Prepares, here, everything the GPU benchmark needs on the device machine (no network there), in
# git-ignored folders of the checkout, and prints the `device` calls to make:
#   .gpu1/ … .gpu4/  ONNX Runtime GPU (CUDA 13 build) in four chunks (../shared/gpu/pack-ort-gpu.sh, ~8 min)
#   .gpu-data/       lexembed-bench (release, encode only: no lance/datafusion), the XLM-R tokenizer.json
#                    (xz), the first 4,096 BOE articles
#   integration/gpu/prepare.sh
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
source integration/env.sh
shared="$ROOT/../shared/gpu"
[ -f .gpu4/unpack.sh ] || "$shared/pack-ort-gpu.sh"
cargo build --profile bench-release -p lexembed-bench --no-default-features --locked
rm -rf .gpu-data && mkdir -p .gpu-data
cp "$CARGO_TARGET_DIR/bench-release/lexembed-bench" .gpu-data/
strip .gpu-data/lexembed-bench 2>/dev/null || true
xz -6 -c "$LEXEMBED_HOME/tokenizers/xlm-roberta/tokenizer.json" > .gpu-data/tokenizer.json.xz
head -n 4096 "$LEXEMBED_HOME/data/boe_articles.jsonl" > .gpu-data/boe_articles.jsonl
du -sh .gpu?/ .gpu-data/
cat <<'MSG'
Device calls, back to back (the machine stays warm ~30 s after each; /tmp survives only while it is):
  1. carry [".gpu1"]:  mkdir -p /tmp/ortgpu && cp .gpu1/* /tmp/ortgpu/
  2. carry [".gpu2"]:  cp .gpu2/* /tmp/ortgpu/
  3. carry [".gpu3"]:  cp .gpu3/* /tmp/ortgpu/
  4. carry [".gpu4", ".gpu-data"], timeout_s 540:  integration/gpu/bench.sh
Results come back under $OUT: bench_encode.json, bench.log, env.txt.
MSG
