"""Selection by density ratio (the default for one target) through the whole job on local[2]:
the pairs with the highest ratio, exactly the budget, GIO's own stop as the size without one."""
import numpy as np
import pandas as pd
import pytest

from gio_spark.errors import UserError
from gio_spark.job.config import config_from_dict
from gio_spark.job.pipeline import run_job

from .test_job import POOL, TARGET, job, medicine_share, write_text

pytestmark = pytest.mark.spark


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ratio")
    return folder, write_text(folder, "train", POOL), write_text(folder, "target", TARGET)


def run(spark, inputs, name, **extra):
    folder, train, target = inputs
    cfg = job(folder / name, train, target, stages_dir=str(folder / "stages"), **extra)
    manifest = run_job(cfg, spark)
    out = folder / name / "out"
    scores = pd.read_parquet(out / "scores") if (out / "scores").exists() else None
    return manifest, pd.read_parquet(out / "selected"), scores


def ranked(scores):
    """The usable pool pairs in the order the ratio takes them."""
    usable = scores[scores.duplicate.isna()]
    return usable.sort_values(["density_ratio", "pair_id"], ascending=[False, True]).pair_id.tolist()


@pytest.mark.spark35
def test_a_pair_budget_takes_the_highest_ratios(spark, inputs):
    manifest, out, scores = run(spark, inputs, "pairs", selection={"budget_pairs": 25, "write_scores": True})
    assert manifest["selection"]["method"] == "density_ratio"
    assert sorted(out.pair_id) == sorted(ranked(scores)[:25])
    assert len(out) == manifest["rows"]["selected"] == 25
    assert {"density_ratio", "ratio_logit", "ratio_knn"} <= set(scores.columns) and "ratio_bin" not in scores.columns
    merged = out.merge(scores, on="pair_id", suffixes=("", "_score"))
    assert (merged.density_ratio == merged.density_ratio_score).all()
    assert medicine_share(out) > 0.9  # the target is medical; a third of the pool is
    ratio = manifest["summary"]["density_ratio"]
    assert ratio["size_from"] == "budget" and ratio["amount"] == 25
    assert set(manifest["density_ratio"]) >= {"target_rows", "sample_rows", "k_target", "k_sample", "mix", "mix_auc"}


def test_a_token_budget_is_never_passed(spark, inputs):
    manifest, out, scores = run(spark, inputs, "tokens", selection={"budget_tokens": 400, "write_scores": True})
    tokens = (out.src.str.split().str.len() + out.tgt.str.split().str.len()).sum()
    assert 400 - 40 < tokens <= 400 == manifest["summary"]["density_ratio"]["amount"]
    order = ranked(scores)
    assert set(order[: len(out) - 3]) <= set(out.pair_id)  # the highest ratios are in; only the cut bin may skip


def test_without_a_budget_gio_says_how_much(spark, inputs):
    manifest, out, _ = run(spark, inputs, "own")
    gio_pairs = sum(manifest["selection"]["chosen_cluster_sizes"])
    assert len(out) == gio_pairs == manifest["rows"]["selected"]
    assert manifest["summary"]["density_ratio"]["size_from"] == "gio_own_stop"
    gio, gio_out, _ = run(spark, inputs, "gio", selection={"method": "gio"})
    assert gio["selection"]["method"] == "gio" and "density_ratio" not in gio
    assert len(gio_out) == gio_pairs  # the same amount, GIO's clusters' pairs
    assert "density_ratio" not in gio_out.columns


def test_named_targets_cannot_ask_for_the_ratio(inputs):
    folder, train, target = inputs
    with pytest.raises(UserError, match="selection.method=density_ratio selects for one target"):
        config_from_dict({"train": {"path": train}, "targets": [{"name": "a", "path": target}],
                          "output": str(folder / "named"), "selection": {"method": "density_ratio"}})


def test_the_selected_pairs_rank_by_their_bins(spark, inputs):
    manifest, out, scores = run(spark, inputs, "rank", selection={"budget_pairs": 30, "write_scores": True})
    by_rank = out.sort_values("selection_rank")
    assert by_rank.density_ratio.is_monotonic_decreasing or \
        np.all(np.diff(by_rank.groupby("selection_rank").density_ratio.min().to_numpy()) <= 0)
    assert out.selection_rank.min() == 0 and manifest["selection"]["density_ratio"]["bins"]
