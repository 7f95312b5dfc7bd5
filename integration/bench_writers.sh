#!/usr/bin/env bash
# `lexembed bench writers` on the three stores of BENCHMARKS.md, in one run: a local directory,
# SeaweedFS (integration/s3.sh), and the same SeaweedFS behind toxiproxy adding 25 ms to every
# response (the latency of a real object store). Starts SeaweedFS and toxiproxy if they are not
# running; extra arguments go to the benchmark (e.g. --writers 1,16 --seconds 30 --json).
#
#   integration/bench_writers.sh [BENCH ARGS…]
#
# Env: LEXEMBED_BENCH (default: lexembed-bench of the bench-release build), LEXEMBED_LATENCY_MS (25).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/integration/env.sh"
BENCH="${LEXEMBED_BENCH:-$CARGO_TARGET_DIR/bench-release/lexembed-bench}"
LATENCY_MS="${LEXEMBED_LATENCY_MS:-25}"
S3_PORT="${LEXEMBED_S3_PORT:-18333}"
# Clear of the ports SeaweedFS takes (PORT+1..3 and their gRPC ports PORT+10000..10003).
PROXY_PORT=$((S3_PORT + 20))
[ -x "$BENCH" ] || { echo "no benchmark binary at $BENCH: cargo build --profile bench-release -p lexembed-bench" >&2; exit 1; }
"$ROOT/integration/s3.sh" start >/dev/null
"$ROOT/integration/toxiproxy.sh" start
"$ROOT/integration/toxiproxy.sh" proxy seaweedfs "127.0.0.1:$PROXY_PORT" "127.0.0.1:$S3_PORT"
"$ROOT/integration/toxiproxy.sh" latency seaweedfs "$LATENCY_MS"
eval "$("$ROOT/integration/s3.sh" env)"
stamp="$(date +%s)"
exec "$BENCH" writers \
  --store local \
  --store "seaweedfs=s3://lexembed/writers-$stamp" \
  --store "seaweedfs+${LATENCY_MS}ms=s3://lexembed/writers-$stamp-slow@http://127.0.0.1:$PROXY_PORT" \
  "$@"
