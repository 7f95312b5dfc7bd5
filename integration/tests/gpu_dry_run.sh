#!/usr/bin/env bash
# The GPU benchmark script, dry-run on the CPU: every step the GPU machine runs (synthetic bge-m3-shaped
# model with the real XLM-R tokenizer, fp32 + fp16 export with pooling inside, lexembed-bench encode
# against sentence-transformers and a bare ORT session), small model and sample. Fails when the script
# breaks or its report is incomplete, so a device session never spends its minutes on a broken script.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
out="$(mktemp -d)"; trap 'rm -rf "$out"' EXIT
LEXEMBED_GPU_WORK="$out/work" OUT="$out" "$ROOT/integration/gpu/bench.sh" --provider cpu --dry-run > "$out/stdout" 2>&1 \
  || { tail -40 "$out/stdout"; exit 1; }
python3 - "$out/bench_encode.json" "$out/work" <<'PY'
import json, pathlib, sys
r = json.load(open(sys.argv[1]))
work = pathlib.Path(sys.argv[2])
model = next(work.glob("synthetic-*/model"))
for f in ("onnx/model.onnx", "onnx/model_fp16.onnx", "lexembed.json", "tokenizer.json"):
    assert (model / f).is_file(), f"missing {f}"
assert r["provider"] == "cpu" and r["precision"] == "fp32" and r["io_binding"] is True, r
assert r["texts"] == 48 and r["real_tokens"] > 1000, r
for k in ("lexembed", "sentence_transformers", "ort_session"):
    assert r[k]["tokens_per_s"] > 0, (k, r[k])
assert r["min_cosine_vs_sentence_transformers"] >= 0.99999, r
assert 0 < r["model_busy_fraction"] <= 1, r
print(f"gpu dry run: ok ({r['texts']} texts, vs sentence-transformers {r['vs_sentence_transformers']:.2f}x, "
      f"vs bare session {r['vs_ort_session']:.2f}x, min cosine {r['min_cosine_vs_sentence_transformers']:.7f})")
PY
