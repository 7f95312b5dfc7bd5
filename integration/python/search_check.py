#!/usr/bin/env python3
"""The reference for `lexembed search --mode fts|hybrid`: pylance on the same dataset.

    python integration/python/search_check.py DATASET CASES.json K

CASES.json is a list of {"query", "vector" (the query's embedding at the column's dim, as lexembed made
it), "column", "fts": [ids lexembed returned], "hybrid": [ids]}. For each case pylance runs the
full-text query on the dataset's own index (its analyzer lives in the index, so the query is analysed as
lexembed's is) and an exact nearest-neighbour search; the hybrid reference is reciprocal-rank fusion of
those two lists (50 candidates each, 1 / (60 + rank), ranks from 1), written here independently of
lexembed's. Orders are by score, ties by id. Exits 1 naming the first case that differs.
"""
import json
import sys

import lance

RRF_K = 60.0
CANDIDATES = 50


def fts(ds, query, limit):
    t = ds.to_table(full_text_query=query, columns=["id"], limit=limit)
    rows = sorted(zip(t["_score"].to_pylist(), t["id"].to_pylist()), key=lambda r: (-r[0], r[1]))
    return [i for _, i in rows]


def dense(ds, column, vector, limit):
    t = ds.to_table(columns=["id"], nearest={"column": column, "q": vector, "k": limit, "metric": "cosine",
                                            "use_index": False})
    rows = sorted(zip(t["_distance"].to_pylist(), t["id"].to_pylist()))
    return [i for _, i in rows]


def fuse(lists, k):
    score = {}
    for ids in lists:
        for rank, i in enumerate(ids, start=1):
            score[i] = score.get(i, 0.0) + 1.0 / (RRF_K + rank)
    return [i for i, _ in sorted(score.items(), key=lambda p: (-p[1], p[0]))][:k]


def main():
    ds = lance.dataset(sys.argv[1])
    cases = json.load(open(sys.argv[2]))
    k = int(sys.argv[3])
    for c in cases:
        want_fts = fts(ds, c["query"], k)
        if want_fts != c["fts"]:
            sys.exit(f"fts {c['query']!r}: lexembed {c['fts']} != pylance {want_fts}")
        lists = [dense(ds, c["column"], c["vector"], max(k, CANDIDATES)), fts(ds, c["query"], max(k, CANDIDATES))]
        want_hybrid = fuse(lists, k)
        if want_hybrid != c["hybrid"]:
            sys.exit(f"hybrid {c['query']!r}: lexembed {c['hybrid']} != pylance RRF {want_hybrid}")
    print(f"[search_check] {len(cases)} queries: fts and hybrid top-{k} equal to pylance")


if __name__ == "__main__":
    main()
