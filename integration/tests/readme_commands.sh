#!/usr/bin/env bash
# Every command README.md shows exists as written: subcommands and flags against `--help`, repository
# paths on disk (integration/python/check_readme.py). The runnable blocks are run by readme_tour.sh
# and s3.sh; this catches drift in the rest.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
source "$ROOT/integration/env.sh"
cd "$ROOT"
python integration/python/check_readme.py README.md "$CARGO_TARGET_DIR/debug/lexembed"
