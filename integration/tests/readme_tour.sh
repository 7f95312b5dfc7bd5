#!/usr/bin/env bash
# The README's five-minute tour, run as written: the code block under "## Five-minute tour" is extracted
# from README.md and executed (so the README cannot drift from what works). Needs the Kafka broker
# (test.sh starts it) and the debug build of lexembed on PATH.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
source "$ROOT/integration/env.sh"
export PATH="$CARGO_TARGET_DIR/debug:$PATH"
cd "$ROOT"
block="$(awk '/^## Five-minute tour/{f=1} f&&/^```sh/{b=1;next} b&&/^```/{exit} b{print}' README.md)"
[ -n "$block" ] || { echo "readme tour: no code block found"; exit 1; }
# Start from a clean slate: the tour's topic and streaming dataset (the demo dataset is overwritten).
"$ROOT/integration/kafka.sh" start >/dev/null
"$ROOT/integration/kafka.sh" delete-topic boe-articles boe-articles-dlq
rm -rf "$LEXEMBED_HOME/data/boe-stream.lance" report/
out="$(mktemp)"; trap 'rm -f "$out"; rm -rf "$ROOT/report"' EXIT
bash -euo pipefail -c "$block" > "$out"
grep -q "boe-" "$out" || { echo "readme tour: no search results in the output"; cat "$out"; exit 1; }
test -s report/report.md || { echo "readme tour: no report"; exit 1; }
rows="$(python -c 'import lance,sys; print(lance.dataset(sys.argv[1]).count_rows())' "$LEXEMBED_HOME/data/boe-stream.lance")"
want="$(wc -l < "$LEXEMBED_HOME/data/boe_articles.jsonl")"
[ "$rows" = "$want" ] || { echo "readme tour: streamed $rows rows, expected $want"; exit 1; }
echo "readme tour: ok ($rows articles streamed, search, SQL, eval and report ran)"
