"""Quantize stage: one side's vectors to k-means centroids and cluster sizes (see quantize.py);
the pool's assignments of every pair to its cluster are kept, to map the chosen clusters back."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Optional

import numpy as np

import logging

from ..quantize import quantize
from ..stage import Context, Progress, Resources, Result, Stage, Table


log = logging.getLogger(__name__)

# Pool pairs per cluster below which single pairs start to be clusters of their own; about 20
# gave GIO its largest lead over DSIR at the same size on the shared multi-domain data (README,
# "Choosing k").
MIN_PAIRS_PER_CLUSTER = 10
GOOD_PAIRS_PER_CLUSTER = 20


def k_warning(rows: int, k: int, singletons: int) -> Optional[str]:
    """One line when k leaves the pool's clusters too small, with a k that suits the pool."""
    if k and rows / k < MIN_PAIRS_PER_CLUSTER:
        better = max(2, rows // GOOD_PAIRS_PER_CLUSTER)
        return (f"train: k={k} clusters for {rows:,} pool pairs is {rows / k:.1f} pairs per cluster ({singletons} "
                f"singletons); clusters that small make GIO stop early on a small selection: try quantize.k={better} "
                f"(about {GOOD_PAIRS_PER_CLUSTER} pairs per cluster), or a budget to set the size")
    return None


@dataclass
class QuantizeResult(Result):
    centroids: np.ndarray  # [K, d] float32
    sizes: np.ndarray  # [K] pairs per cluster
    stats: dict = field(default_factory=dict)  # rows, clusters, k-means figures
    assignments: Optional[Table] = None  # [pair_id, cluster, sqdist] (the pool only)


class QuantizeStage(Stage[QuantizeResult]):
    result = QuantizeResult
    resources = Resources("executors")

    def __init__(self, side: str, source: str) -> None:
        """``source``: the stage whose table holds the side's vectors (embed_<side>, or
        pairs_<side> for precomputed vectors)."""
        self.side = side
        self.name = f"quantize_{side}"
        self.reads = (source,)
        self.seed_offset = 0 if side == "train" else 1

    def config(self, cfg):
        return cfg.quantize, self.seed_offset

    def progress(self, cfg, inputs: Mapping[str, Result]) -> Progress:
        return Progress(f"quantize {self.side}", max_iter=cfg.quantize.max_iter if cfg.quantize.enabled else None)

    def run(self, ctx: Context, inputs: Mapping[str, Result]) -> QuantizeResult:
        cfg = ctx.cfg.quantize
        table, rows = inputs[self.reads[0]].vectors()
        emb = table.read(ctx.spark).select("pair_id", "embedding")
        keep = (lambda df: ctx.write_table(df, "assignments")) if self.side == "train" else None
        q = quantize(emb, cfg, rows, self.side, self.seed_offset, keep, on_iteration=ctx.progress.lloyd_iteration)
        if self.side == "train" and cfg.enabled:
            warning = k_warning(rows, len(q.centroids), int(q.stats.get("singletons", 0)))
            if warning:
                log.warning(warning)
        iterations = ctx.progress.kmeans_iterations() if cfg.enabled else 0
        stats = {"rows": rows, "clusters": int(len(q.centroids)), "quantized": cfg.enabled,
                 "kmeans_iterations": iterations, **q.stats}
        return QuantizeResult(centroids=q.centroids, sizes=q.sizes, stats=stats, assignments=q.assignments)
