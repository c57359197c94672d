"""The stage type: typed results that save and load themselves, keys, reuse, publication
races between runs sharing a store, and damaged markers."""
import json
import logging
from dataclasses import dataclass

import numpy as np
import pytest

from gio_spark.job.fs import FileSystem
from gio_spark.job.stage import Context, Result, Runner, Stage, StageStore, Table

pytestmark = pytest.mark.spark


@dataclass
class Made(Result):
    values: np.ndarray
    note: str
    rows: Table = None


class Make(Stage):
    """Writes a small file into its folder and returns a result with an array."""

    name = "make"
    result = Made

    def __init__(self, note="x"):
        self.note, self.calls = note, 0

    def config(self, cfg):
        return cfg["make"]

    def run(self, ctx, inputs):
        self.calls += 1
        ctx.fs.write_text(ctx.table("rows").uri + "/part-0", self.note)
        return Made(values=np.arange(3) * self.calls, note=self.note, rows=ctx.table("rows"))


@pytest.fixture()
def fs(spark):
    return FileSystem(spark)


def runner(spark, fs, root, cfg, shared=False):
    return Runner(Context(spark, fs, cfg), StageStore(fs, str(root), shared=shared))


def test_a_result_is_saved_and_reused_with_its_key(spark, fs, tmp_path):
    stage = Make()
    first = runner(spark, fs, tmp_path, {"make": 1}).run(stage)
    second_runner = runner(spark, fs, tmp_path, {"make": 1})
    again = second_runner.run(stage)
    assert stage.calls == 1 and second_runner.reused == ["make"]
    np.testing.assert_array_equal(again.values, first.values)
    assert again.note == "x" and again.rows.uri == first.rows.uri
    assert fs.read_text(again.rows.uri + "/part-0") == "x"
    other = runner(spark, fs, tmp_path, {"make": 2})
    other.run(stage)
    assert stage.calls == 2 and other.reused == []
    assert [p.name for p in (tmp_path / "make").iterdir()] == [other.keys["make"]]  # a run's own store is pruned


def test_a_shared_store_keeps_every_key(spark, fs, tmp_path):
    a, b = runner(spark, fs, tmp_path, {"make": 1}, shared=True), runner(spark, fs, tmp_path, {"make": 2}, shared=True)
    a.run(Make())
    b.run(Make())
    assert sorted(p.name for p in (tmp_path / "make").iterdir()) == sorted([a.keys["make"], b.keys["make"]])


def test_two_runs_publishing_one_stage_agree_on_the_first(spark, fs, tmp_path):
    """Two runs computed the same stage at once: the second to publish takes the first's
    result and removes its own files."""
    store_a, store_b = StageStore(fs, str(tmp_path), shared=True), StageStore(fs, str(tmp_path), shared=True)
    stage = Make()
    folder_a, folder_b = store_a.begin("make", "k1"), store_b.begin("make", "k1")
    for folder, note in ((folder_a, "a"), (folder_b, "b")):
        fs.write_text(f"{folder}/rows/part-0", note)
    won, where = store_a.publish(stage, "k1", folder_a, Made(np.zeros(2), "a", Table(f"{folder_a}/rows")), 1.0)
    lost, where_b = store_b.publish(stage, "k1", folder_b, Made(np.ones(2), "b", Table(f"{folder_b}/rows")), 1.0)
    assert where_b == where == folder_a and lost.note == "a"
    np.testing.assert_array_equal(lost.values, np.zeros(2))
    assert not fs.exists(folder_b)
    assert fs.read_text(lost.rows.uri + "/part-0") == "a"


def test_a_damaged_marker_is_computed_again(spark, fs, tmp_path, caplog):
    stage = Make()
    first = runner(spark, fs, tmp_path, {"make": 1})
    first.run(stage)
    marker = tmp_path / "make" / first.keys["make"] / "_stage.json"
    marker.write_text(marker.read_text()[:20])  # truncated
    with caplog.at_level(logging.WARNING, logger="gio_spark.job.stage"):
        runner(spark, fs, tmp_path, {"make": 1}).run(stage)
    assert stage.calls == 2
    assert any("_stage.json is unreadable" in r.getMessage() for r in caplog.records)
    assert json.loads(marker.read_text())["stage"] == "make"
