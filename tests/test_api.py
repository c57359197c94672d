"""``gio_spark.select_pairs``: the job on DataFrames in the caller's session, as a notebook calls
it; the same pairs as the command line, the pool's columns intact, one-line errors."""
import logging

import pandas as pd
import pytest

from gio_spark import select_pairs
from gio_spark.demo import generate
from gio_spark.errors import UserError
from gio_spark.job.pipeline import run_job

from .test_job import POOL, TARGET, job, write_text

pytestmark = pytest.mark.spark

LAW = generate("law", 30, seed=2, half=1)
SETTINGS = {"quantize": {"k": 30, "seed": 3}, "gio": {"max_iter": 30}}


def frame(spark, rows, **extra):
    """A DataFrame of pairs (en, de) with an id column that numbers them as a text file's lines."""
    pdf = pd.DataFrame({"id": range(len(rows)), "en": [e for e, _ in rows], "de": [d for _, d in rows], **extra})
    return spark.createDataFrame(pdf)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("api")
    return folder, write_text(folder, "train", POOL), write_text(folder, "medicine", TARGET), write_text(folder, "law", LAW)


@pytest.mark.spark35
def test_the_same_pairs_as_the_command_line(spark, files, tmp_path, caplog):
    folder, train, medicine, _ = files
    cli = run_job(job(folder / "cli", train, medicine, selection={"budget_pairs": 25}), spark)
    cli_ids = sorted(pd.read_parquet(cli["output"]).pair_id)
    caplog.set_level(logging.INFO, logger="gio_spark")
    got = select_pairs(frame(spark, POOL), frame(spark, TARGET), text_col="en", tgt_col="de", id_col="id",
                       budget_pairs=25, config=SETTINGS, stages_dir=str(tmp_path / "stages"))
    rows = got.selected.toPandas()
    assert sorted(rows.pair_id) == cli_ids and sorted(rows.id) == cli_ids  # ids as the files number them
    assert {"en", "de", "id", "cluster", "selection_rank", "target_distance", "density_ratio"} <= set(rows.columns)
    assert "src" not in rows.columns and "tgt" not in rows.columns
    assert got.summary["rows"]["selected"] == 25 and got.report_png[:4] == b"\x89PNG"
    assert any(r.getMessage().startswith("stage density_ratio: running") for r in caplog.records)  # progress lines


def test_a_two_target_mixture_selects_what_the_command_line_does(spark, files, tmp_path):
    from .test_targets import named

    folder, train, medicine, law = files
    cli = run_job(named(folder / "mix", train, {"medicine": medicine, "law": law}, weights={"medicine": 0.6, "law": 0.4},
                        selection={"budget_pairs": 30}), spark)
    expected = pd.read_parquet(cli["output"])[["pair_id", "target"]].sort_values("pair_id").reset_index(drop=True)
    got = select_pairs(frame(spark, POOL), {"medicine": frame(spark, TARGET), "law": frame(spark, LAW)},
                       target_weights={"medicine": 0.6, "law": 0.4}, text_col="en", tgt_col="de", id_col="id",
                       budget_pairs=30, config=SETTINGS, stages_dir=str(tmp_path / "stages"))
    mine = got.selected.select("pair_id", "target").toPandas().sort_values("pair_id").reset_index(drop=True)
    assert mine.equals(expected)


def test_the_pools_own_columns_come_back_intact(spark, tmp_path):
    extra = {"doc": [f"doc-{i:03d}" for i in range(len(POOL))], "source": ["a", "b", "c"] * (len(POOL) // 3),
             "meta": [{"line": i, "tags": ["x", str(i)]} for i in range(len(POOL))]}
    pool = frame(spark, POOL, **extra).drop("id")
    got = select_pairs(pool, frame(spark, TARGET).drop("id"), text_col="en", budget_pairs=20, id_col="doc",
                       write_scores=True, config=SETTINGS, stages_dir=str(tmp_path / "stages"))
    rows = got.selected.toPandas().set_index("doc")
    assert len(rows) == 20 and "tgt" not in rows.columns  # only the text column was named: de is one more column
    source = pd.DataFrame({"en": [e for e, _ in POOL], "de": [d for _, d in POOL], **extra}).set_index("doc")
    for doc, row in rows.iterrows():
        assert row["en"] == source.loc[doc, "en"] and row["de"] == source.loc[doc, "de"]
        assert row["source"] == source.loc[doc, "source"]
        assert row["meta"]["line"] == source.loc[doc, "meta"]["line"]
        assert list(row["meta"]["tags"]) == source.loc[doc, "meta"]["tags"]
    assert got.scores.count() == len(POOL)


def test_rows_without_ids_are_numbered_by_content_and_repeats_counted(spark, tmp_path):
    pool = frame(spark, POOL + POOL[:5]).drop("id")  # five rows twice
    kwargs = dict(text_col="en", tgt_col="de", budget_pairs=10, config=SETTINGS, stages_dir=str(tmp_path / "stages"))
    first = select_pairs(pool, frame(spark, TARGET).drop("id"), **kwargs)
    skipped = first.summary["skipped"]["train"]
    assert skipped.get("duplicate_row") == 5 + sum(POOL.count(p) - 1 for p in set(POOL))  # every repeat counted
    assert first.summary["rows"]["train_kept"] == len(set(POOL))
    again = select_pairs(pool, frame(spark, TARGET).drop("id"), **kwargs)  # the same data: every stage reused
    assert {"pairs_train", "embed_train", "quantize_train", "density_ratio"} <= set(again.summary["stages_reused"])
    assert sorted(again.selected.toPandas().pair_id) == sorted(first.selected.toPandas().pair_id)


def test_bad_arguments_are_one_line(spark, tmp_path):
    pool, target = frame(spark, POOL), frame(spark, TARGET)
    stages = str(tmp_path / "stages")
    cases = [
        (dict(text_col="fr"), "train: the DataFrame has no column 'fr' (columns: id, en, de)"),
        (dict(text_col="id"), "train: column 'id' is bigint, expected a string column"),
        (dict(text_col="en", id_col="key"), "train: the DataFrame has no id column 'key'"),
        (dict(text_col="en", budget_pairs=10_000), "selection.budget_pairs=10000 is more than the pool's 120 usable pairs"),
        (dict(text_col="en", tgt_col="de", target_weights={"x": 1}), "target_weights names x, which are not targets"),
    ]
    for kwargs, message in cases:
        with pytest.raises(UserError) as err:
            select_pairs(pool, target if "target_weights" not in kwargs else {"a": target}, stages_dir=stages,
                         config=SETTINGS, **kwargs)
        assert message in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(UserError, match="target is an empty DataFrame"):
        select_pairs(pool, target.limit(0), text_col="en", stages_dir=stages)

    class ConnectFrame:  # what a Spark Connect DataFrame looks like to the check (no JVM behind it)
        __module__ = "pyspark.sql.connect.dataframe"

    with pytest.raises(UserError, match="pool is a Spark Connect DataFrame: select_pairs needs a classic Spark session"):
        select_pairs(ConnectFrame(), target, text_col="en")
