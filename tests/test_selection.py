"""Selection the way users need it: exact budgets past and before GIO's own stop, token
budgets, the guard against target duplicates, and per-pair scores."""
import pandas as pd
import pytest

from gio_spark.errors import UserError
from gio_spark.job.pipeline import run_job

from .test_job import POOL, TARGET, job, write_text

pytestmark = pytest.mark.spark


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("selection")
    return folder, write_text(folder, "train", POOL), write_text(folder, "target", TARGET)


def selected(out):
    return pd.read_parquet(out / "selected")


def test_a_pair_budget_is_exact_below_and_above_gios_own_stop(spark, inputs, tmp_path):
    _, train, target = inputs
    gio = {"method": "gio"}  # GIO's clusters (the density ratio's budgets: test_ratio_selection.py)
    stages = tmp_path / "stages"  # one store: the budgeted runs reuse every stage before select
    own = run_job(job(tmp_path / "own", train, target, selection=gio, stages_dir=str(stages)), spark)
    natural = own["rows"]["selected"]
    scores = pd.read_parquet(next((stages / "guard").glob("*/attempt-*/scores")))  # the store's, shared by all
    for budget in (natural // 2 + 1, natural + 25):
        m = run_job(job(tmp_path / str(budget), train, target, selection={**gio, "budget_pairs": budget},
                        stages_dir=str(stages)), spark)
        assert "guard" in m["stages_reused"]
        out = selected(tmp_path / str(budget) / "out")
        assert len(out) == m["rows"]["selected"] == budget and out.pair_id.is_unique
        info = m["summary"]["budget"]
        assert info["unit"] == "pairs" and info["amount"] == budget and info["pairs_written"] == budget
        order = m["selection"]["chosen_clusters"]
        assert order[: min(len(order), len(own["selection"]["chosen_clusters"]))] == \
            own["selection"]["chosen_clusters"][: len(order)]  # GIO's order, as without a budget
        cut = m["selection"]["cut"]
        last = out[out.cluster == cut["cluster"]]
        assert len(last) == cut["keep"]
        if budget > natural:  # past GIO's own stop: where that was is reported
            assert info["gio_own_stop"]["pairs"] == natural and info["gio_own_stop"]["reason"] == "increase"
        # the last cluster's pairs nearest the target are the ones kept
        pool_last = scores[scores.cluster == cut["cluster"]].sort_values(["target_distance", "pair_id"])
        assert sorted(last.pair_id) == sorted(pool_last.pair_id[: cut["keep"]])


def test_a_token_budget_lands_within_one_pair(spark, inputs, tmp_path):
    _, train, target = inputs
    budget = 600
    m = run_job(job(tmp_path, train, target, selection={"budget_tokens": budget}), spark)
    out = selected(tmp_path / "out")
    tokens = (out.src.str.split().str.len() + out.tgt.str.split().str.len())
    assert tokens.sum() == m["summary"]["budget"]["tokens_written"] <= budget
    assert budget - tokens.sum() < tokens.max()  # short of it by less than one pair
    assert m["inputs"]["train"]["tokens"]["src"] == sum(len(e.split()) for e, _ in POOL)


def test_a_budget_over_the_pool_is_refused_before_embedding(spark, inputs, tmp_path, monkeypatch):
    from gio_spark.job.stages.embed import EmbedStage

    _, train, target = inputs
    monkeypatch.setattr(EmbedStage, "run", lambda *a: pytest.fail("embedding started"))
    with pytest.raises(UserError, match=rf"budget_pairs=1000 is more than the pool's {len(POOL)} usable pairs"):
        run_job(job(tmp_path, train, target, selection={"budget_pairs": 1000}), spark)
    with pytest.raises(UserError, match=r"budget_tokens=1000000 is more than the pool's \d+ tokens"):
        run_job(job(tmp_path, train, target, selection={"budget_tokens": 1000000}), spark)


def contaminated(folder):
    """The pool with copies of target pairs in it: verbatim, the English side re-cased, and one word changed."""
    copies = TARGET[:8]
    recased = [(e.upper(), d) for e, d in TARGET[8:16]]
    edited = [(e.replace(" every ", " each ").replace(" the ", " this ", 1), d) for e, d in TARGET[16:24]]
    edited = [(e if e != TARGET[16 + i][0] else e.replace(".", " now."), d) for i, (e, d) in enumerate(edited)]
    planted = copies + recased + edited
    return write_text(folder, "dirty", POOL + planted), planted


def test_target_duplicates_in_the_pool_are_never_selected(spark, inputs, tmp_path):
    folder, _, target = inputs
    dirty, planted = contaminated(tmp_path)
    first_planted = len(POOL)
    m = run_job(job(tmp_path / "guarded", dirty, target, selection={"budget_pairs": 60}), spark)
    out = selected(tmp_path / "guarded" / "out")
    assert not set(out.pair_id) & set(range(first_planted, first_planted + len(planted)))
    for e in m["summary"]["examples"]:  # shown pairs are written pairs: none the guard kept out or the budget cut
        assert e["examples"] and {p["pair_id"] for p in e["examples"]} <= set(out.pair_id)
    found = m["target_duplicates"]
    assert found["excluded"] >= len(planted) and found["active"]
    assert found["duplicates"].get("exact_duplicate", 0) >= 16 and found["duplicates"].get("one_word_edit", 0) >= 1
    assert m["summary"]["target_duplicates"]["excluded"] == found["excluded"]
    excluded = pd.read_parquet(tmp_path / "guarded" / "out" / "excluded")
    assert set(range(first_planted, first_planted + len(planted))) <= set(excluded.pair_id)
    assert set(excluded.duplicate) <= {"exact_duplicate", "one_word_edit", "near_embedding"}
    kept = run_job(job(tmp_path / "kept", dirty, target, selection={"keep_target_duplicates": True, "budget_pairs": 60}),
                   spark)
    out = selected(tmp_path / "kept" / "out")
    assert set(out.pair_id) & set(range(first_planted, first_planted + len(planted)))  # the guard off: they come in
    assert kept["target_duplicates"]["excluded"] == 0 and not (tmp_path / "kept" / "out" / "excluded").exists()
    assert sum(kept["target_duplicates"]["duplicates"].values()) == found["excluded"]  # found, and left in


def test_scores_of_every_pool_pair(spark, inputs, tmp_path):
    _, train, target = inputs
    m = run_job(job(tmp_path, train, target, selection={"write_scores": True}), spark)
    scores = pd.read_parquet(tmp_path / "out" / "scores")
    out = selected(tmp_path / "out")
    assert len(scores) == len(POOL) and scores.pair_id.is_unique
    assert scores.selection_rank.notna().sum() == len(out) == m["rows"]["selected"]
    merged = out.merge(scores, on="pair_id", suffixes=("", "_score"))
    assert (merged.selection_rank == merged.selection_rank_score).all()
    assert (merged.target_distance - merged.target_distance_score).abs().max() < 1e-12
    assert m["scores"].endswith("/scores")


def test_the_near_duplicate_cosine_applies_to_the_jobs_own_embeddings_unless_set(tmp_path):
    from gio_spark.job.stages.guard import SENTENCE_COSINE, GuardStage

    own, given = job(tmp_path, "a", "b"), job(tmp_path, "a", "b", selection={"duplicate_cosine": 0.99})
    assert GuardStage(embedded=False).threshold(own) == SENTENCE_COSINE
    assert GuardStage(embedded=True).threshold(own) is None  # precomputed vectors: their own scale
    assert GuardStage(embedded=True).threshold(given) == GuardStage(embedded=False).threshold(given) == 0.99


def test_too_many_clusters_for_the_pool_get_one_line_with_a_better_k():
    from gio_spark.job.stages.quantize import k_warning

    line = k_warning(35_000, 5000, 65)
    assert line.startswith("train: k=5000 clusters for 35,000 pool pairs is 7.0 pairs per cluster (65 singletons)")
    assert "try quantize.k=1750" in line and "\n" not in line
    assert k_warning(35_000, 1500, 0) is None and k_warning(35_000, 0, 0) is None
