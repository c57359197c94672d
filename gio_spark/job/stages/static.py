"""Static model stage (``embedding.method: static``): token vectors fitted to the configured
sentence model, so that the embed stages need only its tokenizer.

The model embeds, in executor tasks on the usual embedding path, every vocabulary token that
the pool's texts use, on its own (each token's start vector), and a sample of the pool's
distinct texts: the ``static_fit_texts`` texts with the smallest 64-bit hash, so the sample
depends on the texts alone, not on the cluster or the partitioning. The target plays no part:
the fit is a pool stage, which runs for other targets reuse (a token that only the target
uses has a zero vector: it cannot bring the target nearer any pool pair). On the driver, ridge
regression fits the token vectors to the model's vectors of nine tenths of the sample
(gio_spark.static_embedding); the held-out tenth gives the mean cosine between the static and
the model vectors, for the manifest.
"""
from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from typing import Iterator, Mapping, Optional

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from ...static_embedding import fit_token_vectors, static_vectors, token_means
from ..embed import SentenceEmbedder, cosine_summary, static_tokenizer, token_ids, vocabulary_texts
from ..stage import Context, Progress, Resources, Result, Stage
from ..tally import tally
from .embed import embedded, result_affecting
from .read import ReadResult

log = logging.getLogger(__name__)

HOLD_OUT = 10  # every 10th sampled text checks the fit instead of entering it
SAMPLE_ID = 1 << 40  # pair ids of sampled texts start here; below it, token ids


@dataclass
class StaticModelResult(Result):
    token_vectors: np.ndarray  # [vocab, dim] float32
    model: str
    fit_texts: int
    held_out: int
    heldout_cosine: float  # mean cosine of static and model vectors of the held-out texts
    fitted_tokens: int  # tokens seen in the fit texts; the rest keep their own vector
    iterations: int
    backend: str = "torch"  # what ran the model on CPU (embedding.backend)
    cosine_to_torch: Optional[dict] = None  # with an ONNX backend (see EmbedResult)

    def stats(self) -> dict:
        return {"model": self.model, "vocabulary": int(self.token_vectors.shape[0]), "fit_texts": self.fit_texts,
                "held_out": self.held_out, "heldout_cosine": round(self.heldout_cosine, 4),
                "fitted_tokens": self.fitted_tokens, "iterations": self.iterations, "backend": self.backend,
                "cosine_to_torch": self.cosine_to_torch}


class StaticModelStage(Stage[StaticModelResult]):
    name = "static_model"
    reads = ("pairs_train",)
    result = StaticModelResult

    def __init__(self, gpus_per_task: float = 0.0) -> None:
        self.resources = Resources("executors", gpus_per_task=gpus_per_task)

    def config(self, cfg):
        return result_affecting(cfg.embedding)

    def progress(self, cfg, inputs: Mapping[str, Result]) -> Progress:
        return Progress("static model: embed tokens and sample", count_rows=True)

    def run(self, ctx: Context, inputs: Mapping[str, Result]) -> StaticModelResult:
        cfg = ctx.cfg.embedding
        spark = ctx.spark
        tok = static_tokenizer(cfg.model, cfg.max_seq_length)
        pool: ReadResult = inputs["pairs_train"]
        texts = pool_texts(ctx, pool, cfg)
        sample = sampled_texts(texts, cfg.static_fit_texts, pool.rows_kept * len(SentenceEmbedder(cfg).columns()))
        vocab = vocabulary_texts(tok)
        used = used_tokens(texts, cfg)
        rows = [(int(i), vocab[i]) for i in used if vocab[i]] + [(SAMPLE_ID + i, t) for i, t in enumerate(sample)]
        ctx.progress.set_total(len(rows))
        # in slices of about 2,000 rows, so that no task carries much of the driver's data
        df = spark.createDataFrame(spark.sparkContext.parallelize(rows, max(1, len(rows) // 2000)),
                                   "pair_id long, src string")
        model_cfg = dataclasses.replace(cfg, side="src")
        agreement = tally(spark) if cfg.backend != "torch" else None
        vectors, _ = embedded(df, len(rows), model_cfg, self.resources, SentenceEmbedder(model_cfg),
                              ctx.progress.counter, agreement=agreement)
        got = vectors.toPandas().sort_values("pair_id")
        ids = got["pair_id"].to_numpy()
        emb = np.stack(got["embedding"].to_numpy()).astype(np.float32)
        start = np.zeros((len(vocab), emb.shape[1]), np.float32)
        start[ids[ids < SAMPLE_ID]] = emb[ids < SAMPLE_ID]
        targets = emb[ids >= SAMPLE_ID]
        held = np.arange(len(sample)) % HOLD_OUT == HOLD_OUT - 1
        sample_ids = token_ids(tok, sample)
        fit = fit_token_vectors(token_means([t for t, h in zip(sample_ids, held) if not h], len(vocab)),
                                targets[~held], start, cfg.static_ridge)
        check = static_vectors(fit.vectors, [t for t, h in zip(sample_ids, held) if h])
        cosine = float(np.mean(np.sum(check * targets[held], axis=1))) if held.any() else float("nan")
        log.info("static model: %d token vectors fitted on %d texts (%d CG iterations); held-out cosine to %s %.3f",
                 fit.fitted_tokens, int((~held).sum()), fit.iterations, cfg.model, cosine)
        return StaticModelResult(token_vectors=fit.vectors, model=cfg.model, fit_texts=int((~held).sum()),
                                 held_out=int(held.sum()), heldout_cosine=cosine, fitted_tokens=fit.fitted_tokens,
                                 iterations=fit.iterations, backend=cfg.backend,
                                 cosine_to_torch=cosine_summary(agreement.value) if agreement is not None else None)


def pool_texts(ctx: Context, pool: ReadResult, cfg) -> DataFrame:
    """DataFrame[text]: the distinct texts of the embedded side(s) of the pool's kept pairs."""
    kept = pool.kept(ctx.spark)
    texts = None
    for col in SentenceEmbedder(cfg).columns():
        part = kept.select(F.col(col).alias("text"))
        texts = part if texts is None else texts.unionByName(part)
    return texts.distinct()


def sampled_texts(texts: DataFrame, n: int, upper: int) -> list[str]:
    """Up to ``n`` of ``texts`` (at most ``upper`` of them): those with the smallest xxhash64
    (ties by text), in that order."""
    share = min(1.0, 2.0 * n / max(upper, 1))
    hashed = texts.withColumn("h", F.xxhash64("text"))
    if share < 1.0:  # a hash range about twice the sample, so that the sort sees few rows
        picked = [r["text"] for r in hashed.filter(F.col("h") < F.lit(int(-(2 ** 63) + share * 2 ** 64)))
                  .orderBy("h", "text").limit(n).collect()]
        if len(picked) == n:
            return picked
    return [r["text"] for r in hashed.orderBy("h", "text").limit(n).collect()]  # fewer distinct texts than rows


def used_tokens(texts: DataFrame, cfg) -> np.ndarray:
    """The sorted token ids that occur in ``texts`` (one tokenizing pass in executor tasks)."""
    model, max_len = cfg.model, cfg.max_seq_length

    def body(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        tok = static_tokenizer(model, max_len)
        seen: set[int] = set()
        for batch in batches:
            for ids in token_ids(tok, batch["text"].tolist()):
                seen.update(ids)
        yield pd.DataFrame({"token": np.fromiter(seen, dtype=np.int64, count=len(seen))})

    return np.sort(np.array([r["token"] for r in texts.mapInPandas(body, "token long").distinct().collect()],
                            dtype=np.int64))
