#!/usr/bin/env bash
# The test command: sets up what the tests need (idempotent), then runs every check and test.
#   integration/test.sh
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
"$ROOT/integration/setup.sh"
source "$ROOT/integration/env.sh"
step() { printf '\n\033[1m[test %s] %s\033[0m\n' "$(date +%H:%M:%S)" "$*"; }

step "workspace crates rebuilt when the target dir last built another checkout"
# The target dir is shared by every clone on the machine (dependencies compile once), but cargo keeps
# a test binary built in another checkout as fresh, with that checkout's CARGO_MANIFEST_DIR baked in:
# its fixtures, or none when that checkout is gone. Our own crates are rebuilt instead (minutes).
last_root="$CARGO_TARGET_DIR/.last-checkout"
if [ -f "$last_root" ] && [ "$(cat "$last_root")" != "$ROOT" ]; then
  echo "the target dir last built $(cat "$last_root"): cleaning the workspace crates"
  cargo metadata --no-deps --format-version 1 \
    | python3 -c 'import json,sys; print("\n".join(p["name"] for p in json.load(sys.stdin)["packages"]))' \
    | sed 's/^/-p /' | xargs cargo clean --profile dev
fi
mkdir -p "$CARGO_TARGET_DIR" && echo "$ROOT" > "$last_root"
step "cargo fmt --check"
cargo fmt --all -- --check
step "cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings
step "the product binary links no benchmark-only crate"
# lexembed-bench anywhere, or tempfile as a direct dependency (it was one only for the benchmarks).
if cargo tree -p lexembed -e normal --locked --prefix none 2>/dev/null | grep -E '^lexembed-bench v' \
  || cargo tree -p lexembed -e normal --locked --depth 1 --prefix none 2>/dev/null | grep -E '^tempfile v'; then
  echo "bench-only crates above in lexembed's tree"; exit 1
fi
step "build every binary (lexembed, lexembed-bench: the integration tests run them)"
cargo build --workspace --locked
step "one arrow version in the tree"
if cargo tree --workspace -d --locked -e normal 2>/dev/null | grep -E '^arrow(-[a-z]+)? v' ; then echo "duplicate arrow crates above"; exit 1; fi
step "Kafka broker (single-node KRaft on 127.0.0.1) for the streaming tests"
export LEXEMBED_KAFKA_BROKERS="$("$ROOT/integration/kafka.sh" start | tail -1)"
trap '"$ROOT/integration/kafka.sh" stop; "$ROOT/integration/s3.sh" stop' EXIT
step "S3-compatible server (SeaweedFS on 127.0.0.1, fresh data) for the object-storage test"
"$ROOT/integration/s3.sh" reset
"$ROOT/integration/s3.sh" start
step "cargo test (workspace)"
cargo test --workspace --locked --no-fail-fast 2>&1 | tee "$CARGO_TARGET_DIR/test.log"
step "integration tests"
for t in "$ROOT"/integration/tests/*.sh; do
  [ -e "$t" ] || continue
  echo "--- $t"; bash "$t"
done
# One closing line for CI: cargo's own summaries are above.
passed=$(grep -Eo '[0-9]+ passed' "$CARGO_TARGET_DIR/test.log" | awk '{s+=$1} END {print s+0}')
failed=$(grep -Eo '[0-9]+ failed' "$CARGO_TARGET_DIR/test.log" | awk '{s+=$1} END {print s+0}')
echo "tests: $passed passed, $failed failed"
