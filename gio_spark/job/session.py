"""The SparkSession the job runs in.

A session that a launcher made or configured (spark-submit, Databricks, a notebook, any
process whose JVM already exists) is used as it is: the job adds nothing that changes
placement, memory, the filesystem of ``s3://`` or the UI. Only when nothing launched Spark
does the package start its own session, with settings for one machine.
"""
from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional

from .. import logs
from ..errors import UserError

log = logging.getLogger(__name__)

# settings of the session the package starts itself (gio-spark run with no launcher)
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

# the Python workers' daemon that imports the embedding libraries once (worker_daemon.py)
WORKER_DAEMON = "gio_spark.job.worker_daemon"
# Spark keeps a daemon per workers' environment, and its SQL Python runners (mapInPandas) add
# SPARK_SIMPLIFIED_TRACEBACK to it where its RDD ones (MLlib k-means' input) do not: with this
# off, every Python task forks from one daemon, which imports the libraries once (about 8
# CPU-seconds for a second one). Off, a failed Python task's traceback keeps PySpark's frames.
ONE_DAEMON = {"spark.python.daemon.module": WORKER_DAEMON,
              "spark.sql.execution.pyspark.udf.simplifiedTraceback.enabled": "false"}
LOG4J_CONFIG = Path(__file__).with_name("log4j2.properties")
# where a session of the package's own logs Spark's warnings and errors with their stack traces
SPARK_LOG = Path(tempfile.gettempdir()) / f"gio-spark-spark-{os.getpid()}.log"
# environment variables that show this Python process was started by a Spark launcher
# (spark-submit, pyspark, Databricks) whose JVM and settings already exist
LAUNCHER_ENV = ("PYSPARK_GATEWAY_PORT", "DATABRICKS_RUNTIME_VERSION")


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


def launched_session():
    """The session a launcher made or prepared, or None when nothing launched Spark.

    An active session or SparkContext is used as it is. A process started by spark-submit
    (or Databricks) has its launcher's JVM and settings but no Python session yet: the session
    is built from those settings alone."""
    from pyspark import SparkContext
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    if SparkContext._active_spark_context is not None or any(os.environ.get(v) for v in LAUNCHER_ENV):
        return SparkSession.builder.getOrCreate()
    return None


def check_java() -> None:
    """A session of our own needs a Java runtime; say so in one line when there is none."""
    home = os.environ.get("JAVA_HOME")
    if home and os.access(os.path.join(home, "bin", "java"), os.X_OK):
        return
    if home:
        raise UserError(f"JAVA_HOME={home} has no bin/java: point it at a Java 17 runtime")
    if shutil.which("java") is None:
        raise UserError("Java not found: Spark needs a Java 17 runtime on PATH or in JAVA_HOME")


def local_session(master: Optional[str] = None, app_name: str = "gio-spark", extra_conf: Optional[dict] = None):
    """A new session of the package's own on ``master`` (default ``GIO_SPARK_MASTER`` or
    ``local[*]``), with settings that suit a single machine."""
    from pyspark.sql import SparkSession

    check_java()
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    master = master or os.environ.get("GIO_SPARK_MASTER") or "local[*]"
    if master.startswith("local"):
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")  # one machine: stay on loopback
    builder = SparkSession.builder.appName(app_name).master(master)
    conf = dict(LOCAL_CONF)
    if not logs.verbose():
        # quiet from the JVM's first line (the log4j banner, native-hadoop and BLAS warnings); a
        # failed task one console line, its stack in SPARK_LOG
        conf["spark.driver.extraJavaOptions"] = (f"-Dlog4j2.configurationFile={LOG4J_CONFIG.as_uri()} "
                                                 f"-Dgio.spark.log={SPARK_LOG}")
    jars = os.environ.get("GIO_SPARK_JARS")
    if jars:
        conf["spark.jars"] = jars
    if workers_find(WORKER_DAEMON):
        conf.update(ONE_DAEMON)
    conf.update({f"spark.hadoop.{k}": v for k, v in s3a_settings().items()})
    conf.update(extra_conf or {})
    for key, value in conf.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    return spark


def workers_find(module: str) -> bool:
    """Whether the workers' Python (``PYSPARK_PYTHON``) finds ``module``: not so where this
    process found the package only through a path it added itself."""
    python = os.environ.get("PYSPARK_PYTHON") or sys.executable
    code = f"import importlib.util, sys; sys.exit(importlib.util.find_spec({module!r}) is None)"
    try:
        return subprocess.run([python, "-c", code], capture_output=True, timeout=60).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def get_spark(master: Optional[str] = None, app_name: str = "gio-spark", extra_conf: Optional[dict] = None):
    """The launcher's session when there is one (``master`` is then ignored, with a warning),
    else a session of the package's own; logs which one is used."""
    spark = launched_session()
    if spark is not None:
        if master or extra_conf:
            log.warning("Spark was launched with master %s; ignoring the job's master/settings (%s)",
                        spark.sparkContext.master, master or "extra settings")
        describe(spark, "launcher's")
        _log_level_hint(spark)
        return spark
    spark = local_session(master, app_name, extra_conf)
    describe(spark, "own")
    return spark


def _log_level_hint(spark) -> None:
    """Under a launcher that logs Spark at INFO, say how to see the job's own lines."""
    try:
        level = str(spark.sparkContext._jvm.org.apache.logging.log4j.LogManager.getRootLogger().getLevel())
    except Exception:  # another logging backend
        return
    if level.upper() in ("INFO", "DEBUG", "TRACE", "ALL"):
        log.info("Spark logs at %s here; pass --conf spark.log.level=WARN to see only the job's lines and Spark's "
                 "warnings", level)


def describe(spark, whose: str) -> str:
    """One log line: which session, its master, registered executors, default parallelism."""
    sc = spark.sparkContext
    executors = "none: tasks run in the driver" if is_local(spark) else (
        f"{max(sc._jsc.sc().getExecutorMemoryStatus().size() - 1, 0)} registered so far")
    line = (f"Spark session ({whose}): master {sc.master}, app {sc.applicationId}, Spark {spark.version}, "
            f"executors {executors}, default parallelism {sc.defaultParallelism}")
    log.info(line)
    return line


def session_info(spark) -> dict:
    """What the manifest records of the session the job ran in."""
    sc = spark.sparkContext
    return {"master": sc.master, "app_id": sc.applicationId, "version": spark.version,
            "default_parallelism": sc.defaultParallelism}


def warn_local_paths(spark, paths: list[str]) -> None:
    """On a cluster, a local path must be the same shared folder on every node."""
    from urllib.parse import urlparse

    if is_local(spark):
        return
    for path in paths:
        if urlparse(path).scheme in ("", "file"):
            log.warning("%s is a local path and Spark runs on %s: every node must see it at the same place "
                        "(a shared filesystem); use s3://, hdfs:// or dbfs:/ otherwise", path, spark.sparkContext.master)


def is_local(spark) -> bool:
    return spark.sparkContext.master.startswith("local")


def in_new_thread(fn, timeout_s: float = 60.0):
    """``fn()`` in a thread of its own, and its result. A Py4J call that a signal interrupted
    (Ctrl-C, SIGTERM) leaves its thread's connection to the JVM waiting for the answer; calls
    made afterwards, to clean up, need a thread (and so a connection) of their own."""
    import threading

    out: dict = {}

    def target() -> None:
        try:
            out["value"] = fn()
        except BaseException as exc:  # handed to the caller
            out["error"] = exc

    thread = threading.Thread(target=target, name="gio-spark-cleanup", daemon=True)
    thread.start()
    thread.join(timeout_s)
    if "error" in out:
        raise out["error"]
    return out.get("value")


def wait_for_tasks(spark, timeout_s: float = 20.0) -> None:
    """Wait until no Spark job is active and no executor runs a task (cancelled ones take a moment)."""
    import time

    tracker = spark.sparkContext._jsc.sc().statusTracker()
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and (len(tracker.getActiveJobIds()) or
                                           any(e.numRunningTasks() for e in tracker.getExecutorInfos())):
        time.sleep(0.1)


class Stopped(BaseException):
    """Ctrl-C (SIGINT) or SIGTERM (what YARN, Airflow and ``timeout`` send) while the job ran."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


@contextmanager
def interrupts_handled(spark) -> Iterator[None]:
    """While inside, Ctrl-C and SIGTERM stop the run cleanly: the running Spark jobs are
    cancelled and Spark's logging turned off (its shutdown would print errors after the
    run's last line), and the main thread's connection to the JVM, which the signal interrupted
    mid-call, is closed so that the cleanup on the way out (lock, job tags) gets a fresh one;
    then Stopped is raised where the driver was. The handlers before are restored on the way out."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame) -> None:
        for name in ("py4j", "py4j.clientserver", "py4j.java_gateway"):
            logging.getLogger(name).setLevel(logging.CRITICAL)
        try:
            in_new_thread(spark.sparkContext.cancelAllJobs, timeout_s=30)
            in_new_thread(lambda: wait_for_tasks(spark), timeout_s=30)  # their last log lines come before ours
            in_new_thread(lambda: spark.sparkContext.setLogLevel("OFF"), timeout_s=30)  # nor any after (shutdown)
            client = spark.sparkContext._gateway._gateway_client
            connection = client.get_thread_connection() if hasattr(client, "get_thread_connection") else None
            if connection is not None:
                connection.close(reset=True)
        except Exception as exc:  # the JVM may be gone already
            log.debug("could not cancel Spark jobs: %s", exc)
        raise Stopped(signum)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def spark_log_size() -> int:
    """How much the package's own session has logged to SPARK_LOG so far."""
    try:
        return SPARK_LOG.stat().st_size
    except OSError:
        return 0


def spark_log_note(since: int = 0) -> str:
    """Where Spark's errors and their stack traces went, when the package's own session logged
    any after ``since`` (a spark_log_size)."""
    try:
        with open(SPARK_LOG, "rb") as fh:
            fh.seek(since)
            if b" ERROR " in fh.read():
                return f" (Spark's log, with its stack traces: {SPARK_LOG})"
    except OSError:
        pass
    return ""
