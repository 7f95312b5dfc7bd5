#!/usr/bin/env python3
"""pylance, the independent client, reads a dataset lexembed wrote.

    python integration/python/lance_interop.py DATASET OUT_DIR QUERIES.json

Writes OUT_DIR/<column>.f32 for every emb_<dim> column (rows sorted by id, float32 little-endian, as
stored) and OUT_DIR/ids.json (the sorted ids), then for each query in QUERIES.json
({"column": ..., "vector": [...]}) runs pylance `nearest` (cosine, exact: use_index False) and writes
OUT_DIR/nearest.json: a list of top-10 id lists, by distance then id.
"""
import json
import sys
from pathlib import Path

import lance
import numpy as np
import pyarrow.compute as pc


def main() -> int:
    uri, out, queries = sys.argv[1], Path(sys.argv[2]), json.loads(Path(sys.argv[3]).read_text())
    out.mkdir(parents=True, exist_ok=True)
    ds = lance.dataset(uri)
    table = ds.to_table()
    order = pc.sort_indices(table, sort_keys=[("id", "ascending")])
    table = table.take(order)
    (out / "ids.json").write_text(json.dumps(table["id"].to_pylist()))
    for name in table.column_names:
        if name.startswith("emb_"):
            col = table[name].combine_chunks()
            values = col.values.to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
            values.tofile(out / f"{name}.f32")
    hits = []
    for q in queries:
        res = ds.to_table(
            columns=["id", "_distance"],
            nearest={"column": q["column"], "q": np.asarray(q["vector"], dtype=np.float32), "k": 10, "metric": "cosine", "use_index": False},
        )
        # Exact ties (duplicate texts) come back in storage order: list them by id, as lexembed does.
        pairs = sorted(zip(res["_distance"].to_pylist(), res["id"].to_pylist()))
        hits.append([i for _, i in pairs])
    (out / "nearest.json").write_text(json.dumps(hits))
    print(f"[pylance] {uri}: {table.num_rows} rows, {len(queries)} queries", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
