#!/usr/bin/env bash
# kustomize for the k8s/ manifests and their tests, built from the Go module proxy once.
#
#   deploy/local/kustomize.sh              installs .local/cache/bin/kustomize if needed; prints its path
#   deploy/local/kustomize.sh build DIR    ... then runs `kustomize build DIR` (any kustomize arguments)
#
# The first run builds sigs.k8s.io/kustomize/kustomize/v5 with `go install` (about 90 s on two
# cores from a cold module cache); later runs find the binary and its version stamp and return
# at once. v5.8.1 is the newest release whose go.mod asks for no newer Go than the project's
# floor (Go 1.24; v5.8.2 wants 1.26, v5.8.3 wants 1.27).
# Environment: STUDIO_KUSTOMIZE_VERSION (default v5.8.1).
set -euo pipefail

SERVICE_NAME=kustomize
# shellcheck source=deploy/local/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

VERSION="${STUDIO_KUSTOMIZE_VERSION:-v5.8.1}"
BIN="$CACHE_DIR/bin/kustomize"
STAMP="$BIN.version"

install_kustomize() {
  if [[ -x "$BIN" && -f "$STAMP" && "$(<"$STAMP")" == "$VERSION" ]]; then
    return 0
  fi
  mkdir -p "$CACHE_DIR/bin"
  local lock
  exec {lock}>"$CACHE_DIR/.kustomize-build.lock"
  flock "$lock"
  # Another process may have built it while we waited for the lock.
  if [[ -x "$BIN" && -f "$STAMP" && "$(<"$STAMP")" == "$VERSION" ]]; then
    exec {lock}>&-
    return 0
  fi
  command -v go >/dev/null || die "Go is needed once to build kustomize $VERSION (go install from the module proxy)"
  log "building kustomize $VERSION with Go into $BIN (once; about 90 s from a cold module cache)"
  local started=$SECONDS tmp
  tmp="$(mktemp -d "$CACHE_DIR/kustomize-build.XXXXXX")"
  if ! GOBIN="$tmp" GOFLAGS="${GOFLAGS:-} -modcacherw" go install "sigs.k8s.io/kustomize/kustomize/v5@$VERSION"; then
    rm -rf "$tmp"
    die "go install sigs.k8s.io/kustomize/kustomize/v5@$VERSION failed (see above)"
  fi
  mv "$tmp/kustomize" "$BIN"
  rm -rf "$tmp"
  printf '%s\n' "$VERSION" >"$STAMP"
  log "built in $((SECONDS - started)) s"
  exec {lock}>&-
}

install_kustomize
if [[ $# -eq 0 ]]; then
  printf '%s\n' "$BIN"
else
  exec "$BIN" "$@"
fi
