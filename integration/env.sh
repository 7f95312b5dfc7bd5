# Sourced by lexembed's scripts (and by you): where setup.sh put things, and where cargo builds.
export LEXEMBED_HOME="${LEXEMBED_HOME:-$HOME/.cache/lexembed}"
export LEXEMBED_VENV="${LEXEMBED_VENV:-$LEXEMBED_HOME/venv}"
# One target dir per machine, outside the clone: a fresh clone reuses what earlier builds compiled.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/lexembed-target}"
if [ -z "${ORT_DYLIB_PATH:-}" ]; then
  for f in "$LEXEMBED_HOME"/lib/libonnxruntime.so.*; do [ -e "$f" ] && export ORT_DYLIB_PATH="$f"; done
fi
export HF_HUB_OFFLINE=1
export PATH="$LEXEMBED_VENV/bin:$PATH"
