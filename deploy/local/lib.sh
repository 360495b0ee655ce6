# shellcheck shell=bash disable=SC2034 # variables are used by the scripts that source this
# Shared helpers for deploy/local/{kafka,ferretdb,services}.sh. Sourced, not executed.
#
# Environment (all optional):
#   STUDIO_LOCAL_STATE   state dir: data, logs, pid files   (default .local/state)
#   PYTHON               python with aiokafka + pymongo      (default .venv/bin/python)

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
DEPLOY_DIR="$REPO_ROOT/deploy/local"
CACHE_DIR="$REPO_ROOT/.local/cache"

STATE_DIR="${STUDIO_LOCAL_STATE:-.local/state}"
case "$STATE_DIR" in
  /*) ;;
  *) STATE_DIR="$REPO_ROOT/$STATE_DIR" ;;
esac

PYTHON="${PYTHON:-$REPO_ROOT/.venv/bin/python}"

log() { printf '[%s] %s\n' "${SERVICE_NAME:-local}" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# True when something accepts TCP connections on 127.0.0.1:$1.
port_in_use() {
  local port="$1"
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null
}

# Prints the pid recorded in $1 when that process is alive and its command line
# contains $2 (a path unique to this state dir), so a recycled pid is never ours.
our_pid() {
  local pidfile="$1" marker="$2" pid
  [[ -f "$pidfile" ]] || return 1
  pid="$(<"$pidfile")"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  [[ -r "/proc/$pid/cmdline" ]] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$marker" || return 1
  printf '%s\n' "$pid"
}

# Starts "$@" detached (own session, immune to the shell's SIGHUP), stdout and
# stderr appended to $2; the process writes its own pid to $1.
launch_detached() {
  local pidfile="$1" logfile="$2"
  shift 2
  rm -f "$pidfile"
  # shellcheck disable=SC2016 # $$ and $1 are expanded by the inner bash
  nohup setsid bash -c 'echo $$ >"$1"; shift; exec "$@"' launch "$pidfile" "$@" \
    </dev/null >>"$logfile" 2>&1 &
  for _ in $(seq 1 50); do
    [[ -s "$pidfile" ]] && return 0
    sleep 0.1
  done
  die "process did not start; see $logfile"
}

# SIGTERM the pid, wait up to 15 s, then SIGKILL.
terminate() {
  local pid="$1" i
  kill -TERM "$pid" 2>/dev/null || return 0
  for i in $(seq 1 150); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  log "pid $pid still alive after 15 s; sending SIGKILL"
  kill -KILL "$pid" 2>/dev/null || true
  for i in $(seq 1 50); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  die "pid $pid survived SIGKILL"
}

require_python() {
  [[ -x "$PYTHON" ]] || die "no python at $PYTHON; run 'make venv' or set PYTHON=/path/to/python (needs aiokafka and pymongo)"
}

# wait_ready KIND TARGET TIMEOUT PID [LOGFILE...]  (PID may be empty: nothing to watch)
wait_ready() {
  local kind="$1" target="$2" timeout="$3" pid="$4"
  shift 4
  require_python
  local args=("$DEPLOY_DIR/wait_ready.py" "$kind" "$target" --timeout "$timeout")
  [[ -n "$pid" ]] && args+=(--pid "$pid")
  local f
  for f in "$@"; do args+=(--log "$f"); done
  "$PYTHON" "${args[@]}"
}

# sha256 of the given files, to tell when a cached build is stale.
files_digest() {
  cat "$@" | sha256sum | cut -d' ' -f1
}
