# Sourced by the local service scripts (kafka.sh, s3.sh): a background process tracked by a pid file.
# The caller sets PIDFILE and STOP_GRACE (seconds between SIGTERM and SIGKILL) and defines log().

running() { [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; }

# Stops the process cleanly (SIGTERM, then waits up to STOP_GRACE seconds before SIGKILL).
stop() {
  if ! running; then rm -f "$PIDFILE"; return; fi
  local pid; pid="$(cat "$PIDFILE")"
  log "stopping (pid $pid)"
  kill -TERM "$pid"
  for _ in $(seq 1 "$STOP_GRACE"); do kill -0 "$pid" 2>/dev/null || { rm -f "$PIDFILE"; return; }; sleep 1; done
  log "still running after $STOP_GRACE s: SIGKILL"; kill -KILL "$pid"; rm -f "$PIDFILE"
}
