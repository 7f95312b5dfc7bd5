#!/usr/bin/env python3
"""What a deletion costs inside a Lance merge-insert against beside it (the upsert design's measurement).

    python integration/python/bench_merge_delete.py ROWS DIM

Builds a dataset of ROWS rows (id, text, a DIM-wide float32 vector) and times, twice each: a merge of
25 rows (update or insert by id); the same merge deleting three ids inside it
(`when_not_matched_by_source_delete("id IN (...)")`); and a delete of three ids on its own
(`delete("id IN (...)")`). Prints seconds per operation.
"""
import shutil
import sys
import tempfile
import time

import lance
import numpy as np
import pyarrow as pa


def vectors(n: int, d: int) -> pa.Array:
    return pa.FixedSizeListArray.from_arrays(pa.array(np.random.rand(n * d).astype(np.float32)), d)


def main() -> int:
    n, d = int(sys.argv[1]), int(sys.argv[2])
    uri = tempfile.mkdtemp() + "/d.lance"
    table = pa.table({"id": [f"d{i}" for i in range(n)], "text": ["x" * 200] * n, "emb": vectors(n, d)})
    lance.write_dataset(table, uri, max_rows_per_file=20000)
    pick = lambda k: [f"d{i}" for i in np.random.randint(0, n, k)]
    in_list = lambda ids: "id IN (" + ",".join(f"'{i}'" for i in ids) + ")"
    for _ in range(2):
        timings = {}
        for name in ["merge", "merge + delete inside", "delete beside"]:
            ds = lance.dataset(uri)
            ids = pick(25)
            source = pa.table({"id": ids, "text": ["y"] * 25, "emb": vectors(25, d)})
            started = time.perf_counter()
            if name == "delete beside":
                ds.delete(in_list(pick(3)))
            else:
                b = ds.merge_insert("id").when_matched_update_all().when_not_matched_insert_all()
                if name != "merge":
                    b = b.when_not_matched_by_source_delete(in_list(pick(3)))
                b.execute(source)
            timings[name] = time.perf_counter() - started
        print(f"{n} rows x {d} dims: " + ", ".join(f"{k} {v:.3f} s" for k, v in timings.items()), flush=True)
    shutil.rmtree(uri, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
