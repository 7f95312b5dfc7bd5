#!/usr/bin/env bash
# A real Apache Kafka 4.x broker (single-node KRaft on 127.0.0.1) for lexembed's tests and demo.
#
#   integration/kafka.sh install   # resolve the broker's jars from Maven Central (once)
#   integration/kafka.sh start     # format (first time) and start; returns when the broker answers
#   integration/kafka.sh stop      # stop cleanly (SIGTERM, then wait)
#   integration/kafka.sh restart   # stop + start, keeping the data (for broker-restart tests)
#   integration/kafka.sh status
#   integration/kafka.sh reset     # stop and delete the data
#   integration/kafka.sh delete-topic NAME...   # delete topics (missing ones are fine)
#
# Env: LEXEMBED_KAFKA_PORT (default 19092; the controller uses PORT+1; PORT+2 is a second client
# listener that advertises PORT+3, where the faults harness puts a proxy), LEXEMBED_KAFKA_DATA
# (default $LEXEMBED_HOME/kafka/data). Prints the bootstrap address on start.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/integration/env.sh"
source "$ROOT/integration/service.sh"   # running, stop
PORT="${LEXEMBED_KAFKA_PORT:-19092}"
CPORT=$((PORT + 1))
PROXIED_PORT=$((PORT + 2))
PROXIED_ADVERTISED_PORT=$((PORT + 3))
KHOME="$LEXEMBED_HOME/kafka"
LIB="$KHOME/lib"
DATA="${LEXEMBED_KAFKA_DATA:-$KHOME/data}"
PIDFILE="$DATA/kafka.pid"
STOP_GRACE=60
CP="$LIB/*"

log() { printf '[kafka] %s\n' "$*" >&2; }

install() {
  local pom="$ROOT/integration/kafka/pom.xml" stamp="$LIB/.pom.sha256"
  local want; want="$(sha256sum "$pom" | cut -d' ' -f1)"
  if [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then return; fi
  command -v mvn >/dev/null || { log "mvn not found (apt-get install maven)"; exit 1; }
  command -v java >/dev/null || { log "java not found (a JDK 17+)"; exit 1; }
  log "resolving Kafka from Maven Central into $LIB"
  rm -rf "$LIB.tmp"
  mvn -q -B -f "$pom" dependency:copy-dependencies -DoutputDirectory="$LIB.tmp" -DincludeScope=runtime >&2
  rm -rf "$LIB" && mv "$LIB.tmp" "$LIB"
  echo "$want" > "$stamp"
}

ready() {
  # The broker is ready when it lists topics through its client port.
  java -cp "$CP" -Dlog4j2.configurationFile="$ROOT/integration/kafka/log4j2.properties" \
    -Dkafka.logs.dir="$DATA/tools" org.apache.kafka.tools.TopicCommand \
    --bootstrap-server "127.0.0.1:$PORT" --list >/dev/null 2>&1
}

start() {
  install
  if running; then log "already running (pid $(cat "$PIDFILE")) on 127.0.0.1:$PORT"; echo "127.0.0.1:$PORT"; return; fi
  mkdir -p "$DATA"
  sed -e "s|@PORT@|$PORT|g" -e "s|@CONTROLLER_PORT@|$CPORT|g" -e "s|@DATA@|$DATA|g" \
    -e "s|@PROXIED_PORT@|$PROXIED_PORT|g" -e "s|@PROXIED_ADVERTISED_PORT@|$PROXIED_ADVERTISED_PORT|g" \
    "$ROOT/integration/kafka/server.properties.in" > "$DATA/server.properties"
  if [ ! -f "$DATA/log/meta.properties" ]; then
    local id; id="$(java -cp "$CP" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -1)"
    java -cp "$CP" -Dlog4j2.configurationFile="$ROOT/integration/kafka/log4j2.properties" -Dkafka.logs.dir="$DATA" \
      kafka.tools.StorageTool format -t "$id" -c "$DATA/server.properties" >/dev/null
  fi
  log "starting on 127.0.0.1:$PORT (data $DATA, log $DATA/server.log)"
  nohup java -Xms256m -Xmx1g -XX:+UseG1GC -cp "$CP" \
    -Dlog4j2.configurationFile="$ROOT/integration/kafka/log4j2.properties" -Dkafka.logs.dir="$DATA" \
    kafka.Kafka "$DATA/server.properties" > "$DATA/stdout.log" 2>&1 &
  echo $! > "$PIDFILE"
  for _ in $(seq 1 120); do
    if ready; then log "ready"; echo "127.0.0.1:$PORT"; return; fi
    running || { log "broker exited; last lines of $DATA/server.log:"; tail -20 "$DATA/server.log" >&2; exit 1; }
    sleep 1
  done
  log "not ready after 120 s; see $DATA/server.log"; exit 1
}

case "${1:-}" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  restart) stop; start ;;
  status) if running; then echo "running pid $(cat "$PIDFILE") on 127.0.0.1:$PORT"; else echo "stopped"; exit 1; fi ;;
  reset) stop; rm -rf "$DATA" ;;
  delete-topic)
    shift
    for t in "$@"; do
      java -cp "$CP" -Dlog4j2.configurationFile="$ROOT/integration/kafka/log4j2.properties" -Dkafka.logs.dir="$DATA/tools" \
        org.apache.kafka.tools.TopicCommand --bootstrap-server "127.0.0.1:$PORT" --delete --if-exists --topic "$t" >&2
    done ;;
  *) sed -n '2,13p' "$0"; exit 2 ;;
esac
