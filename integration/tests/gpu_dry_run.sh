#!/usr/bin/env bash
# The GPU run, rehearsed on the CPU at CI size, so a device session never spends its minutes on a broken
# plan or script:
#  1. the call layout (integration/gpu/plan.py) on chunk folders of the real sizes: every call within
#     60 MiB with this tree, 14 minutes of device time, chunk names from CHUNKS; a data folder too big
#     for any call, and a missing chunk, are refused with the reason;
#  2. failures injected into the last call's phases come back named in $OUT within a minute: a missing
#     chunk, a damaged chunk, a CUDA provider missing a library, a model build error;
#  3. every phase on the CPU (bench.sh --provider cpu --dry-run): preflight on the tiny fixture, the
#     small synthetic model with the real XLM-R tokenizer, fp32 + fp16 export, lexembed-bench encode
#     against sentence-transformers and a bare ORT session; the reports complete.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
source "$ROOT/integration/env.sh"
tmp="$(mktemp -d)"; trap 'rm -rf "$tmp" /tmp/ortgpu /tmp/ort-gpu' EXIT
MIB=$((1 << 20))
fail() { echo "gpu rehearsal: $*" >&2; exit 1; }

# --- 1. the plan, on folders of the sizes pack-ort-gpu.sh and prepare.sh make (sparse files).
plan_root="$tmp/plan"
mkdir -p "$plan_root"
cp -r "$ROOT/." "$plan_root/" 2>/dev/null || true
rm -rf "$plan_root"/.gpu*
(cd "$plan_root" && git status --short >/dev/null)
for i in 1 2 3 4 5; do
  mkdir -p "$plan_root/.gpu$i"
  size=$((48 * MIB)); [ $i = 5 ] && size=$((12 * MIB))
  truncate -s "$size" "$plan_root/.gpu$i/part0$((i - 1))"
done
echo 5 > "$plan_root/.gpu5/CHUNKS"; cp "$ROOT/../shared/gpu/unpack-ort-gpu.sh" "$plan_root/.gpu5/unpack.sh"
mkdir -p "$plan_root/.gpu-tok" "$plan_root/.gpu-data"
truncate -s $((24 * MIB / 10)) "$plan_root/.gpu-tok/tokenizer.json.xz"
truncate -s $((8 * MIB)) "$plan_root/.gpu-data/lexembed-bench.xz"
truncate -s $((3 * MIB)) "$plan_root/.gpu-data/boe_articles.jsonl.xz"
python3 "$ROOT/integration/gpu/plan.py" --root "$plan_root" --out "$tmp/plan.json" > "$tmp/plan.txt" \
  || { cat "$tmp/plan.txt"; fail "the plan for real-size chunks does not fit"; }
python3 - "$tmp/plan.json" <<'PY'
import json, sys
p = json.load(open(sys.argv[1]))
calls = p["calls"]
assert len(calls) == 5, calls
assert all(c["bytes"] <= 60 << 20 and len(c["command"]) <= 2000 for c in calls), calls
assert p["device_seconds"] <= 14 * 60, p["device_seconds"]
assert [c["carry"][0] for c in calls] == [f".gpu{i}" for i in range(1, 6)], calls
assert ".gpu-tok" in calls[0]["carry"] and "build_model.sh start" in calls[0]["command"], calls[0]
assert any(".gpu-data" in c["carry"] for c in calls), calls
assert calls[-1]["command"].endswith("integration/gpu/bench.sh") and calls[-1]["timeout_s"] <= 540, calls[-1]
print(f"gpu plan: ok ({len(calls)} calls, largest {max(c['bytes'] for c in calls) / (1 << 20):.1f} MiB, "
      f"{p['device_seconds']} s of device time)")
PY
truncate -s $((50 * MIB)) "$plan_root/.gpu-data/lexembed-bench.xz"
if python3 "$ROOT/integration/gpu/plan.py" --root "$plan_root" --out "$tmp/plan-big.json" > "$tmp/big.txt" 2>&1; then
  fail "a data folder that fits in no call was accepted"
fi
grep -q "fits in no call" "$tmp/big.txt" || { cat "$tmp/big.txt"; fail "the oversized data was refused without its reason"; }
truncate -s $((8 * MIB)) "$plan_root/.gpu-data/lexembed-bench.xz"
rm "$plan_root/.gpu3/part02"
python3 "$ROOT/integration/gpu/plan.py" --root "$plan_root" --out "$tmp/plan-missing.json" > "$tmp/missing.txt" 2>&1 \
  && fail "a missing chunk was accepted"
grep -q ".gpu3" "$tmp/missing.txt" || { cat "$tmp/missing.txt"; fail "the missing chunk was not named"; }
echo "gpu plan: oversized data and a missing chunk refused, with their reasons"

# --- 2. failures injected into the last call, each named in phases.json / preflight.json within a minute.
# Chunks in pack-ort-gpu.sh's format around a stand-in provider that links a library which is gone.
blob="$tmp/blob"; mkdir -p "$blob/pkg/onnxruntime/capi"
printf 'int stub(void) { return 1; }\n' > "$blob/stub.c"
printf 'int stub(void);\nint provider(void) { return stub(); }\n' > "$blob/prov.c"
gcc -shared -fPIC -o "$blob/libcudart_stand_in.so" "$blob/stub.c"
gcc -shared -fPIC -o "$blob/libonnxruntime_providers_cuda.so" "$blob/prov.c" -L"$blob" -lcudart_stand_in
rm "$blob/libcudart_stand_in.so"
cp "$ORT_DYLIB_PATH" "$blob/pkg/onnxruntime/capi/"
xz -0 -c "$blob/libonnxruntime_providers_cuda.so" > "$blob/cuda.so.xz"
tar cf - -C "$blob/pkg" onnxruntime | xz -0 > "$blob/ortpkg.tar.xz"
tar cf "$blob/blob.tar" -C "$blob" cuda.so.xz ortpkg.tar.xz
inject_root="$tmp/inject"; mkdir -p "$inject_root"
(cd "$blob" && split -n 3 -d -a 2 blob.tar part && sha256sum blob.tar part?? > SHA256SUMS)
lay_chunks() {
  rm -rf "$inject_root"/.gpu* /tmp/ortgpu /tmp/ort-gpu
  local i=1 p
  for p in "$blob"/part??; do mkdir -p "$inject_root/.gpu$i"; cp "$p" "$inject_root/.gpu$i/"; i=$((i + 1)); done
  cp "$blob/SHA256SUMS" "$inject_root/.gpu3/"; echo 3 > "$inject_root/.gpu3/CHUNKS"
  cp "$ROOT/../shared/gpu/unpack-ort-gpu.sh" "$inject_root/.gpu3/unpack.sh"
  mkdir -p /tmp/ortgpu && cp "$inject_root"/.gpu1/part?? "$inject_root"/.gpu2/part?? /tmp/ortgpu/
}
# The last call runs bench.sh from a copy of the tree holding the chunks, as the device machine does.
cp -r "$ROOT/integration" "$ROOT/operators" "$inject_root/" 2>/dev/null
rm -rf "$inject_root/operators/"*/target
bench_args=()
expect_named() {  # CASE PHASE PATTERN [ENV…]: bench.sh "${bench_args[@]}" fails in PHASE, its reason matching PATTERN
  local case="$1" phase="$2" pattern="$3"; shift 3
  local out="$tmp/out-$case" t0; t0=$(date +%s)
  mkdir -p "$out"
  if (cd "$inject_root" && env "$@" OUT="$out" LEXEMBED_GPU_WORK="$tmp/work-$case" PREFLIGHT_LIMIT=60 \
      bash integration/gpu/bench.sh "${bench_args[@]}" > "$out/stdout" 2>&1); then
    fail "$case: bench.sh succeeded"
  fi
  local took=$(( $(date +%s) - t0 ))
  python3 - "$out" "$phase" "$pattern" "$case" "$took" <<'PY' || { tail -30 "$out/stdout"; exit 1; }
import json, re, sys
from pathlib import Path
out, phase, pattern, case, took = Path(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
phases = json.loads((out / "phases.json").read_text())
failed = [p for p in phases if p["outcome"] != "ok"]
assert failed and failed[-1]["phase"] == phase, f"{case}: expected {phase} to fail: {phases}"
reason = failed[-1]["reason"] or ""
assert re.search(pattern, reason), f"{case}: reason {reason!r} does not match {pattern!r}"
if phase == "preflight":
    pf = json.loads((out / "preflight.json").read_text())
    assert pf["ok"] is False and re.search(pattern, pf["reason"]) and pf["log"], pf
assert took <= 60, f"{case}: named after {took} s (over a minute)"
print(f"gpu rehearsal: {case} -> {phase}: {reason} ({took} s)")
PY
}
lay_chunks; rm /tmp/ortgpu/part01 "$inject_root/.gpu2/part01"
expect_named missing-chunk unpack "2 of 3 chunks"
lay_chunks; printf 'x' | dd of=/tmp/ortgpu/part00 bs=1 seek=100 conv=notrunc status=none
expect_named damaged-chunk unpack "damaged"
lay_chunks
expect_named missing-cuda-library preflight "misses libcudart_stand_in"
# A model build that fails (here: its tokenizer is missing) is named, its log whole in $OUT.
rm -rf "$inject_root"/.gpu*
bench_args=(--provider cpu --dry-run)
expect_named model-error model "failed" LEXEMBED_GPU_TOKENIZER=/nonexistent/tokenizer.json
grep -q "nonexistent/tokenizer.json missing" "$tmp/out-model-error/model.log" \
  || { cat "$tmp/out-model-error/model.log"; fail "the model build's own error is not in its log"; }

# --- 3. every phase on the CPU, small model and sample.
out="$tmp/dry"; mkdir -p "$out"
LEXEMBED_GPU_WORK="$out/work" OUT="$out" "$ROOT/integration/gpu/bench.sh" --provider cpu --dry-run > "$out/stdout" 2>&1 \
  || { tail -40 "$out/stdout"; exit 1; }
python3 - "$out" <<'PY'
import json, pathlib, sys
out = pathlib.Path(sys.argv[1])
r = json.loads((out / "bench_encode.json").read_text())
model = out / "work/synthetic/model"
for f in ("onnx/model.onnx", "onnx/model_fp16.onnx", "lexembed.json", "tokenizer.json"):
    assert (model / f).is_file(), f"missing {f}"
phases = json.loads((out / "phases.json").read_text())
assert [p["phase"] for p in phases] == ["preflight", "model", "bench"] and all(p["outcome"] == "ok" for p in phases), phases
assert json.loads((out / "preflight.json").read_text())["ok"] is True
assert r["provider"] == "cpu" and r["precision"] == "fp32" and r["io_binding"] is True, r
assert r["texts"] == 48 and r["real_tokens"] > 1000, r
for k in ("lexembed", "sentence_transformers", "ort_session"):
    assert r[k]["tokens_per_s"] > 0, (k, r[k])
assert r["min_cosine_vs_sentence_transformers"] >= 0.99999, r
assert r["max_abs_diff_vs_sentence_transformers"] <= 1e-4, r
assert 0 < r["model_busy_fraction"] <= 1, r
print(f"gpu dry run: ok ({r['texts']} texts, vs sentence-transformers {r['vs_sentence_transformers']:.2f}x, "
      f"vs bare session {r['vs_ort_session']:.2f}x, min cosine {r['min_cosine_vs_sentence_transformers']:.7f})")
PY
