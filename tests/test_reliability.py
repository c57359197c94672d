"""Bad inputs get one clear error or are counted; failures mid-run and reruns lose and
duplicate nothing."""
import json

import numpy as np
import pandas as pd
import pytest

from gio_spark.cli import main
from gio_spark.errors import UserError
from gio_spark.job import pipeline
from gio_spark.job.pipeline import run_job

from .test_job import POOL, TARGET, job, write_text

pytestmark = pytest.mark.spark


def raw(folder, name, lines_en, lines_de):
    (folder / f"{name}.en").write_bytes(lines_en)
    (folder / f"{name}.de").write_bytes(lines_de)
    return str(folder / name)


@pytest.fixture()
def target(tmp_path):
    return write_text(tmp_path, "target", TARGET)


def test_aligned_files_of_different_length(spark, tmp_path, target):
    train = raw(tmp_path, "train", b"a\nb\nc\n", b"x\ny\n")
    with pytest.raises(UserError, match=r"train\.en has 3 lines, .*train\.de has 2"):
        run_job(job(tmp_path, train, target), spark)


def test_empty_file(spark, tmp_path, target):
    train = raw(tmp_path, "train", b"", b"")
    with pytest.raises(UserError, match=r"input file .*train\.en is empty"):
        run_job(job(tmp_path, train, target), spark)


def test_missing_input(spark, tmp_path, target):
    with pytest.raises(UserError, match=r"no file matches .*nothere\.en"):
        run_job(job(tmp_path, str(tmp_path / "nothere"), target), spark)


def test_bytes_that_are_not_utf8(spark, tmp_path, target):
    en = "".join(e + "\n" for e, _ in POOL).encode()
    de_lines = [d.encode() for _, d in POOL]
    de_lines[4] = b"Gr\xfc\xdfe aus K\xf6ln"  # latin-1, not UTF-8
    train = raw(tmp_path, "train", en, b"\n".join(de_lines) + b"\n")
    with pytest.raises(UserError, match=r"train\.de line 5 is not valid UTF-8"):
        run_job(job(tmp_path, train, target), spark)
    manifest = run_job(job(tmp_path, train, target, allow_undecodable=True), spark)
    assert manifest["skipped"]["train"] == {"undecodable": 1}
    assert manifest["rows"]["train_kept"] == len(POOL) - 1


def test_empty_pairs_are_skipped_and_counted(spark, tmp_path, target):
    rows = list(POOL)
    rows[3] = ("", rows[3][1])
    rows[7] = (rows[7][0], "   ")
    train = write_text(tmp_path, "train", rows)
    manifest = run_job(job(tmp_path, train, target), spark)
    assert manifest["skipped"]["train"] == {"empty_pair": 2}
    assert manifest["rows"]["train_in"] == len(POOL)
    assert manifest["rows"]["train_kept"] == len(POOL) - 2


def test_tsv_row_with_wrong_columns(spark, tmp_path, target):
    body = "src\ttgt\n" + "".join(f"{e}\t{d}\n" for e, d in POOL[:10]) + "only one column\n"
    (tmp_path / "t.tsv").write_text(body)
    with pytest.raises(UserError, match=r"t\.tsv line 12 has 1 tab-separated columns, expected 2"):
        run_job(job(tmp_path, {"path": str(tmp_path / "t.tsv"), "format": "tsv"}, target), spark)


def test_tsv_missing_column(spark, tmp_path, target):
    (tmp_path / "t.tsv").write_text("a\tb\nx\ty\n")
    with pytest.raises(UserError, match=r"column 'src' not in the TSV header \['a', 'b'\]"):
        run_job(job(tmp_path, {"path": str(tmp_path / "t.tsv"), "format": "tsv"}, target), spark)


def test_parquet_nulls_are_counted(spark, tmp_path, target):
    df = pd.DataFrame(POOL, columns=["src", "tgt"])
    df.loc[2, "src"] = None
    df.loc[9, "tgt"] = None
    df.to_parquet(tmp_path / "p.parquet")
    manifest = run_job(job(tmp_path, {"path": str(tmp_path / "p.parquet"), "format": "parquet"}, target), spark)
    assert manifest["skipped"]["train"] == {"null_pair": 2}
    assert manifest["rows"]["train_kept"] == len(POOL) - 2


def test_hf_layout_without_the_language(spark, tmp_path, target):
    pd.DataFrame({"translation": [{"de": d, "fr": e} for e, d in POOL]}).to_parquet(tmp_path / "hf.parquet")
    with pytest.raises(UserError, match=r"'translation' has no field 'en' \(fields: de, fr\)"):
        run_job(job(tmp_path, {"path": str(tmp_path / "hf.parquet"), "format": "hf"}, target), spark)
    pd.DataFrame({"pairs": ["x"]}).to_parquet(tmp_path / "nohf.parquet")
    with pytest.raises(UserError, match=r"no column 'translation'"):
        run_job(job(tmp_path, {"path": str(tmp_path / "nohf.parquet"), "format": "hf"}, target), spark)


def test_target_too_small_for_the_estimator(spark, tmp_path):
    train = write_text(tmp_path, "train", POOL)
    small = write_text(tmp_path, "small", TARGET[:4])
    with pytest.raises(UserError, match=r"target has 4 clusters; .*k=5 needs at least 6"):
        run_job(job(tmp_path, train, small), spark)


def test_target_smaller_than_k_lowers_k(spark, tmp_path, target):
    train = write_text(tmp_path, "train", POOL)
    manifest = run_job(job(tmp_path, train, target, quantize={"k": 100}), spark)
    assert manifest["quantize"]["target"]["clusters"] <= len(TARGET)
    assert manifest["quantize"]["target"]["k_requested"] == 100


def test_pool_smaller_than_the_selection_is_reported(spark, tmp_path, target):
    train = write_text(tmp_path, "train", POOL[:10])
    cfg = job(tmp_path, train, target, quantize={"enabled": False},
              gio={"max_iter": 50, "stop_criterion": "min_difference", "min_difference": -1e9})
    manifest = run_job(cfg, spark)
    assert manifest["selection"]["stop_reason"] == "pool_exhausted"
    assert manifest["rows"]["selected"] == 10


def vectors_file(path, vecs, ids=None):
    ids = np.arange(len(vecs)) if ids is None else ids
    pd.DataFrame({"id": ids, "features": [np.asarray(v, dtype=float) for v in vecs]}).to_parquet(path)
    return {"path": str(path), "format": "vectors"}


def test_bad_precomputed_vectors(spark, tmp_path):
    rng = np.random.default_rng(0)
    good_t = vectors_file(tmp_path / "t.parquet", rng.normal(size=(20, 4)))
    nan = rng.normal(size=(30, 4))
    nan[7, 2] = np.nan
    with pytest.raises(UserError, match=r"1 vectors with NaN, infinite or null values .* e\.g\. id 7"):
        run_job(job(tmp_path, vectors_file(tmp_path / "nan.parquet", nan), good_t), spark)
    ragged = [np.zeros(4)] * 5 + [np.zeros(3)]
    with pytest.raises(UserError, match=r"vectors of different dimensions \(3 to 4\).* e\.g\. id 5"):
        run_job(job(tmp_path, vectors_file(tmp_path / "rag.parquet", ragged), good_t), spark)
    with pytest.raises(UserError, match=r"2 duplicated ids"):
        run_job(job(tmp_path, vectors_file(tmp_path / "dup.parquet", rng.normal(size=(6, 4)), [1, 1, 2, 2, 3, 4]), good_t), spark)
    other_dim = vectors_file(tmp_path / "d5.parquet", rng.normal(size=(30, 5)))
    with pytest.raises(ValueError, match=r"train has dimension 5 but target has 4"):
        run_job(job(tmp_path, other_dim, good_t, quantize={"k": 6}), spark)


def test_cli_user_error_is_one_line(spark, tmp_path, target, capsys):
    train = raw(tmp_path, "train", b"a\nb\n", b"x\n")
    code = main(["run", "--train", train, "--target", target, "--src-lang", "en", "--tgt-lang", "de",
                 "--output", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2
    assert "aligned files differ in length" in err and "Traceback" not in err
    errors = [line for line in err.strip().splitlines() if "error" in line.lower()]
    assert len(errors) == 1 and err.strip().splitlines()[-1] == errors[0]  # after progress lines
    assert errors[0].startswith("gio-spark: error: train: aligned files differ in length")


def selected_ids(out):
    return sorted(pd.read_parquet(out / "selected").pair_id)


def test_killed_after_embedding_resumes_without_embedding_again(spark, tmp_path, target, monkeypatch):
    train = write_text(tmp_path, "train", POOL)
    reference = run_job(job(tmp_path / "ref", train, target), spark)

    def killed(*args, **kwargs):
        raise KeyboardInterrupt("killed")

    with monkeypatch.context() as m:
        m.setattr(pipeline, "kmeans", killed)
        with pytest.raises(KeyboardInterrupt):
            run_job(job(tmp_path / "run", train, target), spark)
    assert not (tmp_path / "run" / "out" / "_SUCCESS").exists()
    assert not (tmp_path / "run" / "out" / "selected").exists()
    resumed = run_job(job(tmp_path / "run", train, target), spark)
    assert {"pairs_train", "pairs_target", "embed_train", "embed_target"} <= set(resumed["stages_reused"])
    assert "quantize_train" not in resumed["stages_reused"]
    assert selected_ids(tmp_path / "run" / "out") == selected_ids(tmp_path / "ref" / "out")
    assert resumed["selection"]["chosen_clusters"] == reference["selection"]["chosen_clusters"]


def test_crash_while_writing_leaves_nothing_that_looks_complete(spark, tmp_path, target, monkeypatch):
    train = write_text(tmp_path, "train", POOL)
    out = tmp_path / "out"
    real_write = pipeline._explode_and_write

    def lost_executor(*args, **kwargs):
        real_write(*args, **kwargs)  # the data is in the temporary folder, not yet moved
        raise RuntimeError("lost executor")

    with monkeypatch.context() as m:
        m.setattr(pipeline, "_explode_and_write", lost_executor)
        with pytest.raises(RuntimeError, match="lost executor"):
            run_job(job(tmp_path, train, target), spark)
    assert (out / "_tmp").exists()
    assert not (out / "selected").exists() and not (out / "_SUCCESS").exists()

    def disk_full(*args, **kwargs):
        raise RuntimeError("disk full")

    with monkeypatch.context() as m:
        m.setattr(pipeline, "render_report", disk_full)
        with pytest.raises(RuntimeError, match="disk full"):
            run_job(job(tmp_path, train, target), spark)
    assert not (out / "_SUCCESS").exists()
    manifest = run_job(job(tmp_path, train, target), spark)
    assert (out / "_SUCCESS").exists()
    assert not (out / "_tmp").exists()
    assert len(selected_ids(out)) == manifest["rows"]["selected"]


def test_a_failed_task_is_retried_without_duplicates(spark, tmp_path, target):
    train = write_text(tmp_path, "train", POOL)
    clean = run_job(job(tmp_path / "clean", train, target), spark)
    spark.sparkContext.setLocalProperty("gio_spark.fail_once", "0")
    spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", "16")
    spark.sparkContext.setJobGroup("faulty", "injected failure")
    try:
        faulty = run_job(job(tmp_path / "faulty", train, target), spark)
    finally:
        spark.conf.unset("spark.sql.execution.arrow.maxRecordsPerBatch")
        spark.sparkContext.setLocalProperty("spark.jobGroup.id", None)
        spark.sparkContext.setLocalProperty("gio_spark.fail_once", None)
    tracker = spark.sparkContext.statusTracker()
    stages = [s for j in tracker.getJobIdsForGroup("faulty") for s in tracker.getJobInfo(j).stageIds]
    failed = sum(tracker.getStageInfo(s).numFailedTasks for s in stages if tracker.getStageInfo(s))
    assert failed >= 1  # partition 0 of an embedding stage failed once, after writing a batch
    emb = pd.read_parquet(tmp_path / "faulty" / "out" / "_stages" / "embed_train" / "data")
    assert emb.pair_id.is_unique and sorted(emb.pair_id) == list(range(len(POOL)))
    ids = selected_ids(tmp_path / "faulty" / "out")
    assert len(ids) == len(set(ids)) == faulty["rows"]["selected"]
    assert ids == selected_ids(tmp_path / "clean" / "out")
    assert faulty["selection"]["chosen_clusters"] == clean["selection"]["chosen_clusters"]


def test_same_config_and_seed_select_the_same_pairs(spark, tmp_path, target):
    train = write_text(tmp_path, "train", POOL)
    cfg = dict(gio={"v_init": "jump", "random_restart_prob": 0.2, "seed": 11, "max_iter": 20})
    run_job(job(tmp_path / "a", train, target, **cfg), spark)
    run_job(job(tmp_path / "b", train, target, **cfg), spark)
    assert selected_ids(tmp_path / "a" / "out") == selected_ids(tmp_path / "b" / "out")
    a = json.loads((tmp_path / "a" / "out" / "manifest.json").read_text())
    b = json.loads((tmp_path / "b" / "out" / "manifest.json").read_text())
    assert a["selection"]["kl_curve"] == b["selection"]["kl_curve"]
