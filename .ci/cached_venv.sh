#!/usr/bin/env bash
# Creates (or reuses) a cached virtualenv; prints its python as the last (only) line on stdout,
# all progress on stderr.
#
#   bash .ci/cached_venv.sh NAME VENV CHECK [--over-this-python] -- REQUIREMENT...
#
# CHECK is Python code that must run without error in a usable venv (imports, version asserts).
# --over-this-python: the venv also sees the packages of the Python that runs this script (after
# its own, so what it installs wins), whether that is a global Python, a virtualenv or a conda
# prefix: a .pth file adds that Python's site-packages, .pth files included (editable installs).
# (--system-site-packages would not do: from inside a virtualenv it gives the base interpreter's
# packages, not the virtualenv's.)
set -euo pipefail

NAME="$1" VENV="$2" CHECK="$3"
shift 3
OVER=0
while [ "$1" != "--" ]; do
    case "$1" in
        --over-this-python) OVER=1 ;;
        *) echo "$NAME: unknown option $1" >&2; exit 2 ;;
    esac
    shift
done
shift
REQS=("$@")
PY="$VENV/bin/python"

log() { echo "$NAME: $*" >&2; }
# with --over-this-python, a cached venv is reused only over the same Python it was made over
OVER_ID="$( [ "$OVER" = 1 ] && python -c 'import sys; print(sys.prefix)' || echo none)"
venv_ok() { [ -x "$PY" ] && [ "$(cat "$VENV/.gio-over" 2>/dev/null || echo none)" = "$OVER_ID" ] \
    && "$PY" -c "$CHECK" >/dev/null 2>&1; }

if venv_ok; then
    log "reusing $VENV"
else
    log "creating $VENV"
    rm -rf "$VENV"
    mkdir -p "$(dirname "$VENV")"
    python -m venv "$VENV"
    if [ "$OVER" = 1 ]; then
        # this Python's site-packages, after the venv's own; site.addsitedir also runs their .pth files
        inner="$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
        python -c '
import site, sysconfig
paths = sysconfig.get_paths()
for p in dict.fromkeys([paths["purelib"], paths["platlib"], *site.getsitepackages()]):
    print(f"import site; site.addsitedir({p!r})")' > "$inner/_gio_outer_python.pth"
        echo "$OVER_ID" > "$VENV/.gio-over"
    fi
    if [ "${#REQS[@]}" -gt 0 ]; then
        log "installing ${REQS[*]}"
        # pip's output goes to stderr, less the per-package notes some pip configurations print
        { "$PY" -m pip install --quiet --disable-pip-version-check "${REQS[@]}" 2>&1; } \
            | { grep -v "^WARNING: Location '" || true; } >&2
    fi
    if ! venv_ok; then
        log "the venv at $VENV fails its check: $CHECK"
        "$PY" -c "$CHECK" >&2 || true
        exit 1
    fi
fi
echo "$PY"
