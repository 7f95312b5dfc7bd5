#!/usr/bin/env bash
# The evaluation report as users see it: rendered by a real headless browser (Debian's chromium), which
# measures every chart's text. Checks that the report renders, that no legend or label is cut at a
# chart's edge (legends were: "ndcg@10" showed as "ndcg@1"), that the Matryoshka curve puts dims on a
# log2 axis, and that a reference card (--reference) is drawn beside the run.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
source "$ROOT/integration/env.sh"
command -v chromium >/dev/null || { echo "chromium missing: run integration/setup.sh"; exit 1; }
lexembed="$CARGO_TARGET_DIR/debug/lexembed"
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
head -200 "$LEXEMBED_HOME/data/boe_articles.jsonl" > "$work/docs.jsonl"
"$LEXEMBED_VENV/bin/python" - "$work" "$LEXEMBED_HOME/data/boe_qa.jsonl" <<'PY'
import json, sys
ids = {json.loads(l)["id"] for l in open(f"{sys.argv[1]}/docs.jsonl")}
qa = [l for l in open(sys.argv[2]) if set(json.loads(l)["relevant_ids"]) <= ids]
open(f"{sys.argv[1]}/qa.jsonl", "w").writelines(qa[:80])
json.dump({"name": "model card", "dims": {"64": {"ndcg@10": 0.30, "mrr@10": 0.25}, "8": {"ndcg@10": 0.10}}},
          open(f"{sys.argv[1]}/card.json", "w"))
PY
cat > "$work/p.yaml" <<SPEC
name: report-test
source: {kind: file, path: docs.jsonl}
encoder: {model: $ROOT/operators/encoder/tests/fixtures/tiny-xlmr}
sink: {uri: c.lance}
SPEC
"$lexembed" run "$work/p.yaml" >/dev/null
for _ in 1 2; do
  "$lexembed" eval --model "$ROOT/operators/encoder/tests/fixtures/tiny-xlmr" --dataset "$work/c.lance" \
    --qa "$work/qa.jsonl" --history "$work/h.lance" >/dev/null
done
"$lexembed" eval report --history "$work/h.lance" --out "$work/report" --reference "$work/card.json" >/dev/null

# The report with a measuring script appended: chromium runs it and --dump-dom prints its verdict.
cp "$work/report/report.html" "$work/check.html"
cat >> "$work/check.html" <<'JS'
<script>
const out = {charts: 0, cut: [], legends: [], curveX: []};
for (const svg of document.querySelectorAll("svg")) {
  out.charts++;
  const w = svg.viewBox.baseVal.width, h = svg.viewBox.baseVal.height;
  for (const t of svg.querySelectorAll("text")) {
    const b = t.getBBox();
    if (b.width === 0 || b.x < 0 || b.x + b.width > w + 0.5 || b.y < 0 || b.y + b.height > h + 0.5)
      out.cut.push(`${t.textContent} [${b.x.toFixed(1)}, ${(b.x + b.width).toFixed(1)}] in ${w}`);
    if (t.classList.contains("legend")) out.legends.push(t.textContent);
  }
  if (svg.textContent.includes("Matryoshka curve")) {
    for (const t of svg.querySelectorAll("text[text-anchor=middle]"))
      if (/^\d+$/.test(t.textContent)) out.curveX.push([+t.textContent, +t.getAttribute("x")]);
  }
}
const pre = document.createElement("pre"); pre.id = "lexembed-check";
pre.textContent = JSON.stringify(out); document.body.appendChild(pre);
</script>
JS
chromium --headless --no-sandbox --disable-gpu --disable-dev-shm-usage --user-data-dir="$work/profile" \
  --virtual-time-budget=5000 --dump-dom "file://$work/check.html" 2>/dev/null > "$work/dom.html"
"$LEXEMBED_VENV/bin/python" - "$work/dom.html" <<'PY'
import html, json, math, re, sys
m = re.search(r'<pre id="lexembed-check">(.*?)</pre>', open(sys.argv[1]).read(), re.S)
assert m, "the browser did not run the check (no result in the DOM)"
r = json.loads(html.unescape(m.group(1)))
assert r["charts"] >= 4, f"{r['charts']} charts rendered"
assert not r["cut"], "text cut at a chart's edge: " + "; ".join(r["cut"])
assert "ndcg@10" in r["legends"] and "ndcg@10 (model card)" in r["legends"], r["legends"]
xs = sorted(r["curveX"])
dims = [d for d, _ in xs]
assert dims == [8, 16, 32, 64], dims
gaps = [b[1] - a[1] for a, b in zip(xs, xs[1:])]
assert max(gaps) - min(gaps) < 1.0, f"dims are not on a log2 axis: x positions {xs}"
print(f"[report] chromium rendered {r['charts']} charts: every text inside its chart, {len(r['legends'])} legend entries, dims on a log2 axis, the model card beside the run")
PY
