#!/usr/bin/env bash
# Local Kafka + FerretDB together.
#
#   deploy/local/services.sh up|down|status
#   deploy/local/services.sh exec -- CMD [ARGS...]
#
# `exec` brings the services up, runs CMD with STUDIO_KAFKA_BOOTSTRAP and STUDIO_MONGO_URL
# pointing at them, and on exit (also Ctrl-C) stops the services that it started itself;
# services that were already running stay up. Exit status is CMD's.
# See kafka.sh and ferretdb.sh for the environment variables.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

cmd_up() {
  "$HERE/kafka.sh" start
  "$HERE/ferretdb.sh" start
}

cmd_down() {
  local rc=0
  "$HERE/ferretdb.sh" stop || rc=1
  "$HERE/kafka.sh" stop || rc=1
  return "$rc"
}

cmd_status() {
  local rc=0
  "$HERE/kafka.sh" status || rc=1
  "$HERE/ferretdb.sh" status || rc=1
  return "$rc"
}

export_endpoints() {
  if [[ "${STUDIO_EXTERNAL_KAFKA:-0}" == 1 ]]; then
    export STUDIO_KAFKA_BOOTSTRAP="${STUDIO_KAFKA_BOOTSTRAP:-127.0.0.1:${STUDIO_KAFKA_PORT:-9092}}"
  else
    export STUDIO_KAFKA_BOOTSTRAP="127.0.0.1:${STUDIO_KAFKA_PORT:-9092}"
  fi
  if [[ "${STUDIO_EXTERNAL_MONGO:-0}" == 1 ]]; then
    export STUDIO_MONGO_URL="${STUDIO_MONGO_URL:-mongodb://127.0.0.1:${STUDIO_MONGO_PORT:-27017}}"
  else
    export STUDIO_MONGO_URL="mongodb://127.0.0.1:${STUDIO_MONGO_PORT:-27017}"
  fi
}

cmd_exec() {
  [[ "${1:-}" == "--" ]] && shift
  [[ $# -gt 0 ]] || { echo "usage: $0 exec -- CMD [ARGS...]" >&2; exit 2; }
  # Globals, not locals: the EXIT trap runs after this function has returned.
  STOP_KAFKA=1 STOP_FERRETDB=1
  "$HERE/kafka.sh" is-ours && STOP_KAFKA=0
  "$HERE/ferretdb.sh" is-ours && STOP_FERRETDB=0
  # shellcheck disable=SC2317,SC2329 # invoked by the traps below
  cleanup() {
    trap - EXIT INT TERM
    [[ "$STOP_FERRETDB" == 1 ]] && { "$HERE/ferretdb.sh" stop || true; }
    [[ "$STOP_KAFKA" == 1 ]] && { "$HERE/kafka.sh" stop || true; }
  }
  trap cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  cmd_up
  export_endpoints
  local rc=0
  "$@" || rc=$?
  exit "$rc"
}

case "${1:-}" in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  exec)
    shift
    cmd_exec "$@"
    ;;
  *)
    echo "usage: $0 up|down|status|exec -- CMD [ARGS...]" >&2
    exit 2
    ;;
esac
