#!/usr/bin/env python3
"""numpy reference for `lexembed bench eval`: the same metric computation on the same vectors.

    python integration/python/bench_eval_ref.py DIR ROUNDS

DIR holds queries.f32 (Q × W), corpus.f32 (C × W), meta.json ({"q", "c", "width", "dims", "relevant"}).
For each dim: truncate, L2-normalise, matrix product in corpus chunks, top 100 per query
(argpartition, then sort by score), then the IR metrics. Runs one round per line read on stdin (so rounds alternate with lexembed's) and prints one JSON line per round: seconds.
"""
import json
import sys
import time
from pathlib import Path

import numpy as np


def metrics(top: np.ndarray, relevant: np.ndarray) -> dict:
    hits = top == relevant[:, None]
    out = {}
    for k in (1, 3, 5, 10):
        h = hits[:, :k].any(1)
        out[f"accuracy@{k}"] = h.mean()
        out[f"precision@{k}"] = hits[:, :k].sum(1).mean() / k
        out[f"recall@{k}"] = hits[:, :k].sum(1).mean()
    first = np.where(hits[:, :10].any(1), hits[:, :10].argmax(1) + 1, np.inf)
    out["mrr@10"] = (1.0 / first).mean()
    disc = 1.0 / np.log2(np.arange(2, 12))
    out["ndcg@10"] = (hits[:, :10] * disc).sum(1).mean()
    ranks = np.arange(1, 101)
    out["map@100"] = (hits[:, :100] / ranks).sum(1).mean()
    return out


def run(q, c, dims, relevant):
    res = {}
    for d in dims:
        qd = q[:, :d] / np.linalg.norm(q[:, :d], axis=1, keepdims=True)
        cd = c[:, :d] / np.linalg.norm(c[:, :d], axis=1, keepdims=True)
        best_s = np.full((len(q), 0), -np.inf, dtype=np.float32)
        best_i = np.zeros((len(q), 0), dtype=np.int64)
        for c0 in range(0, len(c), 8192):
            s = qd @ cd[c0:c0 + 8192].T
            part = np.argpartition(-s, 100, axis=1)[:, :100] if s.shape[1] > 100 else np.argsort(-s, axis=1)
            best_s = np.concatenate([best_s, np.take_along_axis(s, part, 1)], 1)
            best_i = np.concatenate([best_i, part + c0], 1)
            keep = np.argpartition(-best_s, 100, axis=1)[:, :100] if best_s.shape[1] > 100 else np.argsort(-best_s, 1)
            best_s, best_i = np.take_along_axis(best_s, keep, 1), np.take_along_axis(best_i, keep, 1)
        order = np.argsort(-best_s, axis=1, kind="stable")
        res[d] = metrics(np.take_along_axis(best_i, order, 1), relevant)
    return res


def main() -> int:
    d, rounds = Path(sys.argv[1]), int(sys.argv[2])
    meta = json.loads((d / "meta.json").read_text())
    q = np.fromfile(d / "queries.f32", dtype=np.float32).reshape(meta["q"], meta["width"])
    c = np.fromfile(d / "corpus.f32", dtype=np.float32).reshape(meta["c"], meta["width"])
    relevant = np.asarray(meta["relevant"])
    for _ in range(rounds):
        # Wait for lexembed's round to finish: rounds take turns, never run at the same time.
        if not sys.stdin.readline():
            break
        t = time.perf_counter()
        run(q, c, meta["dims"], relevant)
        print(json.dumps({"seconds": time.perf_counter() - t}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
