"""Golden shape of a run: the output layout, the stage names, the manifest's keys and what a
rerun reuses. A change to any of these is a change users see: update the constants here on
purpose, never by accident."""
import json

import pandas as pd
import pytest

from gio_spark.job.pipeline import run_job

from .test_job import POOL, STAGES, TARGET, job, write_text

pytestmark = pytest.mark.spark

OUTPUT_ENTRIES = {"selected", "excluded", "_stages", "manifest.json", "report.png", "_SUCCESS"}
MANIFEST_KEYS = {"output", "summary", "output_format", "config", "versions", "rows", "skipped", "inputs", "quantize",
                 "selection", "target_duplicates", "excluded", "stages_reused", "stages", "seconds", "spark",
                 "embedding", "density_ratio"}
SUMMARY_KEYS = {"pairs_selected", "pairs_in_pool", "share_of_pool", "clusters_chosen", "clusters_total", "unit",
                "iterations", "max_iter", "stop_reason", "stop_explained", "kl", "nearest_target_distance", "examples",
                "quantization", "target_duplicates", "method", "density_ratio"}
ROWS_KEYS = {"train_in", "train_kept", "target_in", "target_kept", "selected"}
SELECTION_KEYS = {"selected_indices", "init_indices", "kl_curve", "initial_kl", "final_kl", "stop_reason", "iterations",
                  "points_added", "n_resets", "gd_steps", "init_size", "timings", "chosen_clusters",
                  "chosen_cluster_sizes", "pairs_selected", "knn_kl_chosen_centroids", "method", "density_ratio"}
INPUT_KEYS = {"rows_in", "rows_kept", "skipped", "files", "tokens"}
QUANTIZE_KEYS = {"rows", "clusters", "quantized", "kmeans_iterations", "k", "k_requested", "fit_rows_target",
                 "driver_rows_target", "init_mode", "lloyd", "inertia", "mean_sqdist", "size_percentiles", "singletons",
                 "empty", "top10pct_share"}
EMBED_KEYS = {"rows", "model", "method", "backend", "cosine_to_torch", "side", "partitions", "texts", "distinct_texts", "repeated_texts_skipped"}
SELECTED_COLUMNS = {"pair_id", "src", "tgt", "cluster", "selection_rank", "target_distance", "density_ratio"}
SELECTED_IDS = list(range(40))  # what one plain target selected before named targets existed (0.3.0)


@pytest.fixture(scope="module")
def golden_run(spark, tmp_path_factory):
    folder = tmp_path_factory.mktemp("golden")
    train, target = write_text(folder, "train", POOL), write_text(folder, "target", TARGET)
    manifest = run_job(job(folder, train, target), spark)
    return folder, train, target, manifest


def test_output_layout_and_stage_names(golden_run):
    folder, _, _, manifest = golden_run
    out = folder / "out"
    assert {p.name for p in out.iterdir()} == OUTPUT_ENTRIES
    assert sorted(p.name for p in (out / "_stages").iterdir()) == sorted(STAGES)
    assert set(pd.read_parquet(out / "selected").columns) == SELECTED_COLUMNS
    assert json.loads((out / "_SUCCESS").read_text()) == {"rows": manifest["rows"]["selected"]}


def test_one_plain_target_selects_the_pairs_it_always_did(golden_run):
    _, _, _, manifest = golden_run
    assert sorted(pd.read_parquet(manifest["output"]).pair_id) == SELECTED_IDS


def test_manifest_keys(golden_run):
    folder, _, _, manifest = golden_run
    assert json.loads((folder / "out" / "manifest.json").read_text()) == json.loads(json.dumps(manifest))
    assert set(manifest) == MANIFEST_KEYS
    assert set(manifest["summary"]) == SUMMARY_KEYS
    assert set(manifest["rows"]) == ROWS_KEYS
    assert set(manifest["selection"]) == SELECTION_KEYS
    assert set(manifest["inputs"]) == {"train", "target"}
    assert all(set(manifest["inputs"][s]) == INPUT_KEYS for s in ("train", "target"))
    assert all(set(manifest["quantize"][s]) == QUANTIZE_KEYS for s in ("train", "target"))
    assert set(manifest["seconds"]) == {*STAGES, "write", "report", "total"}
    assert list(manifest["stages"]) == [*STAGES[:2], *STAGES[2:], "write", "report"]
    assert all(set(r) == {"key", "reused", "resources", "path"} for r in manifest["stages"].values())
    assert set(manifest["embedding"]) == {"train", "target"}
    assert all(set(e) == EMBED_KEYS for e in manifest["embedding"].values())
    assert manifest["stages_reused"] == []


def test_resume_reuses_exactly_what_did_not_change(golden_run, spark):
    folder, train, target, first = golden_run
    again = run_job(job(folder, train, target, if_exists="overwrite"), spark)
    assert again["stages_reused"] == STAGES
    assert all(again["spark"]["jobs"][s] == 0 for s in STAGES)  # a reused stage runs no Spark job
    assert again["selection"]["chosen_clusters"] == first["selection"]["chosen_clusters"]
    assert again["rows"] == first["rows"]
    other_k = run_job(job(folder, train, target, if_exists="overwrite", quantize={"k": 25}), spark)
    assert other_k["stages_reused"] == [*STAGES[:4], "density_ratio"]  # the ratio model does not read the clusters
    skipped = run_job(job(folder, train, target, if_exists="skip", quantize={"k": 25}), spark)
    assert skipped == other_k
    budget = run_job(job(folder, train, target, if_exists="overwrite", quantize={"k": 25},
                         selection={"budget_pairs": 7}), spark)
    assert budget["stages_reused"] == STAGES[:-1]  # a budget changes the selection only
    assert budget["rows"]["selected"] == 7
