#!/usr/bin/env bash
# Creates (or reuses) a cached virtualenv; prints its python as the last (only) line on stdout,
# all progress on stderr.
#
#   bash .ci/cached_venv.sh NAME VENV CHECK [--system-site-packages] -- REQUIREMENT...
#
# CHECK is Python code that must run without error in a usable venv (imports, version asserts).
set -euo pipefail

NAME="$1" VENV="$2" CHECK="$3"
shift 3
VENV_FLAGS=()
while [ "$1" != "--" ]; do VENV_FLAGS+=("$1"); shift; done
shift
REQS=("$@")
PY="$VENV/bin/python"

log() { echo "$NAME: $*" >&2; }
venv_ok() { [ -x "$PY" ] && "$PY" -c "$CHECK" >/dev/null 2>&1; }

if venv_ok; then
    log "reusing $VENV"
else
    log "creating $VENV"
    rm -rf "$VENV"
    mkdir -p "$(dirname "$VENV")"
    python -m venv "${VENV_FLAGS[@]}" "$VENV"
    log "installing ${REQS[*]}"
    # pip's output goes to stderr, less the per-package notes some pip configurations print
    { "$PY" -m pip install --quiet --disable-pip-version-check "${REQS[@]}" 2>&1; } \
        | { grep -v "^WARNING: Location '" || true; } >&2
    if ! venv_ok; then
        log "the venv at $VENV fails its check: $CHECK"
        exit 1
    fi
fi
echo "$PY"
