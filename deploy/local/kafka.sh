#!/usr/bin/env bash
# Local single-node Apache Kafka (KRaft, broker+controller) for tests and `make run`.
#
#   deploy/local/kafka.sh start|stop|status
#
# Jars come from Maven Central once (deploy/local/kafka/pom.xml -> .local/cache/kafka-libs).
# Environment:
#   STUDIO_LOCAL_STATE            state dir (default .local/state); Kafka uses <state>/kafka
#   STUDIO_KAFKA_PORT             client port (default 9092)
#   STUDIO_KAFKA_CONTROLLER_PORT  KRaft controller port (default 9093)
#   STUDIO_EXTERNAL_KAFKA=1       start nothing; wait for the Kafka at STUDIO_KAFKA_BOOTSTRAP
#                                 (default 127.0.0.1:$STUDIO_KAFKA_PORT)
#   STUDIO_KAFKA_READY_TIMEOUT    seconds to wait for readiness (default 60)
#   STUDIO_KAFKA_HEAP             JVM heap (default 512m)
set -euo pipefail

SERVICE_NAME=kafka
# shellcheck source=deploy/local/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

KAFKA_PORT="${STUDIO_KAFKA_PORT:-9092}"
CONTROLLER_PORT="${STUDIO_KAFKA_CONTROLLER_PORT:-9093}"
READY_TIMEOUT="${STUDIO_KAFKA_READY_TIMEOUT:-60}"
HEAP="${STUDIO_KAFKA_HEAP:-512m}"
EXTERNAL="${STUDIO_EXTERNAL_KAFKA:-0}"
if [[ "$EXTERNAL" == 1 ]]; then
  BOOTSTRAP="${STUDIO_KAFKA_BOOTSTRAP:-127.0.0.1:$KAFKA_PORT}"
else
  BOOTSTRAP="127.0.0.1:$KAFKA_PORT"
fi

POM="$DEPLOY_DIR/kafka/pom.xml"
LOG4J_CONFIG="$DEPLOY_DIR/kafka/log4j2.properties"
LIBS="$CACHE_DIR/kafka-libs"
HOME_DIR="$STATE_DIR/kafka"
CONFIG="$HOME_DIR/server.properties"
DATA_DIR="$HOME_DIR/data"
LOG_DIR="$HOME_DIR/logs"
PIDFILE="$HOME_DIR/kafka.pid"
STDOUT_LOG="$LOG_DIR/kafka.out"
SERVER_LOG="$LOG_DIR/server.log"

fetch_libs() {
  local digest lock
  digest="$(files_digest "$POM")"
  mkdir -p "$CACHE_DIR"
  exec {lock}>"$CACHE_DIR/.kafka-libs.lock"
  flock "$lock"
  if [[ -f "$LIBS/.complete" && "$(<"$LIBS/.complete")" == "$digest" ]]; then
    exec {lock}>&-
    return 0
  fi
  command -v mvn >/dev/null || die "Maven (mvn) is needed once to fetch the Kafka jars; install it or set STUDIO_EXTERNAL_KAFKA=1"
  log "fetching Kafka jars from Maven Central into $LIBS (once)"
  local tmp="$LIBS.tmp.$$" mvn_log="$CACHE_DIR/kafka-fetch.log" started=$SECONDS
  rm -rf "$tmp"
  if ! mvn -q -B -Dstyle.color=never -f "$POM" dependency:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$tmp" >"$mvn_log" 2>&1; then
    rm -rf "$tmp"
    tail -n 30 "$mvn_log" >&2
    die "Maven could not fetch the Kafka jars; full output in $mvn_log"
  fi
  rm -rf "$LIBS"
  mv "$tmp" "$LIBS"
  printf '%s\n' "$digest" >"$LIBS/.complete"
  log "fetched $(find "$LIBS" -name '*.jar' | wc -l) jars in $((SECONDS - started)) s"
  exec {lock}>&-
}

write_config() {
  mkdir -p "$DATA_DIR" "$LOG_DIR"
  cat >"$CONFIG" <<PROPS
# Written by deploy/local/kafka.sh on every start; edit that script instead.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=$DATA_DIR
auto.create.topics.enable=false
group.initial.rebalance.delay.ms=0
offsets.topic.replication.factor=1
offsets.topic.num.partitions=8
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=8
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
log.cleaner.dedupe.buffer.size=16777216
PROPS
}

java_cmd() {
  printf '%s\0' java "-Xmx$HEAP" -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true \
    "-Dlog4j2.configurationFile=$LOG4J_CONFIG" "-Dkafka.logs.dir=$LOG_DIR" -cp "$LIBS/*"
}

format_storage() {
  [[ -f "$DATA_DIR/meta.properties" ]] && return 0
  local -a java
  mapfile -d '' java < <(java_cmd)
  local cluster_id
  if ! cluster_id="$("${java[@]}" kafka.tools.StorageTool random-uuid 2>&1)" \
    || [[ ! "$cluster_id" =~ ^[A-Za-z0-9_-]{22}$ ]]; then
    printf '%s\n' "$cluster_id" >&2
    die "java could not run kafka.tools.StorageTool (see above)"
  fi
  log "formatting $DATA_DIR (cluster id $cluster_id)"
  "${java[@]}" kafka.tools.StorageTool format -t "$cluster_id" -c "$CONFIG" >>"$STDOUT_LOG" 2>&1 \
    || { tail -n 30 "$STDOUT_LOG" >&2; die "kafka-storage format failed"; }
}

cmd_start() {
  if [[ "$EXTERNAL" == 1 ]]; then
    log "STUDIO_EXTERNAL_KAFKA=1: starting nothing; waiting for Kafka at $BOOTSTRAP"
    wait_ready kafka "$BOOTSTRAP" "$READY_TIMEOUT" ""
    log "external Kafka at $BOOTSTRAP is ready"
    return 0
  fi
  local pid
  if pid="$(our_pid "$PIDFILE" "$CONFIG")"; then
    if wait_ready kafka "$BOOTSTRAP" 5 "$pid" 2>/dev/null; then
      log "already running (pid $pid) and ready at $BOOTSTRAP; nothing to do"
      return 0
    fi
    log "running (pid $pid) but not ready yet; waiting"
    wait_ready kafka "$BOOTSTRAP" "$READY_TIMEOUT" "$pid" "$SERVER_LOG" "$STDOUT_LOG" \
      || die "Kafka (pid $pid) is not ready; inspect $LOG_DIR or run '$0 stop'"
    return 0
  fi
  rm -f "$PIDFILE"
  local port var
  for port in "$KAFKA_PORT" "$CONTROLLER_PORT"; do
    if port_in_use "$port"; then
      var=STUDIO_KAFKA_PORT
      [[ "$port" == "$CONTROLLER_PORT" ]] && var=STUDIO_KAFKA_CONTROLLER_PORT
      die "port $port is taken by a process this script did not start (state dir $STATE_DIR); set $var to a free port, or set STUDIO_EXTERNAL_KAFKA=1 (and STUDIO_KAFKA_BOOTSTRAP) to use the Kafka already running there"
    fi
  done
  command -v java >/dev/null || die "Java 17+ is needed to run Kafka; install it or set STUDIO_EXTERNAL_KAFKA=1"
  fetch_libs
  write_config
  format_storage
  local -a java
  mapfile -d '' java < <(java_cmd)
  log "starting on $BOOTSTRAP (controller $CONTROLLER_PORT), state $HOME_DIR"
  local started=$SECONDS
  launch_detached "$PIDFILE" "$STDOUT_LOG" "${java[@]}" kafka.Kafka "$CONFIG"
  pid="$(<"$PIDFILE")"
  if ! wait_ready kafka "$BOOTSTRAP" "$READY_TIMEOUT" "$pid" "$SERVER_LOG" "$STDOUT_LOG"; then
    log "Kafka did not become ready; stopping it"
    terminate "$pid"
    rm -f "$PIDFILE"
    die "Kafka did not start; logs in $LOG_DIR"
  fi
  log "ready at $BOOTSTRAP (pid $pid, $((SECONDS - started)) s)"
}

cmd_stop() {
  if [[ "$EXTERNAL" == 1 ]]; then
    log "STUDIO_EXTERNAL_KAFKA=1: not ours to stop"
    return 0
  fi
  local pid
  if ! pid="$(our_pid "$PIDFILE" "$CONFIG")"; then
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
    if wait_ready kafka "$BOOTSTRAP" 3 "" 2>/dev/null; then
      log "external Kafka at $BOOTSTRAP: ready"
      return 0
    fi
    log "external Kafka at $BOOTSTRAP: not reachable"
    return 1
  fi
  local pid
  if ! pid="$(our_pid "$PIDFILE" "$CONFIG")"; then
    log "not running (state $HOME_DIR)"
    return 1
  fi
  if wait_ready kafka "$BOOTSTRAP" 3 "$pid" 2>/dev/null; then
    log "running (pid $pid), ready at $BOOTSTRAP, logs $LOG_DIR"
    return 0
  fi
  log "running (pid $pid) but not answering at $BOOTSTRAP; logs $LOG_DIR"
  return 1
}

case "${1:-}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  is-ours) [[ "$EXTERNAL" != 1 ]] && our_pid "$PIDFILE" "$CONFIG" >/dev/null ;;  # for services.sh
  *)
    echo "usage: $0 start|stop|status" >&2
    exit 2
    ;;
esac
