"""spark-submit entry point: the same arguments as ``gio-spark run``.

    spark-submit jobs/gio_select.py --config s3://bucket/conf/job.yaml --output s3://bucket/out/2026-11-28/
"""
import sys

from gio_spark.cli import main

if __name__ == "__main__":
    sys.exit(main(["run", *sys.argv[1:]]))
