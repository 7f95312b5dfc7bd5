#!/usr/bin/env bash
# The container image, built and tried here without a registry or a Docker engine: a Debian base made
# by debootstrap from the Debian archive, the Dockerfile's runtime stage built by buildah (vfs storage,
# chroot isolation) with the lexembed binary and ONNX Runtime library this machine built (the
# "prebuilt" stages: compiling inside the image is an hour's release build), then `lexembed --help`
# and a 100-row pipeline run inside it as its non-root user, the result read back by pylance.
# Prints the image's size. (podman run fails in this sandbox on setrlimit; buildah run works.)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
source "$ROOT/integration/env.sh"
export STORAGE_DRIVER=vfs BUILDAH_ISOLATION=chroot
say() { printf '[image] %s\n' "$*"; }
for tool in buildah debootstrap; do
  command -v "$tool" >/dev/null || { echo "$tool missing: run integration/setup.sh"; exit 1; }
done

base=localhost/lexembed-test-base:bookworm
if ! buildah inspect --type image "$base" >/dev/null 2>&1; then
  rootfs="$LEXEMBED_HOME/image/rootfs"
  if [ ! -x "$rootfs/usr/bin/apt-get" ]; then
    say "debootstrap: Debian bookworm minbase -> $rootfs"
    rm -rf "$rootfs" && mkdir -p "$(dirname "$rootfs")"
    debootstrap --variant=minbase bookworm "$rootfs" http://deb.debian.org/debian >/dev/null
  fi
  ctr=$(buildah from scratch)
  buildah copy -q "$ctr" "$rootfs" / >/dev/null
  buildah config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "$ctr"
  buildah commit -q --rm "$ctr" "$base" >/dev/null
fi

work=$(mktemp -d)
trap 'buildah rm --all >/dev/null 2>&1 || true; buildah rmi -f localhost/lexembed:test >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
binary="${LEXEMBED_IMAGE_BINARY:-$CARGO_TARGET_DIR/debug/lexembed}"
mkdir -p "$work/ctx/dist"
cp "$binary" "$work/ctx/dist/lexembed"
strip "$work/ctx/dist/lexembed" 2>/dev/null || true
cp "$LEXEMBED_HOME"/lib/libonnxruntime.so.* "$work/ctx/dist/"
say "buildah bud (runtime stage, prebuilt binary $(du -h "$work/ctx/dist/lexembed" | cut -f1) and ONNX Runtime)"
buildah bud -q --layers=false -t localhost/lexembed:test -f "$ROOT/Dockerfile" \
  --build-arg BASE="$base" --build-arg BINARY=prebuilt --build-arg ORT=prebuilt "$work/ctx" >/dev/null

ctr=$(buildah from localhost/lexembed:test)
buildah run "$ctr" -- /usr/local/bin/lexembed --help | grep -q "Usage: lexembed" \
  || { echo "lexembed --help failed inside the image"; exit 1; }
[ "$(buildah run "$ctr" -- id -u)" = 10001 ] || { echo "the image does not run as uid 10001"; exit 1; }

say "a 100-row pipeline inside the image (tiny model, BOE articles)"
data="$work/data"
mkdir -p "$data"
cp -r "$ROOT/operators/encoder/tests/fixtures/tiny-xlmr" "$data/model"
head -100 "$LEXEMBED_HOME/data/boe_articles.jsonl" > "$data/docs.jsonl"
cat > "$data/p.yaml" <<'SPEC'
name: image-test
source: {kind: file, path: docs.jsonl, metadata_fields: [law]}
encoder: {model: model}
sink: {uri: out.lance}
SPEC
chmod -R a+rwX "$data"
buildah run -v "$data:/data" "$ctr" -- /usr/local/bin/lexembed run /data/p.yaml >/dev/null
"$LEXEMBED_VENV/bin/python" - "$data/out.lance" <<'PY'
import sys, lance
ds = lance.dataset(sys.argv[1])
n = ds.count_rows()
assert n == 100, f"{n} rows written inside the image, expected 100"
print(f"[image] pylance reads the {n} rows the image wrote, columns {ds.schema.names}")
PY
size=$(buildah images --format '{{.Size}}' localhost/lexembed:test)
say "ok: image localhost/lexembed:test is $size (base $(buildah images --format '{{.Size}}' "$base"))"
