"""Guard stage: every pool pair scored against the target before selection: the distance to
the nearest target centroid (``target_distance``, by which the last cluster of a budget is
cut), the cosine to the most similar target vector, and whether the pair duplicates a target
pair. One map-only pass over the pool's vectors (a GEMM per batch against the broadcast target
vectors and centroids) and one over its texts (word hashes against the target's), then a join of
the two narrow results with the clusters: no vector is shuffled. Duplicates are kept out of the
selection unless the guard is off (``selection.keep_target_duplicates``):

- ``exact_duplicate``: either side equal to that side of a target pair, ignoring case and white space;
- ``one_word_edit``: either side one word replaced, added or dropped from a target text of at
  least 6 words (duplicates.py);
- ``near_embedding``: the embedded side within ``selection.duplicate_cosine`` of a target vector.

With ``selection.method: density_ratio`` the same pass scores every pair with the density ratio
model (stages/ratio.py): ``density_ratio`` (the score selection ranks by), ``ratio_logit`` (the
classifier's) and ``ratio_knn`` (GIO's k-NN log ratio), and counts the usable pairs and tokens per
bin of the score, as it counts them per cluster.

The stage is per target: the pool's read, embed and quantize stages before it stay the same for
any target, so one pool can serve many (``--stages-dir``).
"""
from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, field
from typing import Iterator, Mapping, Optional, Sequence

import numpy as np
import pandas as pd
from pyspark.sql import functions as F

from ...density_ratio import BINS, ratio_bin
from ..config import target_name
from ..duplicates import EXACT, NEAR, ONE_WORD, TargetTexts
from ..stage import Context, Progress, Resources, Result, Stage, Table
from ..tally import Tally, tally

log = logging.getLogger(__name__)

EXAMPLES = 5  # excluded pairs shown in the manifest
SENTENCE_COSINE = 0.95  # near_embedding for the job's own embeddings (README: how it was chosen)
REASONS = (EXACT, ONE_WORD, NEAR)
TOKEN_SIDES = ("both", "src", "tgt")
NO_PAIR = np.iinfo(np.int64).max  # the fewest tokens of a cluster without a usable pair


@dataclass
class GuardResult(Result):
    sizes: np.ndarray  # [K] usable pairs per pool cluster, duplicates excluded
    tokens_src: np.ndarray  # [K] their white-space tokens, per side
    tokens_tgt: np.ndarray
    duplicates: dict = field(default_factory=dict)  # reason -> pool pairs that duplicate target pairs
    examples: list = field(default_factory=list)  # a few of them, with their reason
    active: bool = True  # duplicates are kept out of the selection
    duplicate_cosine: Optional[float] = None  # the near_embedding threshold; None: not applied
    scores: Optional[Table] = None  # [pair_id, cluster, target_distance, max_cosine, (ratio), tokens_*, duplicate]
    # [K] the fewest tokens of a usable pair in each cluster, by token sides (both, src, tgt); a
    # cluster without one holds NO_PAIR
    least_tokens: np.ndarray = field(default_factory=lambda: np.zeros((3, 0), np.int64))
    bin_sizes: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # [BINS] usable pairs per ratio bin
    bin_tokens_src: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # (empty without the ratio)
    bin_tokens_tgt: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    def tokens(self, sides: str) -> np.ndarray:
        return {"src": self.tokens_src, "tgt": self.tokens_tgt}.get(sides, self.tokens_src + self.tokens_tgt)

    def fewest_tokens(self, sides: str) -> np.ndarray:
        """[K] the fewest tokens (on ``sides``) of a usable pair in each cluster (NO_PAIR: none)."""
        return self.least_tokens[TOKEN_SIDES.index(sides)]

    def bin_tokens(self, sides: str) -> np.ndarray:
        return {"src": self.bin_tokens_src, "tgt": self.bin_tokens_tgt}.get(sides, self.bin_tokens_src + self.bin_tokens_tgt)

    @property
    def excluded(self) -> int:
        """Pool pairs kept out of the selection."""
        return int(sum(self.duplicates.values())) if self.active else 0

    def stats(self) -> dict:
        return {"active": self.active, "duplicate_cosine": self.duplicate_cosine, "duplicates": dict(self.duplicates),
                "excluded": self.excluded, "examples": self.examples}


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def union(frames: list):
    """One DataFrame of several with the same columns (read in one job)."""
    return functools.reduce(lambda a, b: a.unionByName(b), frames)


def score_columns(side: str) -> tuple[str, str]:
    """The scores' columns of one target: (target_distance, max_cosine), suffixed with the
    target's name when the targets are named."""
    name = target_name(side)
    return ("target_distance", "max_cosine") if name is None else (f"target_distance_{name}", f"max_cosine_{name}")


RATIO_COLUMNS = ("density_ratio", "ratio_logit", "ratio_knn")


@dataclass
class VectorScorer:
    """mapInPandas body over the pool's vectors: for each target, the distance to its nearest
    centroid and the cosine to its most similar vector; with a density ratio model, its scores
    and bin."""

    targets: object  # broadcast [(unit target vectors [n, d], target centroids [K_t, d])], one per target
    ratio: object = None  # broadcast DensityRatioModel, or None

    def __call__(self, batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        targets = [(vectors, centroids.astype(np.float64)) for vectors, centroids in self.targets.value]
        norms = [(c * c).sum(axis=1) for _, c in targets]
        for pdf in batches:
            if pdf.empty:
                continue
            x = np.stack(pdf["embedding"].to_numpy()).astype(np.float64)
            unit, x_sq = _unit(x), (x * x).sum(axis=1)[:, None]
            out = {"pair_id": pdf["pair_id"].to_numpy()}
            for i, ((vectors, c), c_sq) in enumerate(zip(targets, norms)):
                d2 = c_sq[None, :] - 2.0 * (x @ c.T) + x_sq
                out[f"d{i}"] = np.sqrt(np.maximum(d2.min(axis=1), 0.0))
                out[f"c{i}"] = (unit @ vectors.T).max(axis=1)
            if self.ratio is not None:
                scores = self.ratio.value.score(x)
                out.update(zip(RATIO_COLUMNS, scores))
                out["ratio_bin"] = ratio_bin(scores[0])
            yield pd.DataFrame(out)


@dataclass
class TextScorer:
    """mapInPandas body over the pool's texts: which duplicate a target text (either side)."""

    target: object  # broadcast (TargetTexts of the src side, of the tgt side)

    def __call__(self, batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        src_texts, tgt_texts = self.target.value
        for pdf in batches:
            found = [src_texts.match(s) or tgt_texts.match(t) for s, t in zip(pdf["src"], pdf["tgt"])]
            yield pd.DataFrame({"pair_id": pdf["pair_id"].to_numpy(), "text_duplicate": pd.Series(found, dtype=object),
                                "tokens_src": pdf["_tokens_src"].to_numpy().astype(np.int32),
                                "tokens_tgt": pdf["_tokens_tgt"].to_numpy().astype(np.int32)})


class GuardStage(Stage[GuardResult]):
    name = "guard"
    resources = Resources("executors")
    result = GuardResult

    def __init__(self, embedded: bool, targets: Sequence[str] = ("target",), ratio: bool = False) -> None:
        """``embedded``: the inputs carry their own vectors (no embed stages); ``targets``: the
        target sides, each scored and each guarded against; ``ratio``: score by the density ratio
        model too (one target)."""
        vec = "pairs" if embedded else "embed"
        self.embedded, self.targets, self.ratio = embedded, list(targets), ratio
        self.reads = ("pairs_train", *[f"pairs_{t}" for t in targets], f"{vec}_train",
                      *[f"{vec}_{t}" for t in targets], "quantize_train", *[f"quantize_{t}" for t in targets],
                      *(["density_ratio"] if ratio else []))
        self.vectors = {side: f"{vec}_{side}" for side in ("train", *targets)}

    def threshold(self, cfg) -> Optional[float]:
        """The near_embedding cosine: as configured, else SENTENCE_COSINE for the job's own
        embeddings and none for precomputed vectors."""
        given = cfg.selection.duplicate_cosine
        return given if given is not None else (None if self.embedded else SENTENCE_COSINE)

    def config(self, cfg):
        return cfg.selection.keep_target_duplicates, self.threshold(cfg)

    def progress(self, cfg, inputs: Mapping[str, Result]) -> Progress:
        return Progress("guard", total_rows=inputs["pairs_train"].rows_kept, outputs_per_row=1)

    def run(self, ctx: Context, inputs: Mapping[str, Result]) -> GuardResult:
        spark, cfg, threshold = ctx.spark, ctx.cfg.selection, self.threshold(ctx.cfg)
        pool_pairs = inputs["pairs_train"].kept(spark)
        vectors = union([inputs[self.vectors[side]].vectors()[0].read(spark).select(F.lit(i).alias("t"), "embedding")
                         for i, side in enumerate(self.targets)]).collect()  # every target's, in one job
        near = spark.sparkContext.broadcast([  # each target's vectors and centroids go to every task
            (_unit(np.asarray([r[1] for r in vectors if r[0] == i], dtype=np.float64)),
             inputs[f"quantize_{side}"].centroids) for i, side in enumerate(self.targets)])
        columns = [score_columns(side) for side in self.targets]
        scored = ", ".join(f"d{i} double, c{i} double" for i in range(len(columns)))
        ratio = spark.sparkContext.broadcast(inputs["density_ratio"].model()) if self.ratio else None
        ratios = [*RATIO_COLUMNS, "ratio_bin"] if self.ratio else []
        if ratios:
            scored += ", " + ", ".join(f"{c} double" for c in RATIO_COLUMNS) + ", ratio_bin int"
        scores = (inputs[self.vectors["train"]].vectors()[0].read(spark).select("pair_id", "embedding")
                  .mapInPandas(VectorScorer(near, ratio), f"pair_id long, {scored}")
                  .select("pair_id", *[F.col(f"{k}{i}").alias(name) for i, names in enumerate(columns)
                                       for k, name in zip("dc", names)], *ratios)
                  .join(inputs["quantize_train"].assignments.read(spark).select("pair_id", "cluster"), "pair_id"))
        texts = None
        if "src" in pool_pairs.columns:
            known = (TargetTexts(), TargetTexts())  # every target's texts: a copy of any is kept out
            for row in union([inputs[f"pairs_{side}"].kept(spark).select("src", "tgt") for side in self.targets]) \
                    .collect():
                known[0].add(row["src"])
                known[1].add(row["tgt"])
            texts = spark.sparkContext.broadcast(known)
            rows = inputs["pairs_train"].pairs.read(spark).filter(F.col("_skip").isNull()) \
                .select("pair_id", "src", "tgt", "_tokens_src", "_tokens_tgt")
            scores = scores.join(rows.mapInPandas(TextScorer(texts), "pair_id long, text_duplicate string, "
                                                                     "tokens_src int, tokens_tgt int"), "pair_id")
        else:
            scores = scores.select("*", F.lit(None).cast("string").alias("text_duplicate"),
                                   F.lit(0).alias("tokens_src"), F.lit(0).alias("tokens_tgt"))
        cosines = [F.col(cos) for _, cos in columns]
        nearest = cosines[0] if len(cosines) == 1 else F.greatest(*cosines)
        duplicate = F.col("text_duplicate")
        if threshold is not None:
            duplicate = F.coalesce(duplicate, F.when(nearest >= threshold, F.lit(NEAR)))
        per_target = [name for names in columns for name in names]
        extra = [] if "max_cosine" in per_target else [nearest.alias("max_cosine")]  # over every target
        scores = scores.select("pair_id", F.col("cluster").cast("int").alias("cluster"), *per_target, *extra, *ratios,
                               "tokens_src", "tokens_tgt", duplicate.alias("duplicate"))
        active = not cfg.keep_target_duplicates
        counts = tally(spark, keep=EXAMPLES)
        k = len(inputs["quantize_train"].centroids)
        table = ctx.write_table(scores.mapInPandas(ScoreTally(counts, k, active, self.ratio), scores.schema), "scores")
        for shared in (near, texts, ratio):
            if shared is not None:
                shared.unpersist()
        return self._summarize(counts.value, pool_pairs, k, active, threshold, table, self.ratio)

    @staticmethod
    def _summarize(counts: Tally, pool_pairs, k: int, active: bool, threshold: Optional[float],
                   table: Table, ratio: bool) -> GuardResult:
        """Sizes and tokens per cluster (and ratio bin) without the duplicates (with them when the
        guard is off), counts and examples of the duplicates found, as the scores' write tallied them."""
        zeros = np.zeros(k, np.int64)
        sizes, src, tgt = (counts.get(name, zeros).astype(np.int64) for name in ("sizes", "tokens_src", "tokens_tgt"))
        least = counts.get("least_tokens", np.full((len(TOKEN_SIDES), k), NO_PAIR, np.int64)).astype(np.int64)
        bins = np.zeros(BINS if ratio else 0, np.int64)
        bin_sizes, bin_src, bin_tgt = (counts.get(f"bin_{name}", bins).astype(np.int64)
                                       for name in ("sizes", "tokens_src", "tokens_tgt"))
        found = {reason: int(n) for reason, n in zip(REASONS, counts.get("duplicates", np.zeros(len(REASONS)))) if n}
        examples = [{"pair_id": int(pid), "reason": reason, "max_cosine": round(float(cos), 4)}
                    for pid, reason, cos in counts.rows]
        if examples and "src" in pool_pairs.columns:  # their texts: one small job
            ids = [e["pair_id"] for e in examples]
            text = {int(r["pair_id"]): (r["src"], r["tgt"]) for r in
                    pool_pairs.filter(F.col("pair_id").isin(ids)).select("pair_id", "src", "tgt").collect()}
            examples = [{**e, **({"src": text[e["pair_id"]][0], "tgt": text[e["pair_id"]][1]}
                                 if e["pair_id"] in text else {})} for e in examples]
        if found:
            what = "kept out of the selection" if active else "left in it: the guard is off (keep_target_duplicates)"
            log.info("guard: %d pool pairs duplicate target pairs, %s (%s)", sum(found.values()), what,
                     ", ".join(f"{v} {k}" for k, v in sorted(found.items())))
        pool, marked = int(sizes.sum()) + (sum(found.values()) if active else 0), sum(found.values())
        if marked > pool // 2:
            log.warning("guard: %d of %d pool pairs duplicate target pairs%s; is the target taken from the pool? "
                        "(selection.keep_target_duplicates leaves them in%s)", marked, pool,
                        f", {found.get(NEAR, 0)} of them by cosine >= {threshold}" if found.get(NEAR) else "",
                        ", selection.duplicate_cosine sets the cosine" if found.get(NEAR) else "")
        return GuardResult(sizes=sizes, tokens_src=src, tokens_tgt=tgt, duplicates=found, examples=examples,
                           active=active, duplicate_cosine=threshold, scores=table, least_tokens=least,
                           bin_sizes=bin_sizes, bin_tokens_src=bin_src, bin_tokens_tgt=bin_tgt)


@dataclass
class ScoreTally:
    """mapInPandas body that passes the scores through while it counts, per cluster (and per
    ratio bin), the usable pairs and their tokens (duplicates left out when the guard is active),
    the duplicates by reason, and the first few duplicates by pair id."""

    counts: object  # a Tally accumulator
    k: int
    active: bool
    ratio: bool = False  # the scores have a ratio_bin column

    def __call__(self, batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        mine = Tally(keep=EXAMPLES)
        for pdf in batches:
            dup = pdf["duplicate"]
            usable = dup.isna().to_numpy() if self.active else np.ones(len(pdf), bool)
            least = np.full((len(TOKEN_SIDES), self.k), NO_PAIR, np.int64)
            cluster = pdf["cluster"].to_numpy()[usable]
            src, tgt = pdf["tokens_src"].to_numpy()[usable], pdf["tokens_tgt"].to_numpy()[usable]
            for row, tokens in zip(least, (src + tgt, src, tgt)):
                np.minimum.at(row, cluster, tokens.astype(np.int64))
            mine.least("least_tokens", least)
            units = [("", "cluster", self.k)] + ([("bin_", "ratio_bin", BINS)] if self.ratio else [])
            for prefix, column, size in units:
                unit = pdf[column].to_numpy()[usable]
                mine.add(f"{prefix}sizes", np.bincount(unit, minlength=size))
                for side, tokens in (("src", src), ("tgt", tgt)):
                    mine.add(f"{prefix}tokens_{side}", np.bincount(unit, tokens, minlength=size).astype(np.int64))
            mine.add("duplicates", np.array([(dup == reason).sum() for reason in REASONS], np.int64))
            marked = pdf[dup.notna()]
            mine.note(zip(marked["pair_id"].astype(int), marked["duplicate"], marked["max_cosine"].astype(float)))
            yield pdf
        self.counts.add(mine)
