#!/usr/bin/env python3
"""pylance, the independent client, checks a dataset after upserts and deletions.

    python integration/python/upsert_check.py DATASET EXPECTED.json

EXPECTED.json: {"texts": {id: text, ...} (every live id and its latest text), "deleted": [id, ...],
"fts": [{"query": word, "ids": [id, ...]}, ...]} (optional). Checks with pylance alone: every live id
exactly once with its latest text, no deleted id, and pylance's own full-text search (where the
dataset has the index) returning exactly the expected ids for each query. Exits 1 naming what differs.
"""
import json
import sys
from collections import Counter
from pathlib import Path

import lance


def main() -> int:
    uri, expected = sys.argv[1], json.loads(Path(sys.argv[2]).read_text())
    ds = lance.dataset(uri)
    table = ds.to_table(columns=["id", "text"])
    ids, texts = table["id"].to_pylist(), table["text"].to_pylist()
    problems = []
    twice = [i for i, n in Counter(ids).items() if n > 1]
    if twice:
        problems.append(f"{len(twice)} ids more than once, e.g. {sorted(twice)[:5]}")
    want = expected["texts"]
    got = dict(zip(ids, texts))
    missing = sorted(set(want) - set(got))
    if missing:
        problems.append(f"{len(missing)} live ids missing, e.g. {missing[:5]}")
    deleted = sorted(set(expected["deleted"]) & set(got))
    if deleted:
        problems.append(f"{len(deleted)} deleted ids still there, e.g. {deleted[:5]}")
    extra = sorted(set(got) - set(want) - set(expected["deleted"]))
    if extra:
        problems.append(f"{len(extra)} unexpected ids, e.g. {extra[:5]}")
    stale = sorted(i for i in set(want) & set(got) if got[i] != want[i])
    if stale:
        problems.append(f"{len(stale)} ids with an old text, e.g. {stale[0]}: {got[stale[0]]!r}")
    for q in expected.get("fts", []):
        hits = ds.to_table(columns=["id"], full_text_query=q["query"])["id"].to_pylist()
        if sorted(hits) != sorted(q["ids"]):
            problems.append(f"full_text_search({q['query']!r}) gave {sorted(hits)}, want {sorted(q['ids'])}")
    for p in problems:
        print(p, file=sys.stderr)
    print(json.dumps({"rows": len(ids), "live": len(want), "deleted": len(expected["deleted"])}))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
