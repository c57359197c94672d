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


# S3A settings for sessions this package creates. Credentials come from the standard AWS chain
# (environment, profile, instance role); never from config files. The time settings are plain
# numbers because hadoop-aws 3.3.x cannot parse the "60s" style defaults of newer Hadoop.
S3A_CONF = {
    "fs.s3a.aws.credentials.provider": "com.amazonaws.auth.DefaultAWSCredentialsProviderChain",
    "fs.s3a.threads.keepalivetime": "60",
    "fs.s3a.connection.establish.timeout": "30000",
    "fs.s3a.connection.timeout": "200000",
    "fs.s3a.multipart.purge.age": "86400",
    "fs.s3a.connection.ttl": "300000",
    "fs.s3a.assumed.role.session.duration": "1800",
}


def s3a_settings(endpoint: Optional[str] = None) -> dict[str, str]:
    """Hadoop settings for S3A; with an endpoint (e.g. a local S3 server), path-style access
    and SSL as the endpoint's scheme says."""
    conf = dict(S3A_CONF)
    endpoint = endpoint or os.environ.get("AWS_ENDPOINT_URL")
    if endpoint:
        conf["fs.s3a.endpoint"] = endpoint
        conf["fs.s3a.path.style.access"] = "true"
        conf["fs.s3a.connection.ssl.enabled"] = str(endpoint.startswith("https")).lower()
    return conf


def configure_s3a(spark, endpoint: Optional[str] = None) -> None:
    """Apply s3a_settings to a running session (before its first use of a bucket)."""
    hadoop = spark.sparkContext._jsc.hadoopConfiguration()
    for key, value in s3a_settings(endpoint).items():
        hadoop.set(key, value)


def get_spark(master: Optional[str] = None, app_name: str = "gio-spark", extra_conf: Optional[dict] = None):
    """The active session if there is one; otherwise a new one on ``master`` (default
    ``local[*]``) with settings that suit a single machine."""
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    master = master or os.environ.get("GIO_SPARK_MASTER", "local[*]")
    if master.startswith("local"):
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")  # one machine: stay on loopback
    builder = SparkSession.builder.appName(app_name).master(master)
    conf = dict(LOCAL_CONF)
    jars = os.environ.get("GIO_SPARK_JARS")
    if jars:
        conf["spark.jars"] = jars
    conf.update({f"spark.hadoop.{k}": v for k, v in s3a_settings().items()})
    conf.update(extra_conf or {})
    for key, value in conf.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    return spark
