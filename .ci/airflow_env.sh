#!/usr/bin/env bash
# Creates (or reuses) the virtualenv in which tests/test_deploy.py loads deploy/airflow/ with
# Airflow's DagBag (about 720 MB). Airflow is kept out of the package's own environment: its
# pins clash with ours.
#
#   export GIO_AIRFLOW_PYTHON=$(bash .ci/airflow_env.sh)
set -euo pipefail
# Airflow 3.x with the two providers the DAGs import (majors as tested: Airflow 3.3, amazon 9.39,
# databricks 7.23).
CHECK='
import airflow, airflow.providers.amazon, airflow.providers.databricks
assert int(airflow.__version__.split(".")[0]) == 3
from airflow.dag_processing.dagbag import DagBag
'
PY="$(bash "$(dirname "$0")/cached_venv.sh" airflow_env "${GIO_AIRFLOW_VENV:-$HOME/.cache/gio-spark/airflow-venv}" \
    "$CHECK" -- "apache-airflow>=3.0,<4" "apache-airflow-providers-amazon>=9,<10" "apache-airflow-providers-databricks>=7,<8")"
echo "airflow_env: $("$PY" -c 'import airflow; print("airflow", airflow.__version__)')" >&2
echo "$PY"
