#!/usr/bin/env bash
# The README's first command: set up this machine (idempotent), build lexembed, run the main job.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$ROOT/integration/setup.sh"
source "$ROOT/integration/env.sh"
printf '\n\033[1m[demo] building lexembed\033[0m\n'
cargo build --locked -p lexembed --manifest-path "$ROOT/Cargo.toml"
printf '\n\033[1m[demo] running the main job\033[0m\n'
exec "$CARGO_TARGET_DIR/debug/lexembed" demo "$@"
