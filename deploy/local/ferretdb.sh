#!/usr/bin/env bash
# Local FerretDB 1.24 (MongoDB wire protocol over SQLite) for tests and `make run`.
#
#   deploy/local/ferretdb.sh start|stop|status
#
# Built once with Go from deploy/local/ferretdb (-> .local/cache/bin/ferretdb).
# Environment:
#   STUDIO_LOCAL_STATE            state dir (default .local/state); FerretDB uses <state>/ferretdb
#   STUDIO_MONGO_PORT             port (default 27017)
#   STUDIO_EXTERNAL_MONGO=1       start nothing; wait for the MongoDB at STUDIO_MONGO_URL
#                                 (default mongodb://127.0.0.1:$STUDIO_MONGO_PORT)
#   STUDIO_MONGO_READY_TIMEOUT    seconds to wait for readiness (default 30)
#   STUDIO_FERRETDB_LOG_LEVEL     debug|info|warn|error (default error; warn also dumps every failed command)
set -euo pipefail

SERVICE_NAME=ferretdb
# shellcheck source=deploy/local/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

MONGO_PORT="${STUDIO_MONGO_PORT:-27017}"
READY_TIMEOUT="${STUDIO_MONGO_READY_TIMEOUT:-30}"
EXTERNAL="${STUDIO_EXTERNAL_MONGO:-0}"
LOG_LEVEL="${STUDIO_FERRETDB_LOG_LEVEL:-error}"
if [[ "$EXTERNAL" == 1 ]]; then
  MONGO_URL="${STUDIO_MONGO_URL:-mongodb://127.0.0.1:$MONGO_PORT}"
else
  MONGO_URL="mongodb://127.0.0.1:$MONGO_PORT"
fi

SRC_DIR="$DEPLOY_DIR/ferretdb"
BIN="$CACHE_DIR/bin/ferretdb"
HOME_DIR="$STATE_DIR/ferretdb"
DATA_DIR="$HOME_DIR/data"
PIDFILE="$HOME_DIR/ferretdb.pid"
LOG_FILE="$HOME_DIR/ferretdb.log"

# FerretDB 1.24's SQLite backend creates its unique _id index on `_ferretdb_sqlite->"_id"` but
# looks documents up with `_ferretdb_sqlite->'$._id'`: SQLite cannot match the two expressions,
# so every lookup by _id scans the whole collection (55 ms at 10k documents instead of 2 ms,
# measured here). We build from a copy of the module whose lookups use the index's expression.
patched_source() {
  local dest="$1" mod file
  mod="$(cd "$SRC_DIR" && go mod download -json github.com/FerretDB/FerretDB | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
  [[ -n "$mod" && -d "$mod" ]] || die "could not find the FerretDB module's source (go mod download)"
  rm -rf "$(dirname "$dest")"
  mkdir -p "$(dirname "$dest")"
  cp -r "$mod" "$dest"
  chmod -R u+w "$dest"
  file="$dest/internal/backends/sqlite/metadata/metadata.go"
  grep -q "IDColumn = DefaultColumn + \"->'\\\$._id'\"" "$file" \
    || die "FerretDB's $file is not what the _id index patch expects; review deploy/local/ferretdb.sh"
  sed -i "s|IDColumn = DefaultColumn + \"->'\\\$._id'\"|IDColumn = DefaultColumn + \"->'_id'\"|" "$file"
  grep -q "IDColumn = DefaultColumn + \"->'_id'\"" "$file" || die "patching $file failed"
}

build_binary() {
  local digest lock
  digest="$(files_digest "$SRC_DIR/main.go" "$SRC_DIR/go.mod" "$SRC_DIR/go.sum" "${BASH_SOURCE[0]}")"
  mkdir -p "$CACHE_DIR/bin"
  exec {lock}>"$CACHE_DIR/.ferretdb-build.lock"
  flock "$lock"
  if [[ -x "$BIN" && -f "$BIN.digest" && "$(<"$BIN.digest")" == "$digest" ]]; then
    exec {lock}>&-
    return 0
  fi
  command -v go >/dev/null || die "Go is needed once to build FerretDB; install it or set STUDIO_EXTERNAL_MONGO=1"
  log "building FerretDB with Go into $BIN (once; a few minutes from a cold module cache)"
  local started=$SECONDS
  local build="$CACHE_DIR/ferretdb-build"
  patched_source "$build/ferretdb-src"
  cp "$SRC_DIR/main.go" "$SRC_DIR/go.mod" "$SRC_DIR/go.sum" "$build/"
  printf 'replace github.com/FerretDB/FerretDB => ./ferretdb-src\n' >>"$build/go.mod"
  if ! (cd "$build" && CGO_ENABLED=0 go build -trimpath -o "$BIN.tmp.$$" .); then
    rm -f "$BIN.tmp.$$"
    die "go build failed (see above)"
  fi
  mv "$BIN.tmp.$$" "$BIN"
  printf '%s\n' "$digest" >"$BIN.digest"
  log "built in $((SECONDS - started)) s"
  exec {lock}>&-
}

cmd_start() {
  if [[ "$EXTERNAL" == 1 ]]; then
    log "STUDIO_EXTERNAL_MONGO=1: starting nothing; waiting for MongoDB at $MONGO_URL"
    wait_ready mongo "$MONGO_URL" "$READY_TIMEOUT" ""
    log "external MongoDB is ready"
    return 0
  fi
  local pid
  if pid="$(our_pid "$PIDFILE" "$DATA_DIR/")"; then
    if wait_ready mongo "$MONGO_URL" 5 "$pid" 2>/dev/null; then
      log "already running (pid $pid) and ready at $MONGO_URL; nothing to do"
      return 0
    fi
    log "running (pid $pid) but not ready yet; waiting"
    wait_ready mongo "$MONGO_URL" "$READY_TIMEOUT" "$pid" "$LOG_FILE" \
      || die "FerretDB (pid $pid) is not ready; inspect $LOG_FILE or run '$0 stop'"
    return 0
  fi
  rm -f "$PIDFILE"
  if port_in_use "$MONGO_PORT"; then
    die "port $MONGO_PORT is taken by a process this script did not start (state dir $STATE_DIR); set STUDIO_MONGO_PORT to a free port, or set STUDIO_EXTERNAL_MONGO=1 (and STUDIO_MONGO_URL) to use the MongoDB already running there"
  fi
  build_binary
  mkdir -p "$DATA_DIR"
  # WAL (FerretDB's default) with synchronous=NORMAL: no fsync per commit. Local state only
  # (tests, `make run`): a process crash loses nothing, a power cut may lose the last commits.
  log "starting on 127.0.0.1:$MONGO_PORT (sqlite), state $HOME_DIR"
  local started=$SECONDS
  launch_detached "$PIDFILE" "$LOG_FILE" "$BIN" -listen-addr "127.0.0.1:$MONGO_PORT" \
    -handler sqlite -sqlite-url "file:$DATA_DIR/?_pragma=synchronous(normal)" -log-level "$LOG_LEVEL"
  pid="$(<"$PIDFILE")"
  if ! wait_ready mongo "$MONGO_URL" "$READY_TIMEOUT" "$pid" "$LOG_FILE"; then
    log "FerretDB did not become ready; stopping it"
    terminate "$pid"
    rm -f "$PIDFILE"
    die "FerretDB did not start; log $LOG_FILE"
  fi
  log "ready at $MONGO_URL (pid $pid, $((SECONDS - started)) s)"
}

cmd_stop() {
  if [[ "$EXTERNAL" == 1 ]]; then
    log "STUDIO_EXTERNAL_MONGO=1: not ours to stop"
    return 0
  fi
  local pid
  if ! pid="$(our_pid "$PIDFILE" "$DATA_DIR/")"; then
    rm -f "$PIDFILE"
    log "not running (state $HOME_DIR)"
    return 0
  fi
  log "stopping pid $pid"
  terminate "$pid"
  rm -f "$PIDFILE"
  log "stopped"
}

cmd_status() {
  if [[ "$EXTERNAL" == 1 ]]; then
    if wait_ready mongo "$MONGO_URL" 3 "" 2>/dev/null; then
      log "external MongoDB at $MONGO_URL: ready"
      return 0
    fi
    log "external MongoDB at $MONGO_URL: not reachable"
    return 1
  fi
  local pid
  if ! pid="$(our_pid "$PIDFILE" "$DATA_DIR/")"; then
    log "not running (state $HOME_DIR)"
    return 1
  fi
  if wait_ready mongo "$MONGO_URL" 3 "$pid" 2>/dev/null; then
    log "running (pid $pid), ready at $MONGO_URL, log $LOG_FILE"
    return 0
  fi
  log "running (pid $pid) but not answering at $MONGO_URL; log $LOG_FILE"
  return 1
}

case "${1:-}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  is-ours) [[ "$EXTERNAL" != 1 ]] && our_pid "$PIDFILE" "$DATA_DIR/" >/dev/null ;;  # for services.sh
  *)
    echo "usage: $0 start|stop|status" >&2
    exit 2
    ;;
esac
