"""Parses Prometheus text exposition (a file, or stdin with `-`) with the official client's parser and
prints its samples as JSON: [{"name", "labels", "value", "type"}]. A malformed exposition fails here,
as it would fail a Prometheus scrape."""
import json
import math
import sys

from prometheus_client.parser import text_string_to_metric_families

text = sys.stdin.read() if sys.argv[1] == "-" else open(sys.argv[1]).read()
samples = []
for family in text_string_to_metric_families(text):
    for s in family.samples:
        value = None if math.isnan(s.value) else s.value
        samples.append({"name": s.name, "labels": s.labels, "value": value, "type": family.type})
json.dump(samples, sys.stdout)
