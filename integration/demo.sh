#!/usr/bin/env bash
# The README's first command: set up this machine (idempotent), build lexembed, run the main job:
# the BOE demo pipeline into a local Lance dataset, a search, and an evaluation over held-out QA pairs.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$ROOT/integration/setup.sh" --demo
source "$ROOT/integration/env.sh"
say() { printf '\n\033[1m[demo] %s\033[0m\n' "$*"; }
say "building lexembed (first time: several minutes)"
cargo build --locked -p lexembed --manifest-path "$ROOT/Cargo.toml"
lexembed="$CARGO_TARGET_DIR/debug/lexembed"
data="$LEXEMBED_HOME/data"
# The model pipelines/demo.yaml embeds with; search and eval embed questions with the same one.
export LEXEMBED_MODEL="$LEXEMBED_HOME/models/${LEXEMBED_DEMO_MODEL:-multilingual-e5-small}"
say "lexembed run pipelines/demo.yaml  (BOE articles -> $data/boe.lance, model $(basename "$LEXEMBED_MODEL"))"
"$lexembed" run "$ROOT/pipelines/demo.yaml"
say "lexembed search: ¿Qué rentas están exentas del impuesto?"
"$lexembed" search "$data/boe.lance" --column emb_256 --query "¿Qué rentas están exentas del impuesto?" -k 5
say "lexembed eval: held-out QA pairs, every Matryoshka dim (history in $data/eval_history.lance)"
"$lexembed" eval --dataset "$data/boe.lance" --qa "$data/boe_qa.jsonl" --history "$data/eval_history.lance"
"$lexembed" eval report --history "$data/eval_history.lance" --out "$data/eval-report"
