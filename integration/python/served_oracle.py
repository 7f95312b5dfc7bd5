#!/usr/bin/env python3
"""The reference for `lexembed eval --search index|fts|hybrid`: the rankings pylance returns through
the same path on the same dataset, scored by sentence-transformers' own metric code.

    python integration/python/served_oracle.py DATASET QA.jsonl VECTORS.jsonl OUT.json --path index --dims 64 32

VECTORS.jsonl holds `lexembed embed` lines, one per QA pair in order (the query embedded as lexembed
search embeds it). For each dim and query, pylance ranks the top 100: `index` = nearest on emb_<dim>
with its index (32 probes, exact re-ranking of 10 × k candidates, as lexembed search), `fts` = its
full-text query on the dataset's index, `hybrid` = reciprocal-rank fusion of those two lists (1 / (60 +
rank), ranks from 1), computed here. InformationRetrievalEvaluator.compute_metrics scores the rankings
(ties cannot occur: each list is passed in its order). OUT.json gets dim_<d>_<path>_<metric>@<k>, and
for `index` also dim_<d>_index_knn_recall@10 against pylance's exact search.
"""
import argparse
import json
import sys
from pathlib import Path

import lance

# The full-text ranking and the reciprocal-rank fusion are search_check.py's (the same reference).
from search_check import fts, fuse

K = 100


def dense(ds, dim, vector, use_index):
    q = {"column": f"emb_{dim}", "q": vector[:dim], "k": K, "metric": "cosine", "use_index": use_index}
    if use_index:
        q.update(nprobes=32, refine_factor=10)
    t = ds.to_table(columns=["id"], nearest=q)
    return [i for _, i in sorted(zip(t["_distance"].to_pylist(), t["id"].to_pylist()))]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dataset")
    ap.add_argument("qa", type=Path)
    ap.add_argument("vectors", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--path", choices=["index", "fts", "hybrid"], required=True)
    ap.add_argument("--dims", type=int, nargs="+", required=True)
    a = ap.parse_args()

    from sentence_transformers.sentence_transformer.evaluation import InformationRetrievalEvaluator

    ds = lance.dataset(a.dataset)
    pairs = [json.loads(l) for l in a.qa.read_text().splitlines() if l.strip()]
    lines = [json.loads(l) for l in a.vectors.read_text().splitlines() if l.strip()]
    full = str(max(int(d) for d in lines[0]["embeddings"]))
    vectors = {p["query_id"]: l["embeddings"][full] for p, l in zip(pairs, lines)}
    queries = {p["query_id"]: p["query"] for p in pairs}
    relevant = {p["query_id"]: set(p["relevant_ids"]) for p in pairs}
    corpus_ids = ds.to_table(columns=["id"])["id"].to_pylist()
    ev = InformationRetrievalEvaluator(queries, {c: "" for c in corpus_ids}, relevant, name="oracle")
    out = {}
    for d in a.dims:
        ranked, knn = [], []
        for qid in ev.queries_ids:
            if a.path == "index":
                ids = dense(ds, d, vectors[qid], True)
                exact = dense(ds, d, vectors[qid], False)
                knn.append(len(set(ids[:10]) & set(exact[:10])) / max(1, len(exact[:10])))
            elif a.path == "fts":
                ids = fts(ds, queries[qid], K)
            else:
                ids = fuse([dense(ds, d, vectors[qid], True), fts(ds, queries[qid], K)], K)
            ranked.append([{"corpus_id": c, "score": -float(r)} for r, c in enumerate(ids)])
        scores = ev.compute_metrics(ranked)
        for name, by_k in scores.items():
            for k, v in by_k.items():
                out[f"dim_{d}_{a.path}_{name.split('@')[0]}@{k}"] = float(v)
        if knn:
            out[f"dim_{d}_index_knn_recall@10"] = sum(knn) / len(knn)
    a.out.write_text(json.dumps(out, indent=1, sort_keys=True))
    print(f"[served_oracle] {a.path}: {len(ev.queries_ids)} queries, dims {a.dims} -> {a.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
