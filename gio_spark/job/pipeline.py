"""The job end to end: read -> embed -> quantize -> select -> explode -> write."""
from __future__ import annotations

import dataclasses
import json
import logging
import time
import uuid
from typing import Any

from ..errors import UserError
from ..gio import knn_kl, select
from ..logs import quiet_spark
from . import storage
from .config import JobConfig, config_changes, language_warning
from .embed import embed_pairs_df
from .manifest import package_versions
from .report import render_report
from .progress import spark_progress
from .quantize import Quantized, kmeans, rows_as_clusters
from .readers import kept_pairs, read_pairs, read_vectors, summarize
from .session import get_spark
from .stages import StageStore, digest
from .summary import example_ranks, nearest_distances, nearest_other_distances, selection_summary

log = logging.getLogger(__name__)

SUCCESS = "_SUCCESS"
TMP_DIR = "_tmp"  # selected pairs are written here, then moved into place


def run_job(cfg: JobConfig, spark=None) -> dict[str, Any]:
    """Run the whole job; returns the manifest (also written to ``<output>/manifest.json``)."""
    warning = language_warning(cfg)
    if warning:
        log.warning(warning)
    started = time.perf_counter()
    out = cfg.output
    done_marker = storage.join(out, SUCCESS)
    if storage.exists(done_marker):
        if cfg.if_exists == "fail":
            raise UserError(f"{out} already holds a complete run; pass --if-exists skip or overwrite")
        if cfg.if_exists == "skip":
            manifest = json.loads(storage.read_text(storage.join(out, "manifest.json")))
            changes = config_changes(manifest.get("config", {}), cfg)
            if changes:
                raise UserError(
                    f"{out} holds a complete run made with another config ({'; '.join(changes)}); pass "
                    "--if-exists overwrite to recompute what changed (finished stages are reused) or another --output"
                )
            log.info("%s already holds a complete run with this config; skipping (if_exists=skip)", out)
            return manifest
        storage.delete(done_marker)  # overwrite: never look complete while rewriting
    check_inputs_exist(cfg)
    if spark is None:
        from pyspark.sql import SparkSession

        owned = SparkSession.getActiveSession() is None
        spark = get_spark(cfg.spark_master)
        if owned:  # a session this package created: quiet its routine warnings
            quiet_spark(spark)
    stages = StageStore(spark, out)
    vectors = cfg.train.format == "vectors"

    inputs: dict[str, dict] = {}
    embeds: dict[str, str] = {}
    for side in ("train", "target"):
        inp = getattr(cfg, side)
        key = digest(side, inp, cfg.src_lang, cfg.tgt_lang, cfg.allow_undecodable)
        inputs[side] = _stage_read(spark, stages, cfg, side, key)
        if vectors:
            embeds[side] = key
        else:
            embeds[side] = digest(key, _result_affecting(cfg.embedding))
            _stage_embed(spark, stages, cfg, side, embeds[side], inputs[side]["rows_kept"])

    quant: dict[str, dict] = {}
    qkeys: dict[str, str] = {}
    for offset, side in enumerate(("train", "target")):
        qkeys[side] = digest(embeds[side], cfg.quantize, offset)
        rows = inputs[side]["rows_kept"]  # every kept pair was embedded (checked in the embed stage)
        quant[side] = _stage_quantize(spark, stages, cfg, side, qkeys[side], vectors, offset, rows)

    select_key = digest(qkeys["train"], qkeys["target"], cfg.gio)
    selection = stages.run("select", select_key, lambda: _select(stages, cfg))

    tmp_root = storage.spark_uri(storage.join(out, TMP_DIR))
    if stages.fs.exists(tmp_root):
        log.info("removing %s, left by an earlier run that did not finish", tmp_root)
        stages.fs.delete(tmp_root)
    tmp = storage.join(tmp_root, f"selected-{uuid.uuid4().hex[:8]}")
    t = time.perf_counter()
    with spark_progress(spark, "write", total_rows=selection["pairs_selected"]):
        written = _explode_and_write(spark, stages, cfg, selection, tmp, vectors)
    stages.fs.move(storage.spark_uri(tmp), storage.spark_uri(storage.join(out, "selected")))
    stages.fs.delete(tmp_root)
    stages.timings["write"] = time.perf_counter() - t

    t = time.perf_counter()
    with spark_progress(spark, "report"):
        summary, figure = _summary_and_report(spark, stages, cfg, selection, vectors)
    stages.timings["report"] = time.perf_counter() - t
    manifest = _manifest(cfg, inputs, quant, selection, summary, written, stages, time.perf_counter() - started)
    storage.write_text(storage.join(out, "manifest.json"), json.dumps(manifest, indent=1))
    storage.write_bytes(storage.join(out, "report.png"), figure)
    storage.write_text(done_marker, json.dumps({"rows": written["rows_out"]}))
    log.info("wrote %d selected pairs to %s (manifest %s, report %s)", written["rows_out"],
             storage.join(out, "selected"), storage.join(out, "manifest.json"), storage.join(out, "report.png"))
    return manifest


def check_inputs_exist(cfg: JobConfig) -> None:
    """Fail before any Spark work when an input path matches nothing."""
    for side in ("train", "target"):
        inp = getattr(cfg, side)
        if inp.format == "text":
            candidates = [f"{inp.path}.{cfg.src_lang}{gz}" for gz in ("", ".gz")]
        else:
            candidates = [inp.path]
        if not any(storage.any_match(c) for c in candidates):
            hint = _prefix_hint(side, inp.path, cfg) if inp.format == "text" else ""
            raise UserError(f"{side}: no file matches {' or '.join(candidates)}{hint}")


def _prefix_hint(side: str, path: str, cfg: JobConfig) -> str:
    """Text inputs are prefixes; a path that names one language's file gets the prefix to use."""
    text = f"; text inputs are prefixes (files PREFIX.{cfg.src_lang} and PREFIX.{cfg.tgt_lang})"
    for lang in (cfg.src_lang, cfg.tgt_lang):
        for suffix in (f".{lang}", f".{lang}.gz"):
            if path.endswith(suffix) and len(path) > len(suffix):
                return f"{text}: did you mean --{side} {path[: -len(suffix)]}?"
    return text


def _result_affecting(embedding) -> dict:
    """The embedding settings that change the vectors (partitioning does not)."""
    values = dataclasses.asdict(embedding)
    values.pop("rows_per_partition")
    return values


def _stage_read(spark, stages: StageStore, cfg: JobConfig, side: str, key: str) -> dict:
    """Every input row goes to the stage, with the reason when it is not used; the counts come
    from what was written, so nothing is dropped unseen."""
    inp = getattr(cfg, side)
    path = stages.data(f"pairs_{side}")

    def compute() -> dict:
        with spark_progress(spark, f"read {side}") as progress:
            if inp.format == "vectors":
                df, stats = read_vectors(spark, inp, side)
                progress.set_total(stats.rows_in)
                df.write.parquet(path)
            else:
                raw = read_pairs(spark, inp, cfg.src_lang, cfg.tgt_lang, side)
                if raw.rows is not None:
                    progress.set_total(raw.rows)
                raw.df.write.parquet(path)
                stats = summarize(spark.read.parquet(path), raw, cfg.allow_undecodable, side)
        return stats.to_dict()

    return stages.run(f"pairs_{side}", key, compute)


def _pairs(spark, stages: StageStore, side: str):
    return kept_pairs(spark.read.parquet(stages.data(f"pairs_{side}")))


def _stage_embed(spark, stages: StageStore, cfg: JobConfig, side: str, key: str, rows: int) -> dict:
    def compute() -> dict:
        pairs = _pairs(spark, stages, side)
        parts = embed_partitions(rows, cfg.embedding.rows_per_partition, spark.sparkContext.defaultParallelism)
        pairs = pairs.repartition(parts)
        with spark_progress(spark, f"embed {side}", total_rows=rows, count_rows=True) as progress:
            embed_pairs_df(pairs, cfg.embedding, progress.counter).write.parquet(stages.data(f"embed_{side}"))
        written = spark.read.parquet(stages.data(f"embed_{side}")).count()
        if written != rows:
            raise RuntimeError(f"{side}: embedded {written} pairs, expected {rows}")
        return {"rows": rows, "model": cfg.embedding.model, "side": cfg.embedding.side, "partitions": parts}

    return stages.run(f"embed_{side}", key, compute)


def embed_partitions(rows: int, rows_per_partition: int, parallelism: int) -> int:
    """Partitions of about ``rows_per_partition`` rows, a multiple of the parallelism (no
    half-empty last wave); the progress advances as each one finishes."""
    waves = -(-max(rows, 1) // (rows_per_partition * parallelism))
    return max(1, parallelism) * waves


def _embeddings(spark, stages: StageStore, side: str, vectors: bool):
    if vectors:
        return _pairs(spark, stages, side).select("pair_id", "embedding")
    return spark.read.parquet(stages.data(f"embed_{side}")).select("pair_id", "embedding")


def _stage_quantize(spark, stages: StageStore, cfg: JobConfig, side: str, key: str, vectors: bool, offset: int,
                    rows: int) -> dict:
    name = f"quantize_{side}"

    def compute() -> dict:
        emb = _embeddings(spark, stages, side, vectors)
        iterations = cfg.quantize.max_iter if cfg.quantize.enabled else None
        with spark_progress(spark, f"quantize {side}", max_iter=iterations):
            if cfg.quantize.enabled:
                q: Quantized = kmeans(emb, cfg.quantize, rows, side, seed_offset=offset)
            else:
                q = rows_as_clusters(emb, rows, cfg.quantize.max_direct_rows, side, spark)
            if side == "train":
                q.assignments.write.parquet(stages.data(name))
        stages.write_npy(name, "centroids.npy", q.centroids)
        stages.write_npy(name, "sizes.npy", q.sizes)
        return {
            "rows": rows, "clusters": int(len(q.centroids)), "k_requested": q.k_requested,
            "empty_clusters": int((q.sizes == 0).sum()), "quantized": cfg.quantize.enabled,
            "kmeans_iterations": q.iterations,
        }

    return stages.run(name, key, compute)


def _select(stages: StageStore, cfg: JobConfig) -> dict:
    train = stages.read_npy("quantize_train", "centroids.npy")
    target = stages.read_npy("quantize_target", "centroids.npy")
    sizes = stages.read_npy("quantize_train", "sizes.npy")
    if target.shape[0] < cfg.gio.k + 1:
        raise UserError(
            f"target has {target.shape[0]} clusters; GIO's k-NN estimator with k={cfg.gio.k} needs at least "
            f"{cfg.gio.k + 1} (add target pairs or lower gio.k)"
        )
    unit = "clusters" if cfg.quantize.enabled else "pairs"
    log.info("select: GIO on %d pool %s against %d target %s, at most %d iterations (stop criterion: %s)",
             len(train), unit, len(target), unit, cfg.gio.max_iter, cfg.gio.stop_criterion)
    result = select(train, target, config=cfg.gio)
    chosen = result.chosen_indices
    log.info("select: %d / %d iterations, stop: %s; %d of %d pool pairs in %d of %d %s; relaxed KL estimate "
             "%.2f -> %.2f (k-NN KL estimates can be negative: see the report)", result.iterations,
             cfg.gio.max_iter, result.stop_reason, int(sizes[chosen].sum()) if len(chosen) else 0, int(sizes.sum()),
             len(chosen), len(train), unit, result.initial_kl, result.final_kl)
    out = result.to_dict()
    out["chosen_clusters"] = [int(c) for c in chosen]
    out["chosen_cluster_sizes"] = [int(sizes[c]) for c in chosen]
    out["pairs_selected"] = int(sizes[chosen].sum()) if len(chosen) else 0
    if len(chosen) >= cfg.gio.k:
        out["knn_kl_chosen_centroids"] = knn_kl(target, train[chosen], k=cfg.gio.k)
    return out


def _explode_and_write(spark, stages: StageStore, cfg: JobConfig, selection: dict, tmp: str, vectors: bool) -> dict:
    from pyspark.sql import functions as F

    chosen = selection["chosen_clusters"]
    picked = spark.createDataFrame([(int(c), i) for i, c in enumerate(chosen)], "cluster int, selection_rank int")
    assignments = spark.read.parquet(stages.data("quantize_train"))
    pairs = _pairs(spark, stages, "train")
    if vectors:
        pairs = pairs.drop("embedding")
    chosen_pairs = assignments.join(F.broadcast(picked), "cluster")
    df = pairs.join(chosen_pairs, "pair_id")
    target_uri = storage.spark_uri(tmp)
    if cfg.output_format == "parquet":
        df.write.parquet(target_uri)
    elif cfg.output_format == "tsv":
        df.select("pair_id", "src", "tgt").write.option("sep", "\t").option("header", True).option(
            "quote", ""
        ).csv(target_uri)
    else:  # aligned text files, one line per pair, ordered by pair id
        one = df.select("pair_id", "src", "tgt").repartition(1).sortWithinPartitions("pair_id")
        one.select("src").write.text(storage.join(target_uri, cfg.src_lang))
        one.select("tgt").write.text(storage.join(target_uri, cfg.tgt_lang))
    if cfg.output_format == "text":
        rows = spark.read.text(storage.join(target_uri, cfg.src_lang)).count()
    elif cfg.output_format == "tsv":
        rows = spark.read.option("sep", "\t").option("header", True).csv(target_uri).count()
    else:
        rows = spark.read.parquet(target_uri).count()
    expected = selection["pairs_selected"]
    if rows != expected:
        raise RuntimeError(f"wrote {rows} selected pairs, the chosen clusters hold {expected}")
    return {"rows_out": rows}


def _summary_and_report(spark, stages: StageStore, cfg: JobConfig, selection: dict, vectors: bool) -> tuple[dict, bytes]:
    """The manifest's summary and report.png: from the centroids on the driver, plus example
    pairs of a few chosen clusters."""
    sizes = stages.read_npy("quantize_train", "sizes.npy")
    train = stages.read_npy("quantize_train", "centroids.npy")
    target = stages.read_npy("quantize_target", "centroids.npy")
    distances = nearest_distances(train, target)
    examples = _examples(spark, stages, selection, vectors)
    summary = selection_summary(selection, sizes, distances, examples, cfg.quantize.enabled, cfg.gio.max_iter)
    figure = render_report(summary, selection, sizes, distances, nearest_other_distances(target))
    return summary, figure


def _examples(spark, stages: StageStore, selection: dict, vectors: bool, per_cluster: int = 2) -> list[dict]:
    """Two pairs of each of the first and last chosen clusters: their ids from the assignments
    of just those clusters, then the pairs by id (two small jobs, nothing large collected)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    chosen, sizes = selection["chosen_clusters"], selection["chosen_cluster_sizes"]
    ranks = example_ranks(len(chosen))
    if not ranks:
        return []
    wanted = [int(chosen[r]) for r in ranks]
    spread = Window.partitionBy("cluster").orderBy(F.xxhash64("pair_id"), "pair_id")
    picked = (
        spark.read.parquet(stages.data("quantize_train"))
        .filter(F.col("cluster").isin(wanted))
        .withColumn("_n", F.row_number().over(spread))
        .filter(F.col("_n") <= per_cluster)
        .select("pair_id", "cluster")
        .collect()
    )
    ids = [int(r["pair_id"]) for r in picked]
    texts = {}
    if not vectors and ids:
        rows = _pairs(spark, stages, "train").filter(F.col("pair_id").isin(ids)).select("pair_id", "src", "tgt").collect()
        texts = {int(r["pair_id"]): {"src": r["src"], "tgt": r["tgt"]} for r in rows}
    by_cluster: dict[int, list[dict]] = {}
    for r in sorted(picked, key=lambda r: int(r["pair_id"])):
        by_cluster.setdefault(int(r["cluster"]), []).append({"pair_id": int(r["pair_id"]), **texts.get(int(r["pair_id"]), {})})
    return [
        {"rank": r + 1, "cluster": int(chosen[r]), "pairs": int(sizes[r]), "examples": by_cluster.get(int(chosen[r]), [])}
        for r in ranks
    ]


def _manifest(cfg, inputs, quant, selection, summary, written, stages: StageStore, seconds: float) -> dict:
    return {
        "output": storage.join(cfg.output, "selected"),
        "summary": summary,
        "output_format": cfg.output_format,
        "config": cfg.to_dict(),
        "versions": package_versions(),
        "rows": {
            "train_in": inputs["train"]["rows_in"],
            "train_kept": inputs["train"]["rows_kept"],
            "target_in": inputs["target"]["rows_in"],
            "target_kept": inputs["target"]["rows_kept"],
            "selected": written["rows_out"],
        },
        "skipped": {"train": inputs["train"]["skipped"], "target": inputs["target"]["skipped"]},
        "inputs": inputs,
        "quantize": quant,
        "selection": {k: v for k, v in selection.items() if k != "config"},
        "stages_reused": stages.reused,
        "seconds": {**{k: round(v, 3) for k, v in stages.timings.items()}, "total": round(seconds, 3)},
    }
