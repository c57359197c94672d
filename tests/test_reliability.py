"""Bad inputs get one clear error or are counted; failures mid-run and reruns lose and
duplicate nothing."""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

from gio_spark.cli import main
from gio_spark.errors import UserError
from gio_spark.job.fs import FileSystem
from gio_spark.job.pipeline import run_job
from gio_spark.job.stages import embed as embed_stage
from gio_spark.job.stages import quantize as quantize_stage
from gio_spark.job.stages import report as report_stage

from .conftest import ROOT
from .test_job import POOL, STAGES, TARGET, job, write_text

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


@pytest.mark.spark35
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
    with pytest.raises(UserError, match=r"target has 4 usable pairs; .*k=5 needs at least 6"):
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
    with pytest.raises(UserError, match=r"train vectors have dimension 5 but target vectors 4"):
        run_job(job(tmp_path, other_dim, good_t, quantize={"k": 6}), spark)


def test_cli_user_error_is_one_line(spark, tmp_path, target, capsys):
    train = raw(tmp_path, "train", b"a\nb\n", b"x\n")
    code = main(["run", "--train", train, "--target", target, "--src-lang", "en", "--tgt-lang", "de",
                 "--output", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2
    assert "aligned files differ in length" in err and "Traceback" not in err
    errors = [line for line in err.strip().splitlines() if line.startswith("gio-spark: error:")]
    assert len(errors) == 1 and err.strip().splitlines()[-1] == errors[0]  # after progress lines
    assert errors[0].startswith("gio-spark: error: train: aligned files differ in length")


def selected_ids(out):
    return sorted(pd.read_parquet(out / "selected").pair_id)


def test_killed_after_embedding_resumes_without_embedding_again(spark, tmp_path, reference, monkeypatch):
    train, target, ref_ids, ref_manifest = reference

    def killed(*args, **kwargs):
        raise KeyboardInterrupt("killed")

    with monkeypatch.context() as m:
        m.setattr(quantize_stage, "quantize", killed)
        with pytest.raises(KeyboardInterrupt):
            run_job(job(tmp_path / "run", train, target), spark)
    assert not (tmp_path / "run" / "out" / "_SUCCESS").exists()
    assert not (tmp_path / "run" / "out" / "selected").exists()
    resumed = run_job(job(tmp_path / "run", train, target), spark)
    assert {"pairs_train", "pairs_target", "embed_train", "embed_target"} <= set(resumed["stages_reused"])
    assert "quantize_train" not in resumed["stages_reused"]
    assert selected_ids(tmp_path / "run" / "out") == ref_ids
    assert resumed["selection"]["chosen_clusters"] == ref_manifest["selection"]["chosen_clusters"]


def test_crash_while_writing_leaves_nothing_that_looks_complete(spark, tmp_path, target, monkeypatch):
    train = write_text(tmp_path, "train", POOL)
    out = tmp_path / "out"
    real_move = FileSystem.move

    def lost_executor(self, src, dst):
        if dst.endswith("/selected"):  # the data is in the temporary folder, not yet moved
            raise RuntimeError("lost executor")
        real_move(self, src, dst)

    with monkeypatch.context() as m:
        m.setattr(FileSystem, "move", lost_executor)
        with pytest.raises(RuntimeError, match="lost executor"):
            run_job(job(tmp_path, train, target), spark)
    assert (out / "_tmp").exists()
    assert not (out / "selected").exists() and not (out / "_SUCCESS").exists()

    def disk_full(*args, **kwargs):
        raise RuntimeError("disk full")

    with monkeypatch.context() as m:
        m.setattr(report_stage, "render_report", disk_full)
        with pytest.raises(RuntimeError, match="disk full"):
            run_job(job(tmp_path, train, target), spark)
    assert not (out / "_SUCCESS").exists()
    manifest = run_job(job(tmp_path, train, target), spark)
    assert (out / "_SUCCESS").exists()
    assert not (out / "_tmp").exists()
    assert len(selected_ids(out)) == manifest["rows"]["selected"]


@pytest.mark.spark35
def test_a_failed_task_is_retried_without_duplicates(spark, tmp_path, reference, monkeypatch):
    train, target, ref_ids, clean = reference

    class FailsOnce(embed_stage.SentenceEmbedder):
        """Partition 0's first attempt fails after handing Spark part of its rows."""

        def __call__(self, batches, **accumulators):
            from pyspark import TaskContext

            ctx = TaskContext.get()
            for out in super().__call__(batches, **accumulators):
                if ctx.partitionId() == 0 and ctx.attemptNumber() == 0:
                    yield out.iloc[:2]
                    raise RuntimeError("injected failure")
                yield out

    monkeypatch.setattr(embed_stage, "SentenceEmbedder", FailsOnce)
    spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", "4")  # other Arrow batches than the clean run's
    spark.sparkContext.setJobGroup("faulty", "injected failure")
    try:
        faulty = run_job(job(tmp_path / "faulty", train, target), spark)
    finally:
        spark.conf.unset("spark.sql.execution.arrow.maxRecordsPerBatch")
        spark.sparkContext.setLocalProperty("spark.jobGroup.id", None)
        spark.sparkContext.setLocalProperty("spark.job.description", None)
    tracker = spark.sparkContext.statusTracker()
    stages = [s for j in tracker.getJobIdsForGroup("faulty") for s in tracker.getJobInfo(j).stageIds]
    failed = sum(tracker.getStageInfo(s).numFailedTasks for s in stages if tracker.getStageInfo(s))
    assert failed >= 1  # partition 0 of an embedding stage failed once, after handing over rows
    emb = pd.read_parquet(next((tmp_path / "faulty" / "out" / "_stages" / "embed_train").glob("*/attempt-*/embeddings")))
    assert emb.pair_id.is_unique and sorted(emb.pair_id) == list(range(len(POOL)))
    ids = selected_ids(tmp_path / "faulty" / "out")
    assert len(ids) == len(set(ids)) == faulty["rows"]["selected"]
    # the vectors do not depend on Spark's Arrow batches, so the selection is the clean run's
    assert ids == ref_ids
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


# Fault matrix: the driver dies at every point where a run leaves something behind, a second
# run meets a running one, a killed run leaves its lock. Each ends with the reference's pair ids
# or a clean refusal, and never with _SUCCESS beside partial output.

KILL_POINTS = [f"/_stages/{s}/" for s in STAGES] + ["/selected", "/report.png", "/manifest.json", "/_SUCCESS"]


class Killed(BaseException):
    """The driver dying: nothing after this point runs (not an Exception, so nothing catches it)."""


@pytest.fixture(scope="module")
def reference(spark, tmp_path_factory):
    """A clean run's inputs and selected pair ids, shared by the fault cases."""
    folder = tmp_path_factory.mktemp("reference")
    train, target = write_text(folder, "train", POOL), write_text(folder, "target", TARGET)
    manifest = run_job(job(folder / "ref", train, target), spark)
    return train, target, selected_ids(folder / "ref" / "out"), manifest


def kill_at(m, point: str) -> None:
    """Make the driver die right before it writes a path ending in ``point`` (for a stage: before
    it publishes its marker)."""

    def check(uri: str) -> None:
        if uri.endswith(point) or (point.startswith("/_stages/") and point in uri and uri.endswith("/_stage.json")):
            raise Killed(point)

    for name in ("write_text", "write_bytes", "create_exclusive"):
        real = getattr(FileSystem, name)
        m.setattr(FileSystem, name, lambda self, uri, data, real=real: (check(uri), real(self, uri, data))[1])
    real_move = FileSystem.move
    m.setattr(FileSystem, "move", lambda self, src, dst: (check(dst), real_move(self, src, dst))[1])


def markers(out, stage):
    return list((out / "_stages" / stage).glob("*/_stage.json"))


def test_driver_killed_at_every_stage_boundary_resumes_to_the_same_pairs(spark, tmp_path, reference, monkeypatch):
    train, target, ref_ids, ref_manifest = reference
    out = tmp_path / "out"
    published: dict[str, str] = {}
    for i, point in enumerate(KILL_POINTS):
        with monkeypatch.context() as m:
            kill_at(m, point)
            with pytest.raises(Killed):
                run_job(job(tmp_path, train, target), spark)
        assert not (out / "_SUCCESS").exists(), point
        assert not (out / "_LOCK").exists(), point  # released on the way out (kill -9: see below)
        assert (out / "selected").exists() == (i > KILL_POINTS.index("/selected")), point
        for n, stage in enumerate(STAGES):
            found = markers(out, stage)
            assert len(found) == (1 if n < i else 0), (point, stage)
            if found:  # finished once, never computed again
                assert published.setdefault(stage, found[0].read_text()) == found[0].read_text(), (point, stage)
    manifest = run_job(job(tmp_path, train, target), spark)
    assert manifest["stages_reused"] == STAGES
    assert selected_ids(out) == ref_ids
    assert manifest["selection"]["chosen_clusters"] == ref_manifest["selection"]["chosen_clusters"]
    assert not (out / "_tmp").exists() and not (out / "_LOCK").exists()


SUBPROCESS_DRIVER = """
import sys
from gio_spark.job.session import get_spark
get_spark("local[2,2]", extra_conf={"spark.sql.shuffle.partitions": "2"})  # as the tests' session
from gio_spark.cli import main
sys.exit(main(sys.argv[1:]))
"""


def start_driver(args, log):
    """The CLI in a driver process of its own (its session set up as the tests' is), output to ``log``."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)}
    with open(log, "wb") as fh:
        return subprocess.Popen([sys.executable, "-c", SUBPROCESS_DRIVER, *args], stdout=fh, stderr=subprocess.STDOUT,
                                env=env, start_new_session=True)


def wait_until(done, what: str, proc, log, timeout_s=300.0):
    """Poll ``done()`` until it holds; fail naming ``what`` if the run ends first or time runs out."""
    deadline = time.monotonic() + timeout_s
    while not done():
        if proc.poll() is not None:
            pytest.fail(f"the run ended (exit {proc.returncode}) before {what}:\n{log.read_text()[-3000:]}")
        if time.monotonic() > deadline:
            pytest.fail(f"no {what} in {timeout_s} s:\n{log.read_text()[-3000:]}")
        time.sleep(0.2)


def wait_for(path, proc, log, timeout_s=300.0):
    wait_until(path.exists, str(path), proc, log, timeout_s)


def wait_for_glob(folder, pattern, proc, log, timeout_s=300.0):
    wait_until(lambda: any(folder.glob(pattern)), f"{folder}/{pattern}", proc, log, timeout_s)


def test_second_run_refused_and_kill_9_leaves_a_stale_lock(spark, tmp_path, reference, capsys):
    train, target, ref_ids, _ = reference
    out = tmp_path / "out"
    args = ["run", "--train", train, "--target", target, "--src-lang", "en", "--tgt-lang", "de", "--output", str(out),
            "--k", "30", "--set", "quantize.seed=3", "--set", "gio.max_iter=30"]
    log = tmp_path / "first.log"
    first = start_driver(args, log)
    try:
        wait_for(out / "_LOCK", first, log)
        lock = json.loads((out / "_LOCK").read_text())
        assert lock["pid"] == first.pid
        assert main(args) == 2  # the second run refuses and touches nothing
        err = capsys.readouterr().err
        assert f"is in use by run {lock['owner']} (host {lock['host']}, pid {first.pid}, started {lock['started']})" in err
        errors = [line for line in err.strip().splitlines() if "error" in line]
        assert len(errors) == 1 and err.strip().splitlines()[-1] == errors[0]  # one error line, after the session's
        wait_for_glob(out / "_stages" / "embed_train", "*/_stage.json", first, log)  # the first one carried on
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
    finally:
        try:
            os.killpg(first.pid, signal.SIGKILL)  # its JVM too
        except ProcessLookupError:
            pass
    left = json.loads((out / "_LOCK").read_text())  # the same run's lock (its heartbeat may have been renewed since)
    identity = ("owner", "host", "pid", "started", "started_epoch")
    assert not (out / "_SUCCESS").exists() and {k: left[k] for k in identity} == {k: lock[k] for k in identity}
    assert main(args) == 2
    err = capsys.readouterr().err
    assert f"looks stale (process {first.pid} is gone on this host); rerun with --force-unlock" in err
    assert main([*args, "--force-unlock"]) == 0
    assert selected_ids(out) == ref_ids
    assert not (out / "_LOCK").exists()
