#!/usr/bin/env bash
# What `make test` and `make lint` run.
#
#   deploy/local/run_tests.sh [PYTEST ARGS...]   fresh services in .local/test-state, lint, tests
#   deploy/local/run_tests.sh lint               ruff + mypy only
#
# The test run wipes its state dir (STUDIO_TEST_STATE, default .local/test-state), starts
# Kafka and FerretDB there, runs lint and pytest (extra args from PYTEST_ARGS and the command
# line), and always stops the services it started. Exit status is non-zero when lint or any
# test failed, or when no test was collected.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
VENV_BIN="${VENV_BIN:-.venv/bin}"

run_lint() {
  local rc=0
  echo "== ruff check studio_ai tests bench"
  "$VENV_BIN/ruff" check studio_ai tests bench || rc=1
  echo "== mypy studio_ai"
  "$VENV_BIN/mypy" studio_ai || rc=1
  return "$rc"
}

run_pytest() {
  local -a dirs=() extra=()
  local d
  for d in tests/unit tests/contract tests/integration tests/e2e; do
    [[ -d "$d" ]] && dirs+=("$d")
  done
  read -r -a extra <<<"${PYTEST_ARGS:-}"
  echo "== pytest ${dirs[*]} ${extra[*]} $*"
  local rc=0
  "$VENV_BIN/pytest" "${dirs[@]}" "${extra[@]}" "$@" || rc=$?
  if [[ "$rc" == 5 ]]; then
    echo "pytest collected no tests; treating that as a failure" >&2
  fi
  return "$rc"
}

# Runs inside `services.sh exec`, with the services up and STUDIO_* endpoints exported.
run_checks() {
  local lint_rc=0 test_rc=0
  run_lint || lint_rc=$?
  run_pytest "$@" || test_rc=$?
  echo "== lint: $([[ $lint_rc == 0 ]] && echo passed || echo FAILED)," \
    "tests: $([[ $test_rc == 0 ]] && echo passed || echo "FAILED (pytest exit $test_rc)")"
  [[ "$lint_rc" == 0 && "$test_rc" == 0 ]]
}

case "${1:-}" in
  lint)
    run_lint
    ;;
  --checks)
    shift
    run_checks "$@"
    ;;
  *)
    export STUDIO_LOCAL_STATE="${STUDIO_TEST_STATE:-.local/test-state}"
    # Processes left behind by an aborted run would otherwise hold the ports.
    deploy/local/services.sh down >/dev/null 2>&1 || true
    rm -rf "$STUDIO_LOCAL_STATE"
    exec deploy/local/services.sh exec -- "$0" --checks "$@"
    ;;
esac
