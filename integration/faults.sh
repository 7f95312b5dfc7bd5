#!/usr/bin/env bash
# Faults injected for real while a Kafka → Lance-on-S3 pipeline works (issue 33): toxiproxy between
# lexembed and SeaweedFS (latency, connection resets, connections cut mid-upload, the store
# unreachable for 30 s) and between lexembed and the broker (unreachable for 30 s, and a second
# replica joining meanwhile), SeaweedFS and the Kafka broker killed with SIGKILL and restarted, the
# broker frozen for 30 s, a dataset's filesystem filled, SIGTERM to the replica; and `lexembed serve`
# under overload, a 100 MB body, 1,000 idle connections, its store unreachable and SIGTERM. Each
# pipeline trial checks the dataset with pylance: every record exactly once, and at most a few log
# lines per fault. Writes target/faults/report.json and prints a table; exits 1 if a trial failed.
#
#   integration/faults.sh [--quick] [--trials N] [--only FAULT,...] [--seed S]
#
# --quick runs one trial of each fault (integration/test.sh runs it). Starts SeaweedFS, Kafka and
# toxiproxy when they are not running. Env: LEXEMBED_BIN (default: the debug build's lexembed).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/integration/env.sh"
"$ROOT/integration/s3.sh" start >/dev/null
export LEXEMBED_KAFKA_BROKERS="${LEXEMBED_KAFKA_BROKERS:-$("$ROOT/integration/kafka.sh" start | tail -1)}"
"$ROOT/integration/toxiproxy.sh" start
eval "$("$ROOT/integration/s3.sh" env)"
exec python "$ROOT/integration/python/faults.py" --report "$ROOT/target/faults/report.json" "$@"
