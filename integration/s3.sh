#!/usr/bin/env bash
# A real S3-compatible object store (SeaweedFS, one process on 127.0.0.1) for lexembed's object-storage
# tests and for trying Lance on s3:// locally.
#
#   integration/s3.sh install   # build `weed` from the Go module proxy (once, into $(go env GOPATH)/bin)
#   integration/s3.sh start     # start; returns when the S3 API answers, with the bucket created
#   integration/s3.sh env       # the AWS_* variables that point lexembed (and pylance) at it
#   integration/s3.sh stop
#   integration/s3.sh status
#   integration/s3.sh reset     # stop and delete the data
#
# Only the S3 API is served (SeaweedFS's Iceberg and Lance-namespace servers are off). It requires
# signed requests: one identity (access key `lexembed`, secret below), so the tests exercise
# credentials, not anonymous access. Env: LEXEMBED_S3_PORT (default 18333; the master,
# volume and filer use PORT+1..PORT+3 and their gRPC ports PORT+10001..PORT+10003), LEXEMBED_S3_BUCKET
# (default lexembed). Prints the endpoint on start.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/integration/env.sh"
source "$ROOT/integration/service.sh"   # running, stop
# One exact SeaweedFS commit: the Go proxy serves this pseudo-version (no tagged release is listed).
SEAWEEDFS="github.com/seaweedfs/seaweedfs@v0.0.0-20261109003541-7506e5f91cd6"
PORT="${LEXEMBED_S3_PORT:-18333}"
BUCKET="${LEXEMBED_S3_BUCKET:-lexembed}"
ACCESS_KEY="lexembed"
SECRET_KEY="lexembed-local-secret"
SHOME="$LEXEMBED_HOME/s3"
DATA="$SHOME/data"
PIDFILE="$SHOME/weed.pid"
STOP_GRACE=30
WEED="${WEED:-$(command -v weed 2>/dev/null || echo "$(go env GOPATH 2>/dev/null || echo "$HOME/go")/bin/weed")}"

log() { printf '[s3] %s\n' "$*" >&2; }

install() {
  [ -x "$WEED" ] && return
  command -v go >/dev/null || { log "go not found: install Go to build SeaweedFS"; exit 1; }
  # `go install module@version` refuses modules whose go.mod has replace directives (SeaweedFS has
  # some), so build from the downloaded module source as the main module instead.
  log "building SeaweedFS ($SEAWEEDFS) from the Go module proxy; several minutes the first time"
  local dir src
  dir="$(cd /tmp && go mod download -json "$SEAWEEDFS" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')"
  src="$(mktemp -d)"
  cp -r "$dir"/. "$src" && chmod -R u+w "$src"
  (cd "$src" && go build -o "$WEED.tmp" ./weed) && mv "$WEED.tmp" "$WEED"
  rm -rf "$src"
}

s3_env() {
  cat <<ENV
export AWS_ENDPOINT=http://127.0.0.1:$PORT
export AWS_REGION=us-east-1
export AWS_ACCESS_KEY_ID=$ACCESS_KEY
export AWS_SECRET_ACCESS_KEY=$SECRET_KEY
export AWS_ALLOW_HTTP=true
export AWS_VIRTUAL_HOSTED_STYLE_REQUEST=false
ENV
}

# A signed S3 request (curl's SigV4), as the configured identity.
s3_curl() {
  curl -s --aws-sigv4 "aws:amz:us-east-1:s3" --user "$ACCESS_KEY:$SECRET_KEY" \
    -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" "$@"
}

start() {
  install
  if running; then log "already running (pid $(cat "$PIDFILE"))"; echo "http://127.0.0.1:$PORT"; return; fi
  mkdir -p "$DATA"
  cat > "$SHOME/s3.json" <<JSON
{"identities": [{"name": "lexembed",
  "credentials": [{"accessKey": "$ACCESS_KEY", "secretKey": "$SECRET_KEY"}],
  "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}
JSON
  log "starting on 127.0.0.1:$PORT (data $DATA, log $SHOME/weed.log)"
  nohup "$WEED" server -dir="$DATA" -ip=127.0.0.1 -ip.bind=127.0.0.1 \
    -master.port=$((PORT + 1)) -master.port.grpc=$((PORT + 10001)) -master.volumeSizeLimitMB=512 \
    -volume.port=$((PORT + 2)) -volume.port.grpc=$((PORT + 10002)) -volume.max=16 \
    -filer.port=$((PORT + 3)) -filer.port.grpc=$((PORT + 10003)) \
    -s3 -s3.port="$PORT" -s3.port.iceberg=0 -s3.port.lance=0 -s3.config="$SHOME/s3.json" > "$SHOME/weed.log" 2>&1 &
  echo $! > "$PIDFILE"
  for _ in $(seq 1 120); do
    # Ready when a signed bucket creation (or "it exists") answers.
    local code
    code="$(s3_curl -o /dev/null -w '%{http_code}' -X PUT "http://127.0.0.1:$PORT/$BUCKET" || true)"
    case "$code" in
      200 | 409) log "ready (bucket $BUCKET)"; echo "http://127.0.0.1:$PORT"; return ;;
    esac
    running || { log "weed exited; last lines of $SHOME/weed.log:"; tail -20 "$SHOME/weed.log" >&2; exit 1; }
    sleep 1
  done
  log "not ready after 120 s; see $SHOME/weed.log"; exit 1
}

case "${1:-}" in
  install) install ;;
  start) start ;;
  env) s3_env ;;
  curl) shift; s3_curl "$@" ;;
  stop) stop ;;
  status) if running; then echo "running (pid $(cat "$PIDFILE")) on http://127.0.0.1:$PORT"; else echo "stopped"; exit 1; fi ;;
  reset) stop; rm -rf "$DATA" ;;
  *) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
