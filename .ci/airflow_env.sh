#!/usr/bin/env bash
# Creates (or reuses) the virtualenv in which tests/test_deploy.py loads deploy/airflow/ with
# Airflow's DagBag. Airflow is kept out of the package's own environment: its pins clash with ours.
#
#   export GIO_AIRFLOW_PYTHON=$(bash .ci/airflow_env.sh)
#
# The venv's python is the last (only) line on stdout; all progress goes to stderr.
set -euo pipefail

VENV="${GIO_AIRFLOW_VENV:-$HOME/.cache/gio-spark/airflow-venv}"
PY="$VENV/bin/python"
# Airflow 3.x with the two providers the DAGs import (majors as tested: Airflow 3.3, amazon 9.39,
# databricks 7.23).
REQS=("apache-airflow>=3.0,<4" "apache-airflow-providers-amazon>=9,<10" "apache-airflow-providers-databricks>=7,<8")

log() { echo "airflow_env: $*" >&2; }

venv_ok() {
    [ -x "$PY" ] || return 1
    "$PY" - <<'EOF' >/dev/null 2>&1
import airflow, airflow.providers.amazon, airflow.providers.databricks
assert int(airflow.__version__.split(".")[0]) == 3
from airflow.dag_processing.dagbag import DagBag  # noqa: F401
EOF
}

if venv_ok; then
    log "reusing $VENV"
else
    log "creating $VENV"
    rm -rf "$VENV"
    mkdir -p "$(dirname "$VENV")"
    python3 -m venv "$VENV"
    log "installing ${REQS[*]} (about 720 MB)"
    # pip's output goes to stderr, less the per-package notes some pip configurations print
    { "$PY" -m pip install --quiet --disable-pip-version-check "${REQS[@]}" 2>&1; } \
        | { grep -v "^WARNING: Location '" || true; } >&2
    if ! venv_ok; then
        log "the venv at $VENV does not import Airflow 3 with the providers"
        exit 1
    fi
fi
log "$("$PY" -c 'import airflow; print("airflow", airflow.__version__)')"
echo "$PY"
