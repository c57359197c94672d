"""The job on a real Spark standalone cluster (a master and two workers, each its own JVM, on
127.0.0.1), submitted as the README tells users, each run against the same config run in this
process on local[2]:

- spark-submit with the package wheel as --py-files and jobs/gio_select.py: static vectors
  (embedding.method static) fitted to the model through ONNX Runtime (backend onnx-int8,
  exported by the executors into a cache of their own), with GPU task resources as the EMR
  configuration asks for them, on workers that advertise fake GPU addresses: every embedding
  and k-means task on an executor, both executors busy, the fit and the vectors bit for bit
  the same, the same pair ids, and every Python worker that Spark gave a GPU address warning
  once that it embeds on CPU instead;
- ``select_pairs`` in a session that exists before the call, as on Databricks, with the
  defaults (the model's vectors through PyTorch): the same pair ids, the session left running."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from gio_spark.job.config import config_from_dict
from gio_spark.job.pipeline import run_job
from gio_spark.job.session import ONE_DAEMON
from gio_spark.job.worker_daemon import PRELOAD

from .conftest import ROOT, SHARED_DATA
from .standalone import standalone_cluster

pytestmark = [pytest.mark.spark, pytest.mark.cluster]

DOMAINS = ("EMEA", "KDE4", "JRC-Acquis")
PER_DOMAIN = 200
TARGET_ROWS = 60


def write_corpus(folder: Path) -> tuple[str, str]:
    """A pool of real pairs from three domains of the shared data and a target from one (the
    generated demo domains where the shared data is absent)."""
    folder.mkdir(parents=True, exist_ok=True)
    if SHARED_DATA.is_dir():
        def lines(name, lang, n):
            return (SHARED_DATA / f"{name}.{lang}").read_text(encoding="utf-8").splitlines()[:n]

        pool = [(e, d) for dom in DOMAINS for e, d in zip(lines(f"{dom}.train", "en", PER_DOMAIN),
                                                             lines(f"{dom}.train", "de", PER_DOMAIN))]
        target = list(zip(lines(f"{DOMAINS[0]}.test", "en", TARGET_ROWS), lines(f"{DOMAINS[0]}.test", "de", TARGET_ROWS)))
    else:
        from gio_spark.demo import generate

        pool = [p for d in ("medicine", "law", "software") for p in generate(d, PER_DOMAIN, seed=1, half=0)]
        target = generate("medicine", TARGET_ROWS, seed=2, half=1)
    for name, rows in (("pool", pool), ("target", target)):
        (folder / f"{name}.en").write_text("".join(e + "\n" for e, _ in rows), encoding="utf-8")
        (folder / f"{name}.de").write_text("".join(d + "\n" for _, d in rows), encoding="utf-8")
    return str(folder / "pool"), str(folder / "target")


def job_config(data: Path) -> dict:
    pool, target = write_corpus(data)
    return {
        "train": {"path": pool}, "target": {"path": target},
        "src_lang": "en", "tgt_lang": "de",
        "quantize": {"k": 30, "seed": 5},
        "gio": {"max_iter": 10},
        "selection": {"budget_pairs": 100},  # the cut of the last cluster must be the same everywhere too
    }


@pytest.fixture(scope="module")
def package_zip(tmp_path_factory) -> Path:
    """The wheel, built and renamed as the README's spark-submit section says."""
    dist = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", str(ROOT), "-w", str(dist)],
                   check=True, capture_output=True)
    wheel = next(dist.glob("gio_spark-*.whl"))
    return Path(shutil.copy(wheel, dist / "gio_spark.zip"))


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cluster")
    workers = [{"cores": 1, "memory": "2g", "gpus": ["0", "1"]}, {"cores": 1, "memory": "2g", "gpus": ["0", "1"]}]
    with standalone_cluster(tmp, workers) as c:
        yield c


@pytest.fixture(scope="module")
def config(tmp_path_factory) -> dict:
    return job_config(tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="module")
def local_ids(config, spark, tmp_path_factory) -> set:
    """The pair ids a local[2] run selects: every other run must select the same."""
    out = tmp_path_factory.mktemp("local") / "out"
    assert run_job(config_from_dict({**config, "output": str(out)}), spark)["rows"]["selected"] > 0
    return selected_ids(out)


STATIC = {"embedding": {"method": "static", "static_fit_texts": 300, "backend": "onnx-int8"}}


@pytest.fixture(scope="module")
def local_static(config, spark, tmp_path_factory) -> dict:
    """The manifest of a local[2] run with static vectors."""
    return run_job(config_from_dict({**config, **STATIC, "output": str(tmp_path_factory.mktemp("static") / "out")}),
                   spark)


def submit_args(cluster, package_zip) -> list[str]:
    """What both apps give spark-submit: the cluster, the package, this Python, small memory, the
    settings the README gives for the package's workers' daemon, and the executors' JVMs started
    with the options the cluster's own JVMs have (SPARK_DAEMON_JAVA_OPTS, set by .ci/run)."""
    jvm = os.environ.get("SPARK_DAEMON_JAVA_OPTS", "").strip()
    return ["--master", cluster.url, "--py-files", str(package_zip), "--conf", f"spark.pyspark.python={sys.executable}",
            "--conf", "spark.executor.memory=1g", "--conf", "spark.driver.memory=1g",
            *(["--conf", f"spark.executor.defaultJavaOptions={jvm}"] if jvm else []),
            *[arg for key, value in ONE_DAEMON.items() for arg in ("--conf", f"{key}={value}")]]


def submit(cluster, package_zip, config: dict, out: Path, events: Path, conf: dict) -> dict:
    events.mkdir(parents=True, exist_ok=True)
    cfg_file = out.parent / f"{out.name}.yaml"
    cfg_file.write_text(json.dumps(config))
    args = [*submit_args(cluster, package_zip),
            "--conf", "spark.eventLog.enabled=true", "--conf", f"spark.eventLog.dir={events}",
            "--conf", "spark.eventLog.compress=false"]
    for key, value in conf.items():
        args += ["--conf", f"{key}={value}"]
    proc = cluster.submit(args + [str(ROOT / "jobs" / "gio_select.py"), "--config", str(cfg_file), "--output", str(out)])
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "Starting executor ID driver" not in proc.stderr  # not local mode
    return json.loads((out / "manifest.json").read_text())


def tasks_by_job(events: Path, app_id: str) -> dict[str, list[str]]:
    """Executor ids of every finished task, by the description of the job it belonged to."""
    # one file (Spark 3.5), or a folder of rolled files (Spark 4: eventlog_v2_<app>/events_<n>_<app>)
    files = sorted((p for p in events.rglob(f"*{app_id}*") if p.name.startswith((app_id, "events_"))),
                   key=lambda p: int(p.name.split("_")[1]) if p.name.startswith("events_") else 0)
    assert files, f"no event log for {app_id} in {events}"
    stage_job, executors = {}, {}
    for line in (line for f in files for line in f.read_text().splitlines()):
        event = json.loads(line)
        kind = event["Event"]
        if kind == "SparkListenerJobStart":
            desc = (event.get("Properties") or {}).get("spark.job.description") or "(none)"
            for sid in event["Stage IDs"]:
                stage_job[sid] = desc
        elif kind == "SparkListenerTaskEnd":
            desc = stage_job.get(event["Stage ID"], "(none)")
            executors.setdefault(desc, []).append(event["Task Info"]["Executor ID"])
    return executors


def selected_ids(out: Path) -> set:
    return set(pd.read_parquet(out / "selected").pair_id)


@pytest.mark.spark35
def test_spark_submit_with_static_vectors_and_gpu_resources_matches_local(cluster, package_zip, config, local_static,
                                                                         tmp_path):
    """spark-submit on the two-executor cluster against local[2], bit for bit, the static fit
    through ONNX Runtime included, with GPU task resources that the workers' fake GPUs satisfy
    and CUDA cannot use."""
    cache = tmp_path / "executor-cache"
    conf = {"spark.executor.resource.gpu.amount": "1", "spark.task.resource.gpu.amount": "1",
            "spark.executorEnv.GIO_SPARK_CACHE": str(cache)}
    manifest = submit(cluster, package_zip, {**config, **STATIC}, tmp_path / "out", tmp_path / "events", conf)
    app_id = manifest["spark"]["app_id"]
    assert manifest["spark"]["master"] == cluster.url
    assert app_id in {a["id"] for a in cluster.apps()}  # registered with the master

    tasks = tasks_by_job(tmp_path / "events", app_id)
    everything = [e for ex in tasks.values() for e in ex]
    assert everything and "driver" not in everything
    for stage in ("static model: embed tokens and sample", "embed train", "embed target", "quantize train",
                  "quantize target"):
        assert tasks.get(f"gio-spark: {stage}"), f"no tasks recorded for {stage}: {sorted(tasks)}"
    assert len(set(tasks["gio-spark: static model: embed tokens and sample"])) == 2  # both executors
    assert [p.name.rsplit("-", 1)[1] for p in (cache / "onnx").iterdir()] == ["int8"]  # the executors' own export

    fit, local_fit = (dict(m["embedding"]["static_model"]) for m in (manifest, local_static))
    checked, local_checked = fit.pop("cosine_to_torch"), local_fit.pop("cosine_to_torch")
    assert fit == local_fit and fit["backend"] == "onnx-int8"
    assert checked["texts"] == local_checked["texts"] and checked["mean"] == pytest.approx(local_checked["mean"], abs=1e-4)
    assert 0.95 < checked["mean"] < 1
    for side in ("train", "target"):
        a, b = (pd.read_parquet(m["stages"][f"embed_{side}"]["path"] + "/embeddings").sort_values("pair_id")
                for m in (manifest, local_static))
        assert a.pair_id.tolist() == b.pair_id.tolist()
        assert all(np_equal(x, y) for x, y in zip(a.embedding, b.embedding))
    ids = selected_ids(Path(local_static["output"]).parent)
    assert selected_ids(tmp_path / "out") == ids and manifest["rows"]["selected"] == len(ids)

    # every executor holds a GPU: each Python worker that got an address said once that it embeds on CPU
    logs = cluster.executor_logs(app_id)
    assert {key.split("/")[0] for key in logs} == {"worker0", "worker1"}
    warnings = [line for text in logs.values() for line in text.splitlines() if "Spark assigned GPU address" in line]
    assert warnings, "no executor warned about the unusable GPU"
    assert all("WARNING" in w and "embedding on CPU" in w for w in warnings)
    assert {w.split("GPU address ")[1].split(" ")[0].rstrip(",") for w in warnings} <= {"0", "1"}
    assert all(f"/{app_id}/" in w for w in warnings)  # naming where it runs
    pairs = [(w.split("(pid ")[1].split(",")[0], w.split("GPU address ")[1].split(" ")[0]) for w in warnings]
    assert len(pairs) == len(set(pairs))


def np_equal(x, y) -> bool:
    import numpy as np

    return np.array_equal(np.asarray(x), np.asarray(y))


API_DRIVER = """
import json, sys
from pathlib import Path
from pyspark.sql import SparkSession

spark = SparkSession.builder.appName("notebook-like").getOrCreate()  # the session exists before the call
from gio_spark import select_pairs

def frame(prefix):
    en = Path(prefix + ".en").read_text(encoding="utf-8").splitlines()
    de = Path(prefix + ".de").read_text(encoding="utf-8").splitlines()
    return spark.createDataFrame([(i, e, d) for i, (e, d) in enumerate(zip(en, de))], "id long, en string, de string")

def preloaded(_):
    return getattr(sys.modules["__main__"], "PRELOADED", None)

pool, target, stages, out = sys.argv[1:5]
# the executors' workers forked from the package's daemon (session.ONE_DAEMON's settings)
daemon = spark.sparkContext.parallelize(range(4), 4).map(preloaded).collect()
got = select_pairs(frame(pool), frame(target), text_col="en", tgt_col="de", id_col="id", budget_pairs=100,
                   config={"quantize": {"k": 30, "seed": 5}, "gio": {"max_iter": 10}}, stages_dir=stages)
ids = sorted(r.pair_id for r in got.selected.select("pair_id").collect())
Path(out).write_text(json.dumps({"ids": ids, "daemon": daemon, "master": spark.sparkContext.master, "app": spark.sparkContext.applicationId,
                                 "alive": not spark.sparkContext._jsc.sc().isStopped()}))
"""


def test_the_notebook_api_on_the_cluster_in_the_callers_session(cluster, package_zip, config, local_ids, tmp_path):
    """select_pairs in a session that exists before the call, as on Databricks, with the model's
    vectors: on the cluster's executors, the same pairs as a local run of the same config, the
    caller's session left running."""
    script = tmp_path / "api_driver.py"
    script.write_text(API_DRIVER)
    result = tmp_path / "result.json"
    proc = cluster.submit([*submit_args(cluster, package_zip), str(script), config["train"]["path"],
                           config["target"]["path"], str(tmp_path / "stages"), str(result)])
    assert proc.returncode == 0, proc.stderr[-4000:]
    got = json.loads(result.read_text())
    assert got["master"] == cluster.url and got["alive"]
    assert got["daemon"] == [list(PRELOAD)] * 4
    assert got["app"] in {a["id"] for a in cluster.apps()}
    assert set(got["ids"]) == local_ids
