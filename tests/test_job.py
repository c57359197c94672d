"""The Spark job end to end on local[2]: every input format, resume, the manifest's counts."""
import gzip
import json
import logging
import re

import numpy as np
import pandas as pd
import pytest

from gio_spark.cli import main
from gio_spark.demo import generate
from gio_spark.density_ratio import ratio_bin
from gio_spark.errors import UserError
from gio_spark.job.config import QuantizeConfig, config_from_dict
from gio_spark.job.pipeline import run_job

pytestmark = pytest.mark.spark


# every stage a complete run publishes, in order (all reused by a rerun of the same job)
STAGES = ["pairs_train", "pairs_target", "embed_train", "embed_target", "quantize_train", "quantize_target",
          "density_ratio", "guard", "select"]

POOL = [p for d in ("medicine", "law", "software") for p in generate(d, 40, seed=1, half=0)]
TARGET = generate("medicine", 30, seed=2, half=1)  # medical, but no copy of a pool pair


def write_text(folder, name, rows, src="en", tgt="de", gz=False):
    for lang, i in ((src, 0), (tgt, 1)):
        text = "".join(r[i] + "\n" for r in rows)
        path = folder / f"{name}.{lang}{'.gz' if gz else ''}"
        if gz:
            with gzip.open(path, "wt", encoding="utf-8") as fh:
                fh.write(text)
        else:
            path.write_text(text, encoding="utf-8")
    return str(folder / name)


def read_input(spark, inp, src="en", tgt="de", name="train"):
    """RawPairs of one input as the read stage gets them: listed once, then read."""
    from gio_spark.job.fs import FileSystem
    from gio_spark.job.readers import reader_for

    fs, reader = FileSystem(spark), reader_for(inp.format)
    return reader.read(spark, fs, inp, src, tgt, name, reader.list(fs, inp, src, tgt, name))


def job(tmp_path, train, target, **extra):
    base = {
        "train": train if isinstance(train, dict) else {"path": train},
        "target": target if isinstance(target, dict) else {"path": target},
        "src_lang": "en",
        "tgt_lang": "de",
        "output": str(tmp_path / "out"),
        "quantize": {"k": 30, "seed": 3},
        "gio": {"max_iter": 30},
    }
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            base[key] = {**base[key], **value}
        else:
            base[key] = value
    return config_from_dict(base)


def medicine_share(df):
    return df["src"].str.contains("tablet|doctor|dose|side effects|allergic|Store").mean()


@pytest.mark.spark35
def test_text_pairs_end_to_end(spark, tmp_path):
    train = write_text(tmp_path, "train", POOL)
    target = write_text(tmp_path, "target", TARGET, gz=True)
    cfg = job(tmp_path, train, target)
    manifest = run_job(cfg, spark)
    out = pd.read_parquet(tmp_path / "out" / "selected")
    assert {"pair_id", "src", "tgt"} <= set(out.columns)
    assert len(out) == manifest["rows"]["selected"] == manifest["selection"]["pairs_selected"] > 0
    assert manifest["rows"]["train_in"] == manifest["rows"]["train_kept"] == len(POOL)
    assert manifest["rows"]["target_in"] == len(TARGET)
    assert set(zip(out.src, out.tgt)) <= set(POOL)
    assert out.pair_id.is_unique
    assert medicine_share(out) > 0.8
    assert (tmp_path / "out" / "report.png").stat().st_size > 1000
    assert (tmp_path / "out" / "_SUCCESS").exists()
    saved = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert saved["selection"]["stop_reason"] == manifest["selection"]["stop_reason"]
    assert saved["versions"]["gio-spark"]
    assert set(saved["seconds"]) >= {"pairs_train", "embed_train", "quantize_train", "select", "write", "total"}


def test_resume_reuses_finished_stages(spark, tmp_path):
    train = write_text(tmp_path, "train", POOL)
    target = write_text(tmp_path, "target", TARGET)
    first = run_job(job(tmp_path, train, target), spark)
    ids = set(pd.read_parquet(tmp_path / "out" / "selected").pair_id)
    with pytest.raises(UserError, match="already holds a complete run"):
        run_job(job(tmp_path, train, target), spark)
    again = run_job(job(tmp_path, train, target, if_exists="overwrite"), spark)
    assert again["stages_reused"] == STAGES
    assert set(pd.read_parquet(tmp_path / "out" / "selected").pair_id) == ids
    changed = run_job(job(tmp_path, train, target, if_exists="overwrite", gio={"max_iter": 2}), spark)
    assert "select" not in changed["stages_reused"] and "quantize_train" in changed["stages_reused"]
    assert len(changed["selection"]["selected_indices"]) <= 2
    skipped = run_job(job(tmp_path, train, target, if_exists="skip", gio={"max_iter": 2}), spark)
    assert skipped == changed
    with pytest.raises(UserError, match=r"another config \(gio\.max_iter: 2 -> 3; quantize\.seed: 3 -> 4\)"):
        run_job(job(tmp_path, train, target, if_exists="skip", gio={"max_iter": 3}, quantize={"seed": 4}), spark)
    assert first["rows"]["train_kept"] == changed["rows"]["train_kept"]


def test_pair_ids_are_stable_and_positional(spark, tmp_path):
    from gio_spark.job.config import InputConfig

    train = write_text(tmp_path, "train", POOL)
    a = read_input(spark, InputConfig(path=train)).df
    b = read_input(spark.newSession(), InputConfig(path=train)).df
    pa = a.toPandas().sort_values("pair_id")
    assert pa._skip.isna().all()
    assert pa.pair_id.tolist() == sorted(b.toPandas().pair_id)
    assert pa.pair_id.tolist() == list(range(len(POOL)))
    assert list(zip(pa.src, pa.tgt)) == POOL


@pytest.mark.spark35
def test_tsv_parquet_and_hf_inputs(spark, tmp_path):
    df = pd.DataFrame(POOL, columns=["english", "german"])
    (tmp_path / "tsv").mkdir()
    df.iloc[:60].to_csv(tmp_path / "tsv" / "a.tsv", sep="\t", index=False)
    df.iloc[60:].to_csv(tmp_path / "tsv" / "b.tsv", sep="\t", index=False)
    pq = tmp_path / "pool.parquet"
    df.assign(domain="x").to_parquet(pq)
    hf = tmp_path / "hf.parquet"
    pd.DataFrame({"translation": [{"de": de, "en": en} for en, de in TARGET]}).to_parquet(hf)
    for i, train in enumerate([
        {"path": str(tmp_path / "tsv"), "format": "tsv", "src_col": "english", "tgt_col": "german"},
        {"path": str(pq), "format": "parquet", "src_col": "english", "tgt_col": "german"},
    ]):  # one store: the second run reuses the target's stages
        cfg = job(tmp_path / f"r{i}", train, {"path": str(hf), "format": "hf"}, stages_dir=str(tmp_path / "stages"))
        manifest = run_job(cfg, spark)
        out = pd.read_parquet(tmp_path / f"r{i}" / "out" / "selected")
        assert manifest["rows"]["train_kept"] == len(POOL)
        assert manifest["rows"]["target_kept"] == len(TARGET)
        assert len(out) == manifest["rows"]["selected"] > 0
        assert set(zip(out.src, out.tgt)) <= set(POOL)
        assert medicine_share(out) > 0.8
        if train["format"] == "parquet":
            assert (out.domain == "x").all()  # source columns travel to the output


@pytest.mark.spark35
def test_precomputed_vectors_skip_embedding(spark, tmp_path):
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(6, 16))
    labels = rng.integers(0, 6, size=300)
    pool = centers[labels] + rng.normal(scale=0.1, size=(300, 16))
    target = centers[rng.integers(0, 2, size=40)] + rng.normal(scale=0.1, size=(40, 16))
    pd.DataFrame({"id": np.arange(1000, 1300), "features": list(pool), "label": labels}).to_parquet(tmp_path / "pool.parquet")
    pd.DataFrame({"id": np.arange(40), "features": list(target)}).to_parquet(tmp_path / "target.parquet")
    cfg = job(tmp_path, {"path": str(tmp_path / "pool.parquet"), "format": "vectors"},
              {"path": str(tmp_path / "target.parquet"), "format": "vectors"}, quantize={"k": 20})
    manifest = run_job(cfg, spark)
    assert "embed_train" not in manifest["seconds"]
    out = pd.read_parquet(tmp_path / "out" / "selected")
    assert len(out) == manifest["rows"]["selected"] > 0
    assert set(out.pair_id) <= set(range(1000, 1300))
    assert (out.label < 2).mean() > 0.9
    assert manifest["target_duplicates"]["excluded"] == 0  # no cosine threshold on vectors it did not make


@pytest.mark.spark35
def test_direct_selection_without_quantization(spark, tmp_path):
    train = write_text(tmp_path, "train", POOL)
    target = write_text(tmp_path, "target", TARGET)
    cfg = job(tmp_path, train, target, quantize={"enabled": False}, gio={"max_iter": 15, "stop_criterion": "data_size"})
    manifest = run_job(cfg, spark)
    out = pd.read_parquet(tmp_path / "out" / "selected")
    assert len(out) == manifest["rows"]["selected"] == 15
    assert manifest["quantize"]["train"]["clusters"] == len(POOL)


@pytest.mark.spark35
def test_output_as_tsv_and_aligned_text(spark, tmp_path):
    train = write_text(tmp_path, "train", POOL)
    target = write_text(tmp_path, "target", TARGET)
    stages = str(tmp_path / "stages")  # one store: the second run writes again from the first's stages
    m1 = run_job(job(tmp_path / "a", train, target, output_format="tsv", stages_dir=stages), spark)
    tsv = pd.concat(pd.read_csv(p, sep="\t") for p in (tmp_path / "a" / "out" / "selected").glob("part-*"))
    assert len(tsv) == m1["rows"]["selected"] and set(tsv.columns) == {"pair_id", "src", "tgt"}
    m2 = run_job(job(tmp_path / "b", train, target, output_format="text", stages_dir=stages), spark)
    assert "guard" in m2["stages_reused"] and "write" not in m2["stages_reused"]
    en = "".join(p.read_text() for p in sorted((tmp_path / "b" / "out" / "selected" / "en").glob("part-*"))).splitlines()
    de = "".join(p.read_text() for p in sorted((tmp_path / "b" / "out" / "selected" / "de").glob("part-*"))).splitlines()
    assert len(en) == len(de) == m2["rows"]["selected"]
    assert set(zip(en, de)) <= set(POOL)


def test_demo_run_reports_what_was_selected(spark, tmp_path, capsys, caplog):
    out = tmp_path / "demo"
    with caplog.at_level(logging.INFO, logger="gio_spark"):
        assert main(["run", "--demo", "--output", str(out)]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    summary, selection = manifest["summary"], manifest["selection"]
    assert summary["pairs_in_pool"] == 1200 and 0 < summary["pairs_selected"] == manifest["rows"]["selected"] < 1200
    assert summary["share_of_pool"] == round(summary["pairs_selected"] / 1200, 4)
    assert 0 < summary["clusters_chosen"] == len(selection["chosen_clusters"]) < summary["clusters_total"] == 60
    assert summary["iterations"] == selection["iterations"] and summary["max_iter"] == 40
    assert summary["stop_reason"] == selection["stop_reason"] and summary["stop_explained"]
    assert summary["kl"]["final"] == selection["final_kl"] and "can be negative" in summary["kl"]["note"]
    near = summary["nearest_target_distance"]
    assert near["selected"]["p50"] < near["not_selected"]["p50"]  # the selection sits closer to the target
    examples = summary["examples"]
    ranks = [e["rank"] for e in examples]
    ratio = selection["density_ratio"]  # one target: the pairs were taken by density ratio, score bin by bin
    assert summary["method"] == "density_ratio" and summary["density_ratio"]["size_from"] == "gio_own_stop"
    assert summary["pairs_selected"] == sum(selection["chosen_cluster_sizes"])  # as many as GIO's own stop chose
    assert ranks[:3] == [1, 2, 3] and ranks[-1] == len(ratio["bins"]) and len(ranks) <= 6
    written = pd.read_parquet(out / "selected").set_index("pair_id")
    for e in examples:
        assert e["bin"] == ratio["bins"][e["rank"] - 1]
        assert e["pairs"] == ratio["bin_sizes"][e["rank"] - 1]
        assert 1 <= len(e["examples"]) <= min(2, e["pairs"])  # the last bin may be cut
        for pair in e["examples"]:  # a pair of that bin, as written
            row = written.loc[pair["pair_id"]]
            assert (row["src"], row["tgt"]) == (pair["src"], pair["tgt"])
            assert ratio_bin(np.array([row["density_ratio"]]))[0] == e["bin"] and row["selection_rank"] == e["rank"] - 1
    for side in ("train", "target"):  # k-means quality, in the manifest and the report's figures
        q, shown = manifest["quantize"][side], summary["quantization"][side]
        assert q["inertia"] > 0 and q["singletons"] >= 0 and q["empty"] == 0
        assert shown["mean_sqdist"] == q["mean_sqdist"] and shown["size_max"] == q["size_percentiles"]["p100"]
    jobs = manifest["spark"]["jobs"]  # Spark jobs per stage: the README's table, a ceiling that must not regrow
    assert set(jobs) == {*manifest["stages"], "total"} and jobs["total"] == sum(jobs[s] for s in manifest["stages"])
    assert jobs["select"] == jobs["report"] == 0 and jobs["total"] <= 40, jobs
    png = (out / "report.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 50_000
    printed = capsys.readouterr().out
    assert f"({summary['pairs_selected']} of 1200, by density ratio)" in printed
    logs = [r.getMessage() for r in caplog.records]
    assert any(re.match(r"embed train: done in .*, 1,200 / 1,200 rows \(100%\), [\d.,]+ rows/s$", m) for m in logs)
    assert any(re.match(rf"quantize train: done in .*, {manifest['quantize']['train']['kmeans_iterations']} / {QuantizeConfig().max_iter} "
                        r"k-means iterations$", m) for m in logs)
    assert any(m.startswith(f"select: {selection['iterations']} / 40 iterations, stop: ") for m in logs)


def test_report_says_one_pair_per_cluster_when_k_is_the_row_count():
    from gio_spark.job.report import _quantization_text

    pool = {"rows": 35000, "clusters": 1500, "mean_sqdist": 0.6, "singletons": 0, "empty": 0,
            "size_p50": 22, "size_p90": 37, "size_max": 86}
    small = {"rows": 500, "clusters": 500, "mean_sqdist": 0.0, "singletons": 500, "empty": 0,
             "size_p50": 1, "size_p90": 1, "size_max": 1}
    lines = _quantization_text({"quantization": {"train": pool, "target": small}})
    assert lines[0].endswith("max 86; 0 singletons, 0 empty")
    assert lines[1] == "k-means, target: 500 pairs in 500 clusters: one pair per cluster (the side has no more rows than k)"
