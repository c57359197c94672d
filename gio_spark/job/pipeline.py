"""The job end to end: read -> embed -> quantize -> select -> explode -> write."""
from __future__ import annotations

import dataclasses
import json
import logging
import time
import uuid
from typing import Any

from .. import __version__
from ..errors import UserError
from ..gio import knn_kl, select
from ..logs import quiet_spark
from . import storage
from .config import JobConfig, config_changes, language_warning
from .embed import check_model_available, embed_pairs_df
from .lock import LOCK_NAME, OutputLock
from .manifest import package_versions
from .report import render_report
from .progress import spark_progress
from .quantize import check_direct_rows, quantize
from .readers import InputFiles, kept_pairs, list_input, read_failure, read_pairs, read_vectors, summarize
from .session import get_spark, owns, session_info, warn_local_paths
from .stages import StageStore, digest
from .summary import (example_ranks, nearest_distances, nearest_other_distances, quantization_summary,
                      selection_summary)

log = logging.getLogger(__name__)

SUCCESS = "_SUCCESS"
TMP_DIR = "_tmp"  # selected pairs are written here, then moved into place
MIN_EMBED_PARTITIONS = 8  # embedding tasks for a small input, whatever the cluster
# everything a run writes under its output folder (other entries, e.g. the demo's data, are left alone)
OUTPUT_ENTRIES = ("selected", "_stages", TMP_DIR, "manifest.json", "report.png", SUCCESS, LOCK_NAME)


def run_job(cfg: JobConfig, spark=None, force_unlock: bool = False) -> dict[str, Any]:
    """Run the whole job; returns the manifest (also written to ``<output>/manifest.json``).

    The output is locked for the whole run (``<output>/_LOCK``); ``force_unlock`` takes over
    a stale lock left by a killed run."""
    warning = language_warning(cfg)
    if warning:
        log.warning(warning)
    check_locations(cfg)
    done = storage.join(cfg.output, SUCCESS)
    if storage.exists(done) and cfg.if_exists != "overwrite":
        return _complete_run(cfg)
    check_inputs_exist(cfg)
    if cfg.train.format != "vectors":
        check_model_available(cfg.embedding.model)
    lock = OutputLock(cfg.output, stale_after_s=cfg.lock_stale_hours * 3600, force=force_unlock)
    with lock:
        return _run_locked(cfg, spark, lock)


def _complete_run(cfg: JobConfig) -> dict[str, Any]:
    """``if_exists`` fail or skip on an output that holds a complete run (read-only, no lock)."""
    out = cfg.output
    if cfg.if_exists == "fail":
        raise UserError(f"{out} already holds a complete run; pass --if-exists skip or overwrite")
    manifest = json.loads(storage.read_text(storage.join(out, "manifest.json")))
    changes = config_changes(manifest.get("config", {}), cfg)
    if changes:
        raise UserError(
            f"{out} holds a complete run made with another config ({'; '.join(changes)}); pass "
            "--if-exists overwrite to recompute what changed (finished stages are reused) or another --output"
        )
    log.info("%s already holds a complete run with this config; skipping (if_exists=skip)", out)
    return manifest


def _run_locked(cfg: JobConfig, spark, lock: OutputLock) -> dict[str, Any]:
    started = time.perf_counter()
    out = cfg.output
    done_marker = storage.join(out, SUCCESS)
    if storage.exists(done_marker):
        if cfg.if_exists != "overwrite":  # another run completed it meanwhile
            return _complete_run(cfg)
        storage.delete(done_marker)  # overwrite: never look complete while rewriting
    if spark is None:
        spark = get_spark(cfg.spark_master)
        if owns(spark):  # a session this package created: quiet its routine warnings
            quiet_spark(spark)
    warn_local_paths(spark, [cfg.train.path, cfg.target.path, cfg.output])
    stages = StageStore(spark, out)
    vectors = cfg.train.format == "vectors"

    inputs: dict[str, dict] = {}
    read_keys: dict[str, str] = {}
    for side in ("train", "target"):
        inp = getattr(cfg, side)
        files = list_input(spark, inp, cfg.src_lang, cfg.tgt_lang, side)
        # a file replaced in place, or another package version, makes this and every later stage stale
        read_keys[side] = digest(side, inp, cfg.src_lang, cfg.tgt_lang, cfg.allow_undecodable, files.fingerprint(),
                                 __version__)
        inputs[side] = _stage_read(spark, stages, cfg, side, read_keys[side], files)
    check_counts(cfg, inputs)

    embeds: dict[str, str] = {}
    for side in ("train", "target"):
        if vectors:
            embeds[side] = read_keys[side]
        else:
            embeds[side] = digest(read_keys[side], _result_affecting(cfg.embedding))
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
    # text output writes each pair twice, once per language file
    with spark_progress(spark, "write", total_rows=selection["pairs_selected"],
                        outputs_per_row=2 if cfg.output_format == "text" else 1):
        written = _explode_and_write(spark, stages, cfg, selection, tmp, vectors)
    stages.fs.move(storage.spark_uri(tmp), storage.spark_uri(storage.join(out, "selected")))
    stages.fs.delete(tmp_root)
    stages.timings["write"] = time.perf_counter() - t

    t = time.perf_counter()
    with spark_progress(spark, "report"):
        summary, figure = _summary_and_report(spark, stages, cfg, selection, vectors, quant)
    stages.timings["report"] = time.perf_counter() - t
    manifest = _manifest(cfg, inputs, quant, selection, summary, written, stages, time.perf_counter() - started)
    manifest["spark"] = session_info(spark)
    storage.write_text(storage.join(out, "manifest.json"), json.dumps(manifest, indent=1))
    storage.write_bytes(storage.join(out, "report.png"), figure)
    lock.check()  # never mark complete an output another run has taken over
    storage.write_text(done_marker, json.dumps({"rows": written["rows_out"]}))
    log.info("wrote %d selected pairs to %s (manifest %s, report %s)", written["rows_out"],
             storage.join(out, "selected"), storage.join(out, "manifest.json"), storage.join(out, "report.png"))
    return manifest


def check_locations(cfg: JobConfig) -> None:
    """Before any work: no credentials in paths, an output that can be a folder, and inputs and
    output apart (an output inside an input folder would be read back as input)."""
    for what, uri in (("train.path", cfg.train.path), ("target.path", cfg.target.path), ("output", cfg.output)):
        storage.check_no_credentials(uri, what)
    storage.check_output_location(cfg.output)
    for side in ("train", "target"):
        root = storage.static_prefix(getattr(cfg, side).path)
        if storage.is_within(cfg.output, root):
            raise UserError(f"output {cfg.output} is inside the {side} input {root}; choose an output outside the inputs")
        for entry in OUTPUT_ENTRIES:
            if storage.is_within(root, storage.join(cfg.output, entry)):
                raise UserError(f"{side} input {root} lies in {storage.join(cfg.output, entry)}, which this run "
                                f"rewrites; choose another output")


def check_counts(cfg: JobConfig, inputs: dict[str, dict]) -> None:
    """What the read counts already rule out, refused before embedding and k-means."""
    target, train = inputs["target"]["rows_kept"], inputs["train"]["rows_kept"]
    need = cfg.gio.k + 1
    if target < need:
        raise UserError(f"target has {target} usable pairs; GIO's k-NN estimator with k={cfg.gio.k} needs at least "
                        f"{need} (add target pairs or lower gio.k)")
    if not cfg.quantize.enabled:
        check_direct_rows(train, cfg.quantize.max_direct_rows, "train")
    dims = {side: inputs[side].get("dim") for side in ("train", "target")}
    if None not in dims.values() and dims["train"] != dims["target"]:
        raise UserError(f"train vectors have dimension {dims['train']} but target vectors {dims['target']}")


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


def _stage_read(spark, stages: StageStore, cfg: JobConfig, side: str, key: str, files: InputFiles) -> dict:
    """Every input row goes to the stage, with the reason when it is not used; the counts come
    from what was written, so nothing is dropped unseen. A file Spark cannot read (a corrupt
    or truncated .gz) is one line naming it."""
    inp = getattr(cfg, side)
    path = stages.data(f"pairs_{side}")

    def compute() -> dict:
        try:
            with spark_progress(spark, f"read {side}", outputs_per_row=1) as progress:
                if inp.format == "vectors":
                    df, stats = read_vectors(spark, inp, side, files)
                    progress.set_total(stats.rows_in)
                    df.write.parquet(path)
                else:
                    raw = read_pairs(spark, inp, cfg.src_lang, cfg.tgt_lang, side, files)
                    if raw.rows is not None:
                        progress.set_total(raw.rows)
                    raw.df.write.parquet(path)
                    stats = summarize(spark.read.parquet(path), raw, cfg.allow_undecodable, side)
        except UserError:
            raise
        except Exception as exc:
            error = read_failure(exc, side)
            if error is None:
                raise
            raise error from exc
        return stats.to_dict()

    return stages.run(f"pairs_{side}", key, compute)


def _pairs(spark, stages: StageStore, side: str):
    return kept_pairs(spark.read.parquet(stages.data(f"pairs_{side}")))


def _stage_embed(spark, stages: StageStore, cfg: JobConfig, side: str, key: str, rows: int) -> dict:
    def compute() -> dict:
        pairs = _pairs(spark, stages, side)
        # partitions and their order depend on the data alone, so batches (and so the float
        # rounding of the vectors) are the same on any cluster shape
        parts = max(MIN_EMBED_PARTITIONS, -(-rows // cfg.embedding.rows_per_partition))
        pairs = pairs.repartition(parts, "pair_id").sortWithinPartitions("pair_id")
        with spark_progress(spark, f"embed {side}", total_rows=rows, count_rows=True) as progress:
            embed_pairs_df(pairs, cfg.embedding, progress.counter).write.parquet(stages.data(f"embed_{side}"))
        written = spark.read.parquet(stages.data(f"embed_{side}")).count()
        if written != rows:
            raise RuntimeError(f"{side}: embedded {written} pairs, expected {rows}")
        return {"rows": rows, "model": cfg.embedding.model, "side": cfg.embedding.side, "partitions": parts}

    return stages.run(f"embed_{side}", key, compute)


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
        with spark_progress(spark, f"quantize {side}", max_iter=iterations) as progress:
            # the train side's assignments are kept: the chosen clusters map back to pairs through them
            q = quantize(emb, cfg.quantize, rows, side, offset, stages.data(name) if side == "train" else None)
            lloyd = progress.kmeans_iterations() if cfg.quantize.enabled else 0
        stages.write_npy(name, "centroids.npy", q.centroids)
        stages.write_npy(name, "sizes.npy", q.sizes)
        return {"rows": rows, "clusters": int(len(q.centroids)), "quantized": cfg.quantize.enabled,
                "kmeans_iterations": lloyd, **q.stats}

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
    assignments = spark.read.parquet(stages.data("quantize_train")).select("pair_id", "cluster")
    pairs = _pairs(spark, stages, "train")
    if vectors:
        pairs = pairs.drop("embedding")
    chosen_pairs = assignments.join(F.broadcast(picked), "cluster")
    df = pairs.join(chosen_pairs, "pair_id")
    target_uri = storage.spark_uri(tmp)
    if cfg.output_format == "parquet":
        df.write.parquet(target_uri)
    elif cfg.output_format == "tsv":
        df.select("pair_id", escaped("src"), escaped("tgt")).write.options(**TSV_OPTIONS).csv(target_uri)
    else:  # aligned text files, one line per pair, ordered by pair id
        one = df.select("pair_id", escaped("src"), escaped("tgt")).repartition(1).sortWithinPartitions("pair_id")
        one.select("src").write.text(storage.join(target_uri, cfg.src_lang))
        one.select("tgt").write.text(storage.join(target_uri, cfg.tgt_lang))
    rows = verify_output(spark, cfg, target_uri, selection["pairs_selected"])
    return {"rows_out": rows}


# TSV as written and read back: no quoting (text is escaped instead), whitespace kept as it is
TSV_OPTIONS = {"sep": "\t", "header": "true", "quote": "", "lineSep": "\n", "emptyValue": "",
               "ignoreLeadingWhiteSpace": "false", "ignoreTrailingWhiteSpace": "false"}
ESCAPES = (("\\", "\\\\"), ("\t", "\\t"), ("\n", "\\n"), ("\r", "\\r"))


def escaped(col: str):
    r"""Text for line-based output: backslash, tab, LF and CR written as the two characters
    ``\\``, ``\t``, ``\n``, ``\r``, so every pair is one line and every field one column."""
    from pyspark.sql import functions as F

    out = F.col(col)
    for raw, esc in ESCAPES:
        out = F.replace(out, F.lit(raw), F.lit(esc))
    return out.alias(col)


def verify_output(spark, cfg: JobConfig, uri: str, expected: int) -> int:
    """Read the written pairs back and count them on every side; anything but ``expected`` rows
    (distinct pair ids for Parquet and TSV, lines in both files for text) is an error."""
    from pyspark.sql import functions as F

    if cfg.output_format == "text":
        found = {lang: spark.read.option("lineSep", "\n").text(storage.join(uri, lang)).count()
                 for lang in (cfg.src_lang, cfg.tgt_lang)}
        if set(found.values()) != {expected}:
            raise RuntimeError(f"wrote {found} lines, the chosen clusters hold {expected} pairs")
        return expected
    if cfg.output_format == "tsv":
        # a fourth column catches a row with too many fields (the reader drops extra ones silently)
        back = spark.read.schema("pair_id long, src string, tgt string, _extra string").options(**TSV_OPTIONS).csv(uri)
        bad = F.col("pair_id").isNull() | F.col("src").isNull() | F.col("tgt").isNull() | F.col("_extra").isNotNull()
    else:
        back = spark.read.parquet(uri)
        bad = F.col("pair_id").isNull()
    row = back.agg(F.count("*").alias("rows"), F.countDistinct("pair_id").alias("ids"),
                   F.sum(bad.cast("int")).alias("bad")).first()
    if not row["rows"] == row["ids"] == expected or row["bad"]:
        raise RuntimeError(f"wrote {row['rows']} rows ({row['ids']} distinct pair ids, {row['bad'] or 0} "
                           f"malformed), the chosen clusters hold {expected} pairs")
    return expected


def _summary_and_report(spark, stages: StageStore, cfg: JobConfig, selection: dict, vectors: bool,
                        quant: dict) -> tuple[dict, bytes]:
    """The manifest's summary and report.png: from the centroids on the driver, plus example
    pairs of a few chosen clusters."""
    sizes = stages.read_npy("quantize_train", "sizes.npy")
    train = stages.read_npy("quantize_train", "centroids.npy")
    target = stages.read_npy("quantize_target", "centroids.npy")
    distances = nearest_distances(train, target)
    examples = _examples(spark, stages, selection, vectors)
    summary = selection_summary(selection, sizes, distances, examples, cfg.quantize.enabled, cfg.gio.max_iter)
    summary["quantization"] = {side: quantization_summary(stats) for side, stats in quant.items()}
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
