#!/usr/bin/env python3
"""pylance as the independent reader of the S3 test (integration/tests/s3.sh).

    s3_reader.py watch SEEN.json          # poll the dataset, record every row count seen, until killed
    s3_reader.py check SEEN.json A TOTAL  # every count seen is a whole commit; the end has TOTAL distinct ids
"""
import json
import os
import signal
import sys
import time

import lance

URI = "s3://lexembed/docs.lance"


def options():
    port = os.environ["S3_PORT"]
    return {"aws_endpoint": f"http://127.0.0.1:{port}", "aws_region": "us-east-1",
            "aws_access_key_id": "lexembed", "aws_secret_access_key": "lexembed",
            "allow_http": "true", "aws_virtual_hosted_style_request": "false"}


def watch(path):
    seen = []
    stop = False

    def done(*_):
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, done)
    while not stop:
        try:
            seen.append(lance.dataset(URI, storage_options=options()).count_rows())
        except Exception:  # not created yet (or mid-creation): no rows visible
            seen.append(-1)
        json.dump(seen, open(path, "w"))
        time.sleep(0.1)
    json.dump(seen, open(path, "w"))


def check(path, part, total):
    seen = json.load(open(path))
    whole = {-1, 0, part, total}
    bad = sorted({n for n in seen if n not in whole})
    ds = lance.dataset(URI, storage_options=options())
    ids = ds.to_table(columns=["id"]).column("id").to_pylist()
    print(f"s3: reader polled {len(seen)} times, saw row counts {sorted(set(seen))}; "
          f"final {len(ids)} rows, {len(set(ids))} distinct, {len(ds.versions())} versions")
    if bad:
        print(f"s3: FAILED: the reader saw partial commits {bad}")
        return 1
    if len(ids) != total or len(set(ids)) != total:
        print(f"s3: FAILED: expected {total} distinct rows")
        return 1
    print("s3: ok")
    return 0


if __name__ == "__main__":
    if sys.argv[1] == "watch":
        watch(sys.argv[2])
    else:
        sys.exit(check(sys.argv[2], int(sys.argv[3]), int(sys.argv[4])))
