"""The SparkSession the job runs in: the active one (spark-submit, Databricks), else a local one."""
from __future__ import annotations

import os
import sys
from typing import Optional

LOCAL_CONF = {
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.driver.memory": "4g",
    "spark.sql.shuffle.partitions": "8",
    # centroids (K x d) travel to the driver; the reference needed this raised too
    "spark.rpc.message.maxSize": "512",
    # s3:// and s3n:// through the S3A connector, as EMR and Databricks accept them
    "spark.hadoop.fs.s3.impl": "org.apache.hadoop.fs.s3a.S3AFileSystem",
    "spark.hadoop.fs.s3n.impl": "org.apache.hadoop.fs.s3a.S3AFileSystem",
}


def get_spark(master: Optional[str] = None, app_name: str = "gio-spark", extra_conf: Optional[dict] = None):
    """The active session if there is one; otherwise a new one on ``master`` (default
    ``local[*]``) with settings that suit a single machine."""
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    builder = SparkSession.builder.appName(app_name).master(master or os.environ.get("GIO_SPARK_MASTER", "local[*]"))
    conf = dict(LOCAL_CONF)
    jars = os.environ.get("GIO_SPARK_JARS")
    if jars:
        conf["spark.jars"] = jars
    conf.update(extra_conf or {})
    for key, value in conf.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    return spark
