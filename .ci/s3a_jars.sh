#!/usr/bin/env bash
# Fetches the Hadoop S3A connector jars that local Spark needs for s3a:// (hadoop-aws 3.3.1 and
# the AWS SDK v1 bundle it was built against), from the sagemaker-pyspark source distribution on
# PyPI, into a cache; prints the comma-separated jar paths (for GIO_SPARK_JARS) as the last line
# of stdout. The jars are never committed.
set -euo pipefail
CACHE="${GIO_SPARK_JAR_CACHE:-$HOME/.cache/gio-spark/jars}"
JARS=("hadoop-aws-3.3.1.jar" "aws-java-sdk-bundle-1.11.901.jar")
have_all() { for j in "${JARS[@]}"; do [ -s "$CACHE/$j" ] || return 1; done; }
if ! have_all; then
  mkdir -p "$CACHE"
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  echo "s3a_jars: downloading sagemaker-pyspark==1.4.5 (about 190 MB) for its jars" >&2
  python -m pip download -q --no-deps --no-binary :all: sagemaker-pyspark==1.4.5 -d "$tmp" >&2
  tar -xzf "$tmp"/sagemaker_pyspark-1.4.5.tar.gz -C "$tmp"
  for j in "${JARS[@]}"; do
    found="$(find "$tmp" -name "$j" | head -n 1)"
    [ -n "$found" ] || { echo "s3a_jars: $j not found in the sdist" >&2; exit 1; }
    cp "$found" "$CACHE/$j.part" && mv "$CACHE/$j.part" "$CACHE/$j"
  done
fi
paths=()
for j in "${JARS[@]}"; do paths+=("$CACHE/$j"); done
(IFS=,; echo "${paths[*]}")
