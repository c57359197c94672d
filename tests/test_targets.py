"""Several named targets in one run: one pool, each target read, embedded and quantized once, a
budget split by the targets' weights, each pool pair selected at most once, the guard against
every target, and the names and weights checked before any Spark work."""
import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from gio_spark.demo import generate
from gio_spark.gio.mixture import claim, shares
from gio_spark.job.pipeline import run_job

from .conftest import ROOT
from .test_integrity import run_cli
from .test_job import POOL, TARGET, job, write_text

pytestmark = pytest.mark.spark

LAW = generate("law", 30, seed=2, half=1)


def named(tmp_path, train, targets: dict, weights=None, **extra):
    """The test config with named targets (name -> text prefix)."""
    cfg = job(tmp_path, train, "unused", **extra)
    entries = [{"name": n, "path": p, **({"weight": weights[n]} if weights else {})} for n, p in targets.items()]
    from gio_spark.job.config import config_from_dict

    data = json.loads(json.dumps(cfg.to_dict()))
    data.update(target=None, targets=entries)
    return config_from_dict(data)


def test_shares_add_up_to_the_budget_in_whole_pairs():
    assert shares([0.6, 0.4], 101, whole=True) == [61, 40]
    assert shares([1, 1, 1], 100, whole=True) == [34, 33, 33]
    assert shares([1, 3], 10.0, whole=False) == [2.5, 7.5]


def test_a_cluster_goes_to_the_target_that_ranked_it_first():
    weight = np.array([10, 10, 10, 10, 10, 10], dtype=float)
    orders = [[0, 1, 2, 3, 4, 5], [2, 0, 5, 4, 3, 1]]
    a, b = claim(orders, weight, [25, 25])
    assert a.clusters == [0, 1, 3] and a.keep_last == 5  # 2 went to b, which ranked it first
    assert b.clusters == [2, 5, 4] and b.keep_last == 5  # 0 went to a (rank 0 against 1)
    assert a.taken_by_others == 10 and b.taken_by_others == 10
    own_a, own_b = claim([[0, 1], [1, 2]], weight, [None, None])  # no budget: each its own order
    assert own_a.clusters == [0] and own_b.clusters == [1, 2] and own_a.taken_by_others == 10
    tie_a, tie_b = claim([[3, 0], [3, 1]], weight, [None, None])  # the same rank: the target listed first
    assert tie_a.clusters == [3, 0] and tie_b.clusters == [1]


def _check(orders, weight, wanted, smallest, taken):
    """The claims' invariants: each cluster to one target at most, a target over its share by no
    more than its last cluster's cut, nothing taken with nothing wanted."""
    seen = [c for mine in taken for c in mine.clusters]
    assert len(seen) == len(set(seen))
    for order, share, mine in zip(orders, wanted, taken):
        assert set(mine.clusters) <= set(order)
        if share == 0:
            assert mine.clusters == [] and mine.reached == 0
        kept = sum(weight[c] for c in mine.clusters[:-1]) + (mine.keep_last if mine.keep_last is not None else
                                                              (weight[mine.clusters[-1]] if mine.clusters else 0))
        assert kept <= share + 1e-9 and mine.reached <= share + 1e-9
        if mine.keep_last is not None:
            assert smallest[mine.clusters[-1]] <= mine.keep_last  # a cut cluster keeps something


def test_claims_are_disjoint_within_the_budget_and_a_zero_weight_changes_nothing():
    rng = np.random.default_rng(7)
    for case in range(300):
        k, n_targets = int(rng.integers(3, 40)), int(rng.integers(2, 5))
        weight = rng.integers(1, 60, size=k).astype(float)
        smallest = np.minimum(weight, rng.integers(1, 12, size=k)).astype(float)
        orders = [list(rng.permutation(k)[: int(rng.integers(1, k + 1))]) for _ in range(n_targets)]
        kinds = rng.choice(["zero", "tiny", "huge", "equal", "any"], size=n_targets)
        weights = [{"zero": 0.0, "tiny": 1e-9, "huge": 1e12, "equal": 1.0}.get(w, float(rng.uniform(0.1, 5)))
                   for w in kinds]
        if sum(weights) == 0:
            weights[0] = 1.0
        budget = float(rng.integers(1, int(weight.sum()) + 1))
        whole = bool(case % 2)
        wanted = shares(weights, budget, whole=whole)
        assert sum(wanted) == pytest.approx(budget) and (not whole or all(float(w).is_integer() for w in wanted))
        least = None if whole else smallest
        taken = claim(orders, weight, wanted, least)
        _check(orders, weight, wanted, np.ones(k) if whole else smallest, taken)
        assert sum(m.reached for m in taken) <= budget + 1e-6
        zero = [t for t, w in enumerate(weights) if w == 0]
        if zero:  # without the zero-weight targets, the others claim exactly the same
            rest = [t for t in range(n_targets) if t not in zero]
            alone = claim([orders[t] for t in rest], weight, [wanted[t] for t in rest], least)
            assert [(m.clusters, m.keep_last) for m in alone] == [(taken[t].clusters, taken[t].keep_last) for t in rest]


def test_a_target_takes_no_cluster_it_would_keep_nothing_of():
    weight = np.array([10.0, 10.0, 10.0])
    a, b = claim([[0, 1], [0, 2]], weight, [0.0, 15.0])  # a weight of 0: a claims nothing, b keeps its first
    assert a.clusters == [] and b.clusters == [0, 2] and b.keep_last == 5
    smallest = np.array([8.0, 3.0, 3.0])  # tokens of each cluster's shortest pair
    (c,) = claim([[1, 0, 2]], weight, [15.0], smallest)  # 5 tokens left: cluster 0's pairs are all longer
    assert c.clusters == [1, 2] and c.keep_last == 5


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("targets")
    pool = POOL + [LAW[0]]  # medicine, law and software pairs, and a copy of the law target's first pair
    return (folder, write_text(folder, "train", pool), write_text(folder, "medicine", TARGET),
            write_text(folder, "law", LAW), len(pool) - 1)


@pytest.fixture(scope="module")
def mixture(spark, data):
    folder, train, medicine, law, planted = data
    cfg = named(folder / "mix", train, {"medicine": medicine, "law": law}, weights={"medicine": 0.6, "law": 0.4},
                selection={"budget_pairs": 50, "write_scores": True})
    return run_job(cfg, spark)


@pytest.mark.spark35
def test_two_targets_share_a_pair_budget_by_their_weights(mixture, data):
    folder, _, _, _, _ = data
    out = pd.read_parquet(folder / "mix" / "out" / "selected")
    assert len(out) == 50 and out.pair_id.is_unique
    assert out.groupby("target").size().to_dict() == {"medicine": 30, "law": 20}
    per = mixture["summary"]["targets"]
    assert {t["name"]: t["pairs"] for t in per.values()} == {"medicine": 30, "law": 20}
    assert set(out.groupby("cluster").target.nunique()) == {1}  # each cluster serves one target
    assert mixture["selection"]["budget"]["shares"] == {"target_medicine": 30, "target_law": 20}
    for t in per.values():
        assert t["gio_own_stop"] is not None and t["clusters"] > 0 and t["taken_by_others"] >= 0
    assert set(mixture["stages"]) >= {"pairs_target_medicine", "embed_target_law", "quantize_target_law"}
    assert {"pairs_target", "embed_target"}.isdisjoint(mixture["stages"])
    jobs = mixture["spark"]["jobs"]  # the targets share the guard's and the write's jobs, as one target has them
    assert jobs["guard"] <= 6 and jobs["write"] <= 7, jobs  # write: 5, the cut clusters 1, the scores 1


def test_a_target_of_weight_0_changes_nothing_and_tokens_are_per_target(mixture, spark, data, caplog):
    folder, train, medicine, _, _ = data
    store = str(folder / "weights-stages")
    zero = run_job(named(folder / "zero", train, {"z": medicine, "a": medicine}, weights={"z": 0, "a": 1},
                         selection={"budget_pairs": 20}, stages_dir=store), spark)
    alone = run_job(job(folder / "alone", train, medicine, selection={"method": "gio", "budget_pairs": 20},
                        stages_dir=store), spark)
    mine = pd.read_parquet(folder / "zero" / "out" / "selected")
    assert set(mine.target) == {"a"} and zero["summary"]["targets"]["target_z"]["pairs"] == 0
    assert sorted(mine.pair_id) == sorted(pd.read_parquet(folder / "alone" / "out" / "selected").pair_id)
    assert zero["selection"]["targets"]["target_z"]["clusters"] == []
    assert not [r for r in caplog.records if "gets 0" in r.getMessage()]  # a weight of 0 asks for nothing
    tiny = run_job(named(folder / "tiny", train, {"z": medicine, "a": medicine}, weights={"z": 1e-9, "a": 1},
                         selection={"budget_pairs": 20}, stages_dir=store), spark)
    assert tiny["summary"]["targets"]["target_z"]["pairs"] == 0
    assert [r for r in caplog.records if r.getMessage().startswith("select: z: its weight (1e-09 of the whole) gets 0 "
                                                                   "of the 20 pairs of the budget")]
    for side, t in mixture["selection"]["targets"].items():  # tokens beside pairs, as written
        assert t["tokens"] == mixture["summary"]["targets"][side]["tokens"] > 0


def test_a_copy_of_one_targets_pair_is_kept_from_every_target(mixture, data):
    _, _, _, _, planted = data
    excluded = pd.read_parquet(mixture["excluded"])
    assert planted in set(excluded.pair_id)  # a copy of a law pair, not selected for medicine either
    out = pd.read_parquet(mixture["output"])
    assert planted not in set(out.pair_id)


def test_scores_have_a_column_per_target(mixture):
    scores = pd.read_parquet(mixture["scores"])
    assert {"target_distance_medicine", "max_cosine_medicine", "target_distance_law", "max_cosine_law",
            "target", "selection_rank", "duplicate"} <= set(scores.columns)
    assert scores.target.notna().sum() == 50
    chosen = scores[scores.target == "law"]
    out = pd.read_parquet(mixture["output"]).set_index("pair_id")
    assert np.allclose(out.loc[chosen.pair_id, "target_distance"], chosen.target_distance_law)


def test_the_same_mixture_on_one_core(mixture, data, tmp_path):
    """The same pairs for the same targets with a driver of its own on local[1]."""
    folder, train, medicine, law, _ = data
    out = tmp_path / "one"
    code = ("import sys\nfrom gio_spark.job.session import get_spark\nget_spark('local[1]')\n"
            "from gio_spark.cli import main\nsys.exit(main(sys.argv[1:]))\n")
    args = ["run", "--train", train, "--target", f"medicine={medicine}", "--target", f"law={law}",
            "--target-weights", "medicine=0.6,law=0.4", "--budget-pairs", "50", "--output", str(out),
            "--src-lang", "en", "--tgt-lang", "de", "--k", "30", "--set", "quantize.seed=3", "--set", "gio.max_iter=30"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)}
    proc = subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    one = pd.read_parquet(out / "selected").sort_values("pair_id")
    two = pd.read_parquet(folder / "mix" / "out" / "selected").sort_values("pair_id")
    assert one.pair_id.tolist() == two.pair_id.tolist() and one.target.tolist() == two.target.tolist()


def test_one_named_target_selects_what_one_plain_target_does(spark, data, tmp_path):
    folder, train, medicine, _, _ = data
    plain = run_job(job(tmp_path / "plain", train, medicine, stages_dir=str(tmp_path / "stages")), spark)
    one = run_job(named(tmp_path / "named", train, {"only": medicine}, stages_dir=str(tmp_path / "stages")), spark)
    a = pd.read_parquet(tmp_path / "plain" / "out" / "selected")
    b = pd.read_parquet(tmp_path / "named" / "out" / "selected")
    assert "target" not in a.columns and set(b.target) == {"only"}
    assert sorted(a.pair_id) == sorted(b.pair_id)
    assert plain["rows"]["selected"] == one["rows"]["selected"]
    assert {"pairs_train", "embed_train", "quantize_train"} <= set(one["stages_reused"])  # the pool once


@pytest.mark.parametrize("args,message", [
    (["--target", "a=x", "--target", "a=y"], "target names must differ: a given twice"),
    (["--target", "a=x", "--target", "y"], "--target y: with several targets, give each as NAME=PREFIX"),
    (["--target", "a=x", "--target", "b=y", "--target-weights", "a=1,c=2"], "'c=2' is not NAME=WEIGHT of a target"),
    (["--target", "a=x", "--target", "b=y", "--target-weights", "a=0,b=0"], "must add up to more than 0"),
    (["--target", "a=x", "--target", "b=y", "--target-weights", "a=1"], "give a weight to every target or to none"),
    (["--target", "x", "--target-weights", "a=1"], "--target-weights needs named targets"),
    (["--target", "a b=x", "--target", "c=y"], "with several targets, give each as NAME=PREFIX"),
])
def test_bad_names_and_weights_are_one_line_before_spark(args, message, tmp_path, capsys, monkeypatch):
    from gio_spark.job import session

    monkeypatch.setattr(session, "get_spark", lambda *a, **k: pytest.fail("Spark started"))
    err = run_cli(capsys, "--train", "pool", "--output", str(tmp_path / "out"), *args)
    assert message in err


def test_a_batch_without_selected_pairs_writes_for_named_targets(spark):
    """A partition of the pool with no pair of any chosen cluster still gives a typed batch."""
    from types import SimpleNamespace

    from gio_spark.job.stages.write import chosen_schema, picked

    rows = [(i, i % 2, 0.1, 0.2, 3, 4, None) for i in range(8)]  # clusters 0 and 1
    scores = spark.createDataFrame(rows, "pair_id long, cluster int, target_distance_a double, "
                                         "target_distance_b double, tokens_src int, tokens_tgt int, duplicate string")
    scores = scores.repartitionByRange(2, "cluster")  # cluster 1, which no target took, alone in a partition
    guard = SimpleNamespace(sizes=np.array([4, 4]), active=True)
    selection = SimpleNamespace(claims=lambda: [("target_a", [0], None), ("target_b", [], None)], unit="cluster")
    pick = picked(scores, guard, selection, "both", ["target_a", "target_b"], named=True)
    got = scores.mapInPandas(pick, chosen_schema(True)).collect()
    assert sorted(r.pair_id for r in got) == [0, 2, 4, 6] and {r.target for r in got} == {"a"}
    every = scores.mapInPandas(pick.every_row(), "pair_id long, cluster int, target string, selection_rank int, "
                               "target_distance_a double, target_distance_b double, duplicate string").collect()
    assert sorted((r.pair_id, r.target) for r in every) == [(i, "a" if i % 2 == 0 else None) for i in range(8)]
