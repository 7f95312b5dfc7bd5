#!/usr/bin/env bash
# A real fault injector between lexembed and what it depends on: toxiproxy (Shopify, v2.5.0, built
# from the Go module proxy), for the benchmarks and tests that need a slow or broken network.
#
#   integration/toxiproxy.sh install                      # build toxiproxy-server (once)
#   integration/toxiproxy.sh start                        # start the server (API on 127.0.0.1:8474)
#   integration/toxiproxy.sh proxy NAME LISTEN UPSTREAM   # e.g. proxy s3 127.0.0.1:28333 127.0.0.1:18333
#   integration/toxiproxy.sh latency NAME MS [JITTER_MS]  # add MS to every response of proxy NAME
#   integration/toxiproxy.sh clear NAME                   # remove NAME's toxics
#   integration/toxiproxy.sh stop
#
# Env: LEXEMBED_TOXIPROXY_API (default 127.0.0.1:8474). The proxies live as long as the server.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/integration/env.sh"
source "$ROOT/integration/service.sh"   # running, stop
TOXIPROXY="github.com/Shopify/toxiproxy/v2/cmd/server@v2.5.0"
API="${LEXEMBED_TOXIPROXY_API:-127.0.0.1:8474}"
THOME="$LEXEMBED_HOME/toxiproxy"
BIN="$THOME/bin/server"
PIDFILE="$THOME/toxiproxy.pid"
STOP_GRACE=10

log() { printf '[toxiproxy] %s\n' "$*" >&2; }

install() {
  [ -x "$BIN" ] && return
  command -v go >/dev/null || { log "go not found: install Go to build toxiproxy"; exit 1; }
  log "building toxiproxy ($TOXIPROXY) from the Go module proxy"
  mkdir -p "$THOME/bin"
  (cd /tmp && GOBIN="$THOME/bin" go install "$TOXIPROXY")
}

api() { curl -sf -X "$1" "http://$API$2" ${3:+-H 'Content-Type: application/json' -d "$3"}; }

start() {
  install
  if running; then log "already running (pid $(cat "$PIDFILE"))"; return; fi
  mkdir -p "$THOME"
  log "starting, API on $API (log $THOME/toxiproxy.log)"
  nohup "$BIN" -host "${API%:*}" -port "${API##*:}" > "$THOME/toxiproxy.log" 2>&1 &
  echo $! > "$PIDFILE"
  for _ in $(seq 1 50); do
    api GET /version >/dev/null 2>&1 && { log "ready"; return; }
    running || { log "exited; last lines:"; tail -20 "$THOME/toxiproxy.log" >&2; exit 1; }
    sleep 0.2
  done
  log "not ready after 10 s"; exit 1
}

proxy() {
  local name="$1" listen="$2" upstream="$3"
  api DELETE "/proxies/$name" >/dev/null 2>&1 || true
  api POST /proxies "{\"name\":\"$name\",\"listen\":\"$listen\",\"upstream\":\"$upstream\",\"enabled\":true}" >/dev/null
  log "proxy $name: $listen -> $upstream"
}

latency() {
  local name="$1" ms="$2" jitter="${3:-0}"
  api DELETE "/proxies/$name/toxics/latency" >/dev/null 2>&1 || true
  api POST "/proxies/$name/toxics" \
    "{\"name\":\"latency\",\"type\":\"latency\",\"stream\":\"downstream\",\"attributes\":{\"latency\":$ms,\"jitter\":$jitter}}" >/dev/null
  log "proxy $name: +$ms ms (jitter $jitter ms) on every response"
}

clear_toxics() {
  local name="$1" t
  for t in $(api GET "/proxies/$name/toxics" | python3 -c 'import json,sys; print(" ".join(t["name"] for t in json.load(sys.stdin)))'); do
    api DELETE "/proxies/$name/toxics/$t" >/dev/null
  done
}

case "${1:-}" in
  install) install ;;
  start) start ;;
  proxy) shift; proxy "$@" ;;
  latency) shift; latency "$@" ;;
  clear) shift; clear_toxics "$@" ;;
  stop) stop ;;
  *) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
