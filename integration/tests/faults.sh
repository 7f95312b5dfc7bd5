#!/usr/bin/env bash
# Faults injected for real (integration/faults.sh --quick): one trial of each object-store, broker,
# disk and process fault against a Kafka → Lance pipeline, and of each `lexembed serve` fault; every
# record exactly once, every failure a clean ride-out or an exit naming its reason followed by a
# restart that finishes, a few log lines per fault. The full matrix (three trials of each) is
# `integration/faults.sh`, its figures in BENCHMARKS.md.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
trap '"$ROOT/integration/toxiproxy.sh" stop' EXIT
"$ROOT/integration/faults.sh" --quick
