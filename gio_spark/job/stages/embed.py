"""Embed stage: one side's kept pairs to vectors, in executor tasks (on the task's GPU when
Spark assigned one). Rows are hash-partitioned by the text that is embedded, into a number of
partitions set by the row count, and sorted within each: the same tasks, batches and float
rounding on any cluster shape, and repeated texts meet in one task, which embeds them once."""
from __future__ import annotations

import dataclasses
import functools
import logging
from dataclasses import dataclass
from typing import Mapping, Optional

from pyspark.sql import functions as F

from ..embed import SentenceEmbedder, StaticEmbedder, cosine_summary
from ..stage import Context, Progress, Resources, Result, Stage, Table
from ..tally import observed, tally
from .read import ReadResult

log = logging.getLogger(__name__)

MIN_PARTITIONS = 2  # embedding tasks of a small input (under 2 x rows_per_partition): two executors share it


@dataclass
class EmbedResult(Result):
    rows: int
    model: str
    side: str
    partitions: int
    distinct_texts: int  # texts embedded: each distinct text once per task
    embeddings: Optional[Table] = None  # [pair_id, embedding array<float>]
    method: str = "model"  # or "static": token vectors fitted to the model (stages/static.py)
    backend: str = "torch"  # what ran the model on CPU (embedding.backend)
    # with an ONNX backend: {"texts", "mean", "min"} cosines to torch's vectors of some texts of each task
    cosine_to_torch: Optional[dict] = None

    def vectors(self) -> tuple[Table, int]:
        """The table holding the vectors, and its row count."""
        return self.embeddings, self.rows

    def stats(self) -> dict:
        texts = self.rows * (2 if self.side == "both" else 1)
        return {"rows": self.rows, "model": self.model, "method": self.method, "backend": self.backend,
                "cosine_to_torch": self.cosine_to_torch, "side": self.side, "partitions": self.partitions,
                "texts": texts, "distinct_texts": self.distinct_texts, "repeated_texts_skipped": texts - self.distinct_texts}


def result_affecting(embedding) -> dict:
    """The embedding settings that change the vectors (partitioning and task GPUs do not, nor
    the static settings when the method is the model's)."""
    values = dataclasses.asdict(embedding)
    for key in ("rows_per_partition", "gpus_per_task"):
        values.pop(key)
    if embedding.method == "model":
        for key in ("method", "static_fit_texts", "static_ridge"):
            values.pop(key)
    return values


class EmbedStage(Stage[EmbedResult]):
    result = EmbedResult

    def __init__(self, side: str, gpus_per_task: float = 0.0, static: bool = False) -> None:
        self.side = side
        self.name = f"embed_{side}"
        self.reads = (f"pairs_{side}", "static_model") if static else (f"pairs_{side}",)
        # static vectors need no GPU: only the static model's fit runs the model
        self.resources = Resources("executors", gpus_per_task=0.0 if static else gpus_per_task)

    def config(self, cfg):
        return result_affecting(cfg.embedding)

    def progress(self, cfg, inputs: Mapping[str, Result]) -> Progress:
        return Progress(f"embed {self.side}", total_rows=inputs[self.reads[0]].rows_kept, count_rows=True)

    def run(self, ctx: Context, inputs: Mapping[str, Result]) -> EmbedResult:
        cfg = ctx.cfg.embedding
        pairs: ReadResult = inputs[self.reads[0]]
        rows = pairs.rows_kept
        texts = ctx.spark.sparkContext.accumulator(0)
        agreement = None
        if "static_model" in inputs:
            embedder = StaticEmbedder(cfg, token_vectors=inputs["static_model"].token_vectors)
        else:
            embedder = SentenceEmbedder(cfg)
            agreement = tally(ctx.spark) if cfg.backend != "torch" else None
        vectors, parts = embedded(pairs.kept(ctx.spark), rows, cfg, self.resources, embedder, ctx.progress.counter,
                                  texts, agreement)
        vectors, seen = observed(vectors, rows=F.count(F.lit(1)))
        out = ctx.write_table(vectors, "embeddings")
        written = seen.get["rows"]
        if written != rows:
            raise RuntimeError(f"{self.side}: embedded {written} pairs, expected {rows}")
        result = EmbedResult(rows=rows, model=cfg.model, side=cfg.side, partitions=parts,
                             distinct_texts=int(texts.value), embeddings=out, method=cfg.method,
                             backend=cfg.backend if cfg.method == "model" else "static",
                             cosine_to_torch=cosine_summary(agreement.value) if agreement is not None else None)
        skipped = result.stats()["repeated_texts_skipped"]
        if skipped:
            log.info("embed %s: %d of %d texts were repeats, embedded once each", self.side, skipped,
                     result.stats()["texts"])
        return result


SCHEMA = "pair_id long, embedding array<float>"


def embedded(pairs, rows: int, cfg, resources: Resources, embedder: SentenceEmbedder, counter=None, texts=None,
             agreement=None):
    """DataFrame[pair_id, embedding] of ``pairs`` (``rows`` of them) and its partition count: the
    rows hash-partitioned by the embedded text into a count set by ``rows`` alone, sorted by pair
    id within each, then one ``embedder`` call per task. ``counter`` and ``texts``
    (accumulators) get the rows and the distinct texts embedded, ``agreement`` (a Tally
    accumulator) an ONNX backend's cosines to torch."""
    parts = max(MIN_PARTITIONS, -(-rows // cfg.rows_per_partition))
    keys = [F.col(c) for c in embedder.columns()]
    df = pairs.select("pair_id", *embedder.columns()).repartition(parts, F.xxhash64(*keys)).sortWithinPartitions("pair_id")
    body = functools.partial(embedder, rows=counter, texts=texts, agreement=agreement)
    return task_resources(df.sparkSession, df, body, resources), parts


def task_resources(spark, df, body, resources: Resources):
    """``df.mapInPandas(body)``, in tasks that get ``resources.gpus_per_task`` GPUs through a
    stage-level resource profile where this Spark can (4.0+, not local mode); else as the
    session's task resources say (``spark.task.resource.gpu.amount``)."""
    if not resources.gpus_per_task:
        return df.mapInPandas(body, SCHEMA)
    if spark.sparkContext.master.startswith("local"):
        log.warning("embedding.gpus_per_task is ignored in local mode (Spark has no stage-level resources there)")
        return df.mapInPandas(body, SCHEMA)
    try:
        from pyspark.resource import ResourceProfileBuilder, TaskResourceRequests

        requests = TaskResourceRequests().cpus(1).resource("gpu", resources.gpus_per_task)
        profile = ResourceProfileBuilder().require(requests).build
        return df.mapInPandas(body, SCHEMA, profile=profile)
    except TypeError:  # Spark 3.5: mapInPandas takes no profile
        log.warning("embedding.gpus_per_task needs Spark 4.0 or later (stage-level resources of mapInPandas); "
                    "set spark.task.resource.gpu.amount instead")
        return df.mapInPandas(body, SCHEMA)
