#!/usr/bin/env bash
# Lance on S3-compatible object storage: a real SeaweedFS S3 server on 127.0.0.1 (built from the Go
# module proxy by setup), two `lexembed run` processes appending to one dataset at once (both finding
# it missing, so both try to create it), a pylance reader polling meanwhile. Every row lands once and
# the reader only ever sees whole commits.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
source "$ROOT/integration/env.sh"
export PATH="$CARGO_TARGET_DIR/debug:$PATH"
WEED="${WEED:-$(command -v weed || echo "$(go env GOPATH)/bin/weed")}"
[ -x "$WEED" ] || { echo "s3: weed (SeaweedFS) not found: integration/setup.sh builds it"; exit 1; }
work="$(mktemp -d)"
port=$((18000 + RANDOM % 1000))
"$WEED" server -dir="$work/weed" -ip=127.0.0.1 -ip.bind=127.0.0.1 -master.port=$((port + 1)) \
  -volume.port=$((port + 2)) -filer.port=$((port + 3)) -s3 -s3.port="$port" > "$work/weed.log" 2>&1 &
weed_pid=$!
trap 'kill $weed_pid 2>/dev/null; wait $weed_pid 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 1 60); do
  curl -s -o /dev/null "http://127.0.0.1:$port/" && break
  kill -0 $weed_pid || { tail -20 "$work/weed.log"; exit 1; }
  sleep 1
done
curl -sf -X PUT "http://127.0.0.1:$port/lexembed" > /dev/null || { echo "s3: cannot create the bucket"; tail -20 "$work/weed.log"; exit 1; }

head -n 1200 "$LEXEMBED_HOME/data/boe_articles.jsonl" > "$work/a.jsonl"
sed -n '1201,2400p' "$LEXEMBED_HOME/data/boe_articles.jsonl" > "$work/b.jsonl"
for part in a b; do
  cat > "$work/$part.yaml" <<YAML
name: s3-writer-$part
source: {kind: file, path: $part.jsonl}
encoder: {model: $ROOT/operators/encoder/tests/fixtures/tiny-xlmr}
sink:
  uri: s3://lexembed/docs.lance
  mode: append
  storage_options:
    aws_endpoint: http://127.0.0.1:$port
    aws_region: us-east-1
    aws_access_key_id: lexembed
    aws_secret_access_key: lexembed
    allow_http: "true"
    aws_virtual_hosted_style_request: "false"
YAML
done
export S3_PORT="$port"
python "$ROOT/integration/python/s3_reader.py" watch "$work/seen.json" & reader=$!
lexembed run "$work/a.yaml" > "$work/a.out" 2>&1 & wa=$!
lexembed run "$work/b.yaml" > "$work/b.out" 2>&1 & wb=$!
ok=0
wait $wa || { echo "s3: writer a failed"; cat "$work/a.out"; ok=1; }
wait $wb || { echo "s3: writer b failed"; cat "$work/b.out"; ok=1; }
sleep 2; kill $reader 2>/dev/null; wait $reader 2>/dev/null || true
[ $ok = 0 ] || exit 1
python "$ROOT/integration/python/s3_reader.py" check "$work/seen.json" 1200 2400
