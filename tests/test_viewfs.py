"""One I/O layer: the whole job with its inputs, stage store and output on viewfs://, a
scheme only Hadoop knows (a mount table over local folders); and one pool shared by runs
for other targets through a shared stages dir."""
import json
import uuid

import pandas as pd
import pytest

from gio_spark.demo import generate
from gio_spark.job.pipeline import run_job

from .test_job import POOL, STAGES, TARGET, job, write_text

pytestmark = pytest.mark.spark


@pytest.fixture()
def viewfs(spark, tmp_path):
    """viewfs://<table>/data and viewfs://<table>/out, mounted on two local folders."""
    table = f"gio{uuid.uuid4().hex[:8]}"  # a new table: Hadoop caches a filesystem per table
    hadoop = spark.sparkContext._jsc.hadoopConfiguration()
    for name in ("data", "out"):
        (tmp_path / name).mkdir()
        hadoop.set(f"fs.viewfs.mounttable.{table}.link./{name}", (tmp_path / name).as_uri())
    return f"viewfs://{table}", tmp_path


def ids(folder):
    return sorted(pd.read_parquet(folder).pair_id)


@pytest.mark.spark35
def test_the_whole_job_on_a_hadoop_only_scheme(spark, viewfs, tmp_path):
    root, local = viewfs
    write_text(local / "data", "train", POOL)
    write_text(local / "data", "target", TARGET)
    cfg = job(tmp_path, f"{root}/data/train", f"{root}/data/target", output=f"{root}/out/run")
    manifest = run_job(cfg, spark)
    out = local / "out" / "run"
    assert {"selected", "_stages", "manifest.json", "report.png", "_SUCCESS"} <= {p.name for p in out.iterdir()}
    assert not (out / "_LOCK").exists()
    assert json.loads((out / "manifest.json").read_text())["rows"] == manifest["rows"]
    assert manifest["output"] == f"{root}/out/run/selected"
    assert all(f.startswith(f"{root}/data/") for f in manifest["inputs"]["train"]["files"])
    assert (out / "report.png").read_bytes()[:4] == b"\x89PNG"
    again = run_job(job(tmp_path, f"{root}/data/train", f"{root}/data/target", output=f"{root}/out/run",
                        if_exists="overwrite"), spark)
    assert again["stages_reused"] == STAGES
    plain = run_job(job(tmp_path / "local", str(local / "data" / "train"), str(local / "data" / "target")), spark)
    assert ids(out / "selected") == ids(tmp_path / "local" / "out" / "selected")
    assert plain["selection"]["chosen_clusters"] == manifest["selection"]["chosen_clusters"]


def test_runs_for_other_targets_reuse_the_pool_through_a_shared_stages_dir(spark, tmp_path):
    train = write_text(tmp_path, "train", POOL)
    medicine = write_text(tmp_path, "medicine", TARGET)
    law = write_text(tmp_path, "law", generate("law", 30, seed=2, half=1))
    shared = str(tmp_path / "stages")
    first = run_job(job(tmp_path / "a", train, medicine, stages_dir=shared), spark)
    assert first["stages_reused"] == []
    second = run_job(job(tmp_path / "b", train, law, stages_dir=shared), spark)
    assert second["stages_reused"] == ["pairs_train", "embed_train", "quantize_train"]  # the pool, not embedded again
    assert second["stages"]["embed_train"]["path"] == first["stages"]["embed_train"]["path"]
    assert not (tmp_path / "b" / "out" / "_stages").exists()
    fresh = run_job(job(tmp_path / "c", train, law), spark)
    assert fresh["stages_reused"] == []
    assert second["selection"]["chosen_clusters"] == fresh["selection"]["chosen_clusters"]
    assert ids(tmp_path / "b" / "out" / "selected") == ids(tmp_path / "c" / "out" / "selected")
