"""Quantization with Spark MLlib k-means: only the centroids and cluster sizes reach the driver."""
from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from pyspark.ml.clustering import KMeans
from pyspark.ml.functions import array_to_vector
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from .config import QuantizeConfig

log = logging.getLogger(__name__)


# below this many rows per cluster, duplicates could leave fewer distinct points than k
DISTINCT_CHECK_FACTOR = 100


@dataclass
class Quantized:
    centroids: np.ndarray  # [K, d] float32
    sizes: np.ndarray  # [K] rows per cluster
    assignments: DataFrame  # [pair_id, cluster]
    k_requested: int
    iterations: int = 0  # k-means iterations run (0 without k-means)


def effective_k(requested: int, rows: int, name: str) -> int:
    if rows < requested:
        log.warning("%s: %d rows, fewer than k=%d clusters; using k=%d", name, rows, requested, rows)
        return rows
    return requested


def kmeans(embeddings: DataFrame, cfg: QuantizeConfig, rows: int, name: str, seed_offset: int = 0) -> Quantized:
    """Cluster DataFrame[pair_id, embedding] into at most cfg.k clusters (fewer when there are
    fewer distinct vectors: MLlib cannot place more centres than distinct points)."""
    k = effective_k(cfg.k, rows, name)
    if rows <= DISTINCT_CHECK_FACTOR * k:
        distinct = embeddings.select("embedding").distinct().count()
        if distinct < k:
            log.warning("%s: only %d distinct vectors; using k=%d", name, distinct, distinct)
            k = distinct
    features = embeddings.select("pair_id", array_to_vector("embedding").alias("features"))
    model = KMeans(
        k=k, seed=cfg.seed + seed_offset, maxIter=cfg.max_iter, initSteps=cfg.init_steps, initMode=cfg.init_mode,
        featuresCol="features", predictionCol="cluster",
    ).fit(features)
    centroids = np.asarray(model.clusterCenters(), dtype=np.float32)
    assignments = model.transform(features).select("pair_id", F.col("cluster").cast("int").alias("cluster"))
    sizes = np.zeros(len(centroids), dtype=np.int64)
    for row in assignments.groupBy("cluster").count().collect():
        sizes[row["cluster"]] = row["count"]
    iterations = int(model.summary.numIter) if model.hasSummary else 0
    log.info("%s: %d rows in %d clusters (largest %d, empty %d) after %d of at most %d k-means iterations", name,
             rows, len(centroids), sizes.max(), int((sizes == 0).sum()), iterations, cfg.max_iter)
    return Quantized(centroids=centroids, sizes=sizes, assignments=assignments, k_requested=cfg.k,
                     iterations=iterations)


def rows_as_clusters(embeddings: DataFrame, rows: int, limit: int, name: str, spark) -> Quantized:
    """No quantization: every row is its own cluster (for small pools; rows go to the driver)."""
    from ..errors import UserError

    if rows > limit:
        raise UserError(
            f"{name}: selecting on rows directly collects them to the driver; {rows} rows is over "
            f"quantize.max_direct_rows={limit}. Enable quantization or raise the limit"
        )
    data = embeddings.select("pair_id", "embedding").orderBy("pair_id").collect()
    ids = [r["pair_id"] for r in data]
    vecs = np.asarray([r["embedding"] for r in data], dtype=np.float32)
    assignments = spark.createDataFrame([(int(p), i) for i, p in enumerate(ids)], "pair_id long, cluster int")
    return Quantized(centroids=vecs, sizes=np.ones(len(ids), dtype=np.int64), assignments=assignments, k_requested=0)
