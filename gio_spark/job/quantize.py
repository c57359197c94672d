"""Quantization: k-means centroids of each side; only centroids and cluster sizes reach the driver.

What runs (see README, "Quantization"):
1. fit sample: every row when the side has at most ``sample_per_centroid * k`` rows, else a
   uniform sample of about that many, chosen by a hash of (pair_id, seed), so the same rows on
   any cluster;
2. start: on the driver, over at most ``driver_rows_per_centroid * k`` rows of the fit sample in
   pair-id order, scikit-learn's k-means++ seeds and then up to ``driver_max_iter`` of its Lloyd
   iterations (``init_mode="sample-k-means"``), or the seeds alone (``"k-means++"``);
3. Lloyd: iterations over the fit sample from that start, its input split into a number of
   partitions that depends on the data alone, rows in pair-id order: in the executors (each task
   sums its rows by nearest centroid, a float64 GEMM per Arrow batch; the driver adds the tasks'
   sums in partition order), or by Spark MLlib's k-means (``lloyd="mllib"``, ``initialModel``);
4. assignment: every row to its nearest centroid in one distributed pass, a float64 GEMM per
   Arrow batch, with its squared distance; sizes and inertia come from that pass.

``init_mode="k-means||"`` skips step 2 and lets MLlib seed with k-means|| and iterate.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Optional

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from ..errors import UserError
from .config import QuantizeConfig
from .tally import Tally, tally

log = logging.getLogger(__name__)

# below this many rows per cluster, duplicates could leave fewer distinct points than k
DISTINCT_CHECK_FACTOR = 100
# rows per partition of MLlib's input: the count depends on the data, never on the cluster
FIT_ROWS_PER_PARTITION = 20_000
HASH_RANGE = 1 << 31


@dataclass
class Quantized:
    """One side's quantization: what reaches the driver."""

    centroids: np.ndarray  # [K, d] float32
    sizes: np.ndarray  # [K] rows per cluster
    stats: dict = field(default_factory=dict)  # k, fit rows, inertia, size percentiles, singletons
    assignments: Any = None  # what write_assignments returned


def effective_k(requested: int, rows: int, name: str) -> int:
    if rows < requested:
        log.warning("%s: %d rows, fewer than k=%d clusters; using k=%d", name, rows, requested, rows)
        return rows
    return requested


def _distinct_k(embeddings: DataFrame, k: int, rows: int, name: str, sample: Optional[np.ndarray]) -> int:
    """k, lowered to the number of distinct vectors when there are fewer (small inputs only):
    counted in ``sample`` when it holds every row, else by Spark."""
    if rows > DISTINCT_CHECK_FACTOR * k:
        return k
    if sample is not None and len(sample) == rows:
        distinct = len(np.unique(sample, axis=0))
    else:
        distinct = embeddings.select("embedding").distinct().count()
    if distinct < 2:
        raise UserError(
            f"{name}: all {rows} rows have the same embedding (one repeated sentence?); "
            f"quantization needs at least 2 distinct pairs"
        )
    if distinct < k:
        log.warning("%s: only %d distinct vectors; using k=%d", name, distinct, distinct)
    return min(k, distinct)


def hashed_subset(df: DataFrame, rows: int, wanted: int, seed: int) -> DataFrame:
    """About ``wanted`` of ``rows`` rows, chosen by a hash of (pair_id, seed): the same rows
    whatever the partitioning."""
    if wanted >= rows:
        return df
    threshold = int(HASH_RANGE * wanted / rows)
    bucket = F.abs(F.xxhash64("pair_id", F.lit(seed))) % F.lit(HASH_RANGE)
    return df.where(bucket < F.lit(threshold))


def in_fixed_order(df: DataFrame, rows: int) -> DataFrame:
    """``df`` hash-partitioned by pair_id into a count of partitions set by ``rows`` alone,
    each sorted by pair_id: the same partitions and order on any cluster."""
    parts = max(1, math.ceil(rows / FIT_ROWS_PER_PARTITION))
    return df.repartition(parts, "pair_id").sortWithinPartitions("pair_id")


def vectors_of(pdf: pd.DataFrame) -> np.ndarray:
    """The ``embedding`` column of an Arrow batch as a float64 matrix."""
    return np.stack(pdf["embedding"].to_numpy()).astype(np.float64)


def collected(sample: DataFrame) -> np.ndarray:
    """The sample's vectors on the driver, in pair-id order (one Spark job; sorted here)."""
    pdf = sample.select("pair_id", "embedding").toPandas().sort_values("pair_id", kind="stable")
    if pdf.empty:
        return np.zeros((0, 0))
    return vectors_of(pdf)


def driver_start(x: np.ndarray, k: int, cfg: QuantizeConfig, seed: int) -> np.ndarray:
    """MLlib's start, from a sample small enough for the driver (rows in pair-id order): k-means++
    seeds, then for ``sample-k-means`` up to ``driver_max_iter`` Lloyd iterations (scikit-learn)."""
    from sklearn.cluster import KMeans, kmeans_plusplus
    from threadpoolctl import threadpool_limits

    centers, _ = kmeans_plusplus(x, n_clusters=k, random_state=seed)
    if cfg.init_mode == "sample-k-means":
        # one OpenMP thread: scikit-learn's per-thread partial sums would make the last bits
        # depend on the driver's core count
        with threadpool_limits(limits=1, user_api="openmp"):
            km = KMeans(n_clusters=k, init=centers, n_init=1, max_iter=cfg.driver_max_iter, random_state=seed)
            centers = km.fit(x).cluster_centers_
    return centers


def mllib_lloyd(fit: DataFrame, k: int, cfg: QuantizeConfig, seed: int, seeds: np.ndarray | None) -> np.ndarray:
    """Spark MLlib k-means over ``fit`` (from ``seeds`` when given, else MLlib's own init)."""
    from pyspark.mllib.clustering import KMeans, KMeansModel
    from pyspark.mllib.linalg import Vectors

    rdd = fit.select("embedding").rdd.map(lambda row: Vectors.dense(row[0]))
    initial = KMeansModel([Vectors.dense(c) for c in seeds]) if seeds is not None else None
    model = KMeans.train(
        rdd, k, maxIterations=cfg.max_iter, initializationMode="k-means||", seed=seed,
        initializationSteps=cfg.init_steps, epsilon=cfg.tol, initialModel=initial,
    )
    return np.asarray(model.clusterCenters, dtype=np.float32)


def shared_centroids(spark, centroids: np.ndarray):
    """A broadcast of (centroids, their squared norms) in float64, as ``nearest_centroid`` takes them."""
    c = np.asarray(centroids, dtype=np.float64)
    return spark.sparkContext.broadcast((c, (c * c).sum(axis=1)))


def cluster_sums(x: np.ndarray, centroids: np.ndarray, norms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per cluster, the float64 sum of the rows of ``x`` nearest to it (rows added in their
    order) and their count."""
    best, _ = nearest_centroid(x, centroids, norms)
    k = len(centroids)
    order = np.argsort(best, kind="stable")
    counts = np.bincount(best, minlength=k)
    sums = np.zeros((k, x.shape[1]))
    used = np.flatnonzero(counts)
    sums[used] = np.add.reduceat(x[order], np.concatenate([[0], np.cumsum(counts[used])[:-1]]), axis=0)
    return sums, counts


def lloyd_step(partials: list[tuple[np.ndarray, np.ndarray]], centroids: np.ndarray) -> tuple[np.ndarray, float]:
    """The next centroids from the tasks' (sums, counts), added in the order given, and the
    largest squared move: each centroid to its rows' mean, an empty cluster's kept (as MLlib's)."""
    sums = np.zeros_like(centroids)
    counts = np.zeros(len(centroids), np.int64)
    for s, c in partials:
        sums += s
        counts += c
    moved = np.where(counts[:, None] > 0, sums / np.maximum(counts, 1)[:, None], centroids)
    return moved, float(((moved - centroids) ** 2).sum(axis=1).max())


def executor_lloyd(fit: DataFrame, cfg: QuantizeConfig, seeds: np.ndarray,
                   on_iteration: Optional[Callable[[int], None]] = None) -> np.ndarray:
    """Lloyd iterations over ``fit`` (in fixed order) from ``seeds``, one Spark job each: every
    task returns its partition's cluster sums (``cluster_sums``), the driver adds them in
    partition order, so the centroids are the same on any cluster. Up to ``cfg.max_iter``
    iterations, stopping when no centroid moved more than ``cfg.tol`` (MLlib's rule)."""
    from pyspark import StorageLevel
    from pyspark.taskcontext import TaskContext

    spark = fit.sparkSession
    vectors = fit.select("embedding").persist(StorageLevel.MEMORY_AND_DISK)
    centroids = np.asarray(seeds, dtype=np.float64)
    k, d = centroids.shape
    try:
        for i in range(cfg.max_iter):
            shared = shared_centroids(spark, centroids)

            def partial(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
                cents, norms = shared.value
                sums, counts = np.zeros((len(cents), cents.shape[1])), np.zeros(len(cents), np.int64)
                for pdf in batches:
                    if len(pdf):
                        s, c = cluster_sums(vectors_of(pdf), cents, norms)
                        sums += s
                        counts += c
                yield pd.DataFrame({"part": [TaskContext.get().partitionId()], "sums": [sums.tobytes()],
                                    "counts": [counts.tobytes()]})

            got = vectors.mapInPandas(partial, "part int, sums binary, counts binary").toPandas().sort_values("part")
            shared.unpersist()
            partials = [(np.frombuffer(s, np.float64).reshape(k, d), np.frombuffer(c, np.int64))
                         for s, c in zip(got["sums"], got["counts"])]
            centroids, moved = lloyd_step(partials, centroids)
            if on_iteration is not None:
                on_iteration(i + 1)
            if moved <= cfg.tol * cfg.tol:
                break
    finally:
        vectors.unpersist()
    return centroids.astype(np.float32)


def nearest_centroid(x: np.ndarray, centroids: np.ndarray, norms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each row's nearest centroid (ties to the lower id) and its squared distance, in float64."""
    dist = norms[None, :] - 2.0 * (x @ centroids.T)
    best = dist.argmin(axis=1)
    sq = dist[np.arange(len(best)), best] + (x * x).sum(axis=1)
    return best, np.maximum(sq, 0.0)


def assign(embeddings: DataFrame, centroids: np.ndarray, counts) -> DataFrame:
    """DataFrame[pair_id, cluster int, sqdist double]: each row's nearest centroid, by a float64
    GEMM per Arrow batch. ``counts`` (a Tally accumulator) gets the rows per cluster
    (``sizes``) and their squared distances (``inertia``) as the rows pass: write the result
    (after no shuffle) and they are exact."""
    shared = shared_centroids(embeddings.sparkSession, centroids)
    k = len(centroids)

    def nearest(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        cents, norms = shared.value
        mine = Tally()
        for pdf in batches:
            if pdf.empty:
                continue
            best, sq = nearest_centroid(vectors_of(pdf), cents, norms)
            mine.add("sizes", np.bincount(best, minlength=k))
            mine.add("inertia", np.array([sq.sum()]))
            yield pd.DataFrame({"pair_id": pdf["pair_id"].to_numpy(), "cluster": best.astype(np.int32), "sqdist": sq})
        counts.add(mine)

    return embeddings.select("pair_id", "embedding").mapInPandas(nearest, "pair_id long, cluster int, sqdist double")


def size_stats(sizes: np.ndarray, inertia: float) -> dict:
    rows = int(sizes.sum())
    used = sizes[sizes > 0]
    top = np.sort(sizes)[::-1][: max(1, len(sizes) // 10)]
    return {
        "inertia": float(inertia),
        "mean_sqdist": float(inertia / rows) if rows else 0.0,
        "size_percentiles": {f"p{p}": float(np.percentile(used, p)) for p in (0, 10, 50, 90, 99, 100)} if len(used) else {},
        "singletons": int((sizes == 1).sum()),
        "empty": int((sizes == 0).sum()),
        "top10pct_share": float(top.sum() / rows) if rows else 0.0,
    }


def fit_centroids(embeddings: DataFrame, cfg: QuantizeConfig, rows: int, name: str, seed: int,
                  on_iteration: Optional[Callable[[int], None]] = None) -> tuple[np.ndarray, dict]:
    """Steps 1-3: k-means centroids [k, d] of a side, and how they were fitted; ``on_iteration``
    is told each Lloyd iteration the executors finish."""
    k = effective_k(cfg.k, rows, name)
    fit_rows = min(rows, cfg.sample_per_centroid * k)
    subset = hashed_subset(embeddings, rows, fit_rows, seed)
    seeds, driver_rows, sample = None, 0, None
    if cfg.init_mode != "k-means||":  # a subset of the fit sample, by a second hash
        driver_rows = min(fit_rows, cfg.driver_rows_per_centroid * k)
        sample = collected(hashed_subset(subset, fit_rows, driver_rows, seed + 1))
    k = _distinct_k(embeddings, k, rows, name, sample)
    if sample is not None:
        seeds = driver_start(sample, k, cfg, seed)
        log.info("%s: %s start on the driver from %d rows", name, cfg.init_mode, len(sample))
    engine = "mllib" if seeds is None else cfg.lloyd
    log.info("%s: Lloyd (%s), k=%d, on about %d of %d rows (at most %d per centroid), up to %d iterations",
             name, "in the executors" if engine == "executors" else "MLlib", k, fit_rows, rows,
             cfg.sample_per_centroid, cfg.max_iter)
    ordered = in_fixed_order(subset, fit_rows)
    if engine == "executors":
        centroids = executor_lloyd(ordered, cfg, seeds, on_iteration)
    else:
        centroids = mllib_lloyd(ordered, k, cfg, seed, seeds)
    return centroids, {"k": k, "k_requested": cfg.k, "fit_rows_target": fit_rows, "driver_rows_target": driver_rows,
                       "init_mode": cfg.init_mode, "lloyd": engine}


def quantize(embeddings: DataFrame, cfg: QuantizeConfig, rows: int, name: str, seed_offset: int,
             write_assignments, on_iteration: Optional[Callable[[int], None]] = None) -> Quantized:
    """One side: centroids, then every row assigned in one pass (given to ``write_assignments``,
    which writes it as [pair_id, cluster, sqdist] and returns the table, when not None; else the
    pass only counts), sizes and quality figures; ``on_iteration`` as in ``fit_centroids``."""
    counts = tally(embeddings.sparkSession)
    if cfg.enabled:
        centroids, info = fit_centroids(embeddings, cfg, rows, name, cfg.seed + seed_offset, on_iteration)
        assignments = assign(embeddings, centroids, counts)
    else:
        centroids, assignments = rows_as_clusters(embeddings, rows, cfg.max_direct_rows, name)
        info = {"k": len(centroids), "k_requested": 0, "init_mode": None, "lloyd": None}
    table = None
    if write_assignments is not None:
        table = write_assignments(assignments)
    else:
        assignments.write.format("noop").mode("overwrite").save()
    if cfg.enabled:
        sizes = counts.value.get("sizes", np.zeros(len(centroids), np.int64)).astype(np.int64)
        inertia = float(counts.value.get("inertia", np.zeros(1))[0])
    else:  # every row its own cluster
        sizes, inertia = np.ones(len(centroids), np.int64), 0.0
    stats = size_stats(sizes, inertia)
    if int(sizes.sum()) != rows:
        raise RuntimeError(f"{name}: assigned {int(sizes.sum())} rows to clusters, expected {rows}")
    log.info("%s: %d rows in %d clusters (inertia %.1f, largest %d, singletons %d, empty %d)", name, rows,
             len(centroids), stats["inertia"], sizes.max(), stats["singletons"], stats["empty"])
    return Quantized(centroids=centroids, sizes=sizes, stats={**info, **stats}, assignments=table)


def check_direct_rows(rows: int, limit: int, name: str) -> None:
    """Selection on rows without quantization collects them to the driver: at most ``limit``."""
    if rows > limit:
        raise UserError(
            f"{name}: selecting on rows directly collects them to the driver; {rows} rows is over "
            f"quantize.max_direct_rows={limit}. Enable quantization or raise the limit"
        )


def rows_as_clusters(embeddings: DataFrame, rows: int, limit: int, name: str) -> tuple[np.ndarray, DataFrame]:
    """No quantization: every row is its own cluster (for small pools; rows go to the driver)."""
    check_direct_rows(rows, limit, name)
    pdf = embeddings.select("pair_id", "embedding").toPandas().sort_values("pair_id", kind="stable")
    vecs = np.stack(pdf["embedding"].to_numpy()).astype(np.float32)
    assignments = embeddings.sparkSession.createDataFrame(pd.DataFrame({
        "pair_id": pdf["pair_id"].to_numpy(), "cluster": np.arange(len(vecs), dtype=np.int32),
        "sqdist": np.zeros(len(vecs))}))
    return vecs, assignments
