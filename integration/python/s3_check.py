#!/usr/bin/env python3
"""pylance as the independent reader of the object-storage test (integration/tests/s3.sh).

The S3 endpoint and credentials come from the AWS_* environment (`integration/s3.sh env`), which Lance
reads the same way lexembed does.

    s3_check.py watch URI SEEN.json
        Poll the dataset until SIGTERM; record the (version, row count) of every read.
    s3_check.py check URI SEEN.json IDS.jsonl...
        The dataset holds exactly the ids of the files, each once; every read in SEEN saw a committed
        version whole (its row count is that version's), never a partial write.
    s3_check.py same-vectors URI REFERENCE_URI COLUMN
        Rows present in both datasets have the same vectors (within 1e-5).
"""
import json
import signal
import sys
import time

import lance
import numpy as np


def watch(uri, out):
    seen, stop = [], False

    def done(*_):
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, done)
    while not stop:
        try:
            ds = lance.dataset(uri)
            seen.append([ds.version, ds.count_rows()])
        except Exception as e:  # not created yet: nothing visible
            seen.append([None, str(e).splitlines()[0][:120]])
        time.sleep(0.05)
    with open(out, "w") as f:
        json.dump(seen, f)


def ids_of(paths):
    ids = []
    for p in paths:
        with open(p) as f:
            ids += [json.loads(line)["id"] for line in f if line.strip()]
    return ids


def check(uri, seen_path, id_files):
    want = ids_of(id_files)
    ds = lance.dataset(uri)
    got = ds.to_table(columns=["id"]).column("id").to_pylist()
    versions = {v["version"]: ds.checkout_version(v["version"]).count_rows() for v in ds.versions()}
    with open(seen_path) as f:
        seen = json.load(f)
    reads = [(v, n) for v, n in seen if v is not None]
    torn = [(v, n) for v, n in reads if versions.get(v) != n]
    print(f"s3: {len(got)} rows, {len(set(got))} distinct, versions {versions}; "
          f"reader: {len(seen)} polls, {len(reads)} reads, saw {sorted(set(map(tuple, reads)))}")
    failures = []
    if len(got) != len(set(got)):
        failures.append(f"{len(got) - len(set(got))} duplicate ids")
    if set(got) != set(want):
        failures.append(f"{len(set(want) - set(got))} ids missing, {len(set(got) - set(want))} unexpected")
    if torn:
        failures.append(f"reads that match no committed version: {torn[:5]}")
    if not reads:
        failures.append("the reader never saw the dataset (it polled too late)")
    for f in failures:
        print(f"s3: FAILED: {f}")
    return 1 if failures else 0


def same_vectors(uri, ref_uri, column):
    def by_id(u):
        t = lance.dataset(u).to_table(columns=["id", column])
        return dict(zip(t.column("id").to_pylist(), t.column(column).to_pylist()))

    a, b = by_id(uri), by_id(ref_uri)
    common = sorted(set(a) & set(b))
    worst = max(float(np.max(np.abs(np.array(a[i]) - np.array(b[i])))) for i in common)
    print(f"s3: {len(common)} rows compared with {ref_uri}, largest difference {worst:.2e}")
    if not common or worst > 1e-5:
        print("s3: FAILED: vectors differ from the local reference")
        return 1
    return 0


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "watch":
        watch(*args)
    elif cmd == "check":
        sys.exit(check(args[0], args[1], args[2:]))
    elif cmd == "same-vectors":
        sys.exit(same_vectors(*args))
    else:
        sys.exit(__doc__)
