#!/usr/bin/env bash
# Creates (or reuses) a virtualenv with pyspark 3.5 (the Spark of EMR 7.x and Databricks 15.4 LTS)
# and a pandas that Spark 3.5 supports, over the packages of the Python that runs it (torch, JAX,
# sentence-transformers and the package itself come from there). pyspark builds from its
# 300 MB source distribution.
#
#   GIO_SPARK35_PYTHON=$(bash .ci/spark35_env.sh)
set -euo pipefail
CHECK='
import pyspark, pandas, gio_spark, torch, sentence_transformers
assert pyspark.__version__.startswith("3.5."), pyspark.__version__
assert pandas.__version__.startswith("2."), pandas.__version__
'
PY="$(bash "$(dirname "$0")/cached_venv.sh" spark35_env "${GIO_SPARK35_VENV:-$HOME/.cache/gio-spark/spark35-venv}" \
    "$CHECK" --over-this-python -- "pyspark==3.5.9" "pandas>=2.0,<2.3")"
echo "spark35_env: $("$PY" -c 'import pyspark, pandas; print("pyspark", pyspark.__version__, "pandas", pandas.__version__)')" >&2
echo "$PY"
