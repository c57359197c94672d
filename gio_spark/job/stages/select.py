"""Select stage: GIO (the JAX core) on the driver, over the pool's and the target's centroids;
only centroids and sizes are in memory here."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Mapping, Optional

from ...errors import UserError
from ...gio import knn_kl, select
from ..stage import Context, Resources, Result, Stage
from .quantize import QuantizeResult

log = logging.getLogger(__name__)

MOST_OF_THE_POOL = 0.5  # a selection above this share of the pool gets a warning


@dataclass
class SelectResult(Result):
    gio: dict  # the core's SelectionResult.to_dict(), without its config
    chosen_clusters: list = field(default_factory=list)  # pool clusters in the order GIO added them
    chosen_cluster_sizes: list = field(default_factory=list)
    pairs_selected: int = 0
    knn_kl_chosen_centroids: Optional[float] = None

    def to_dict(self) -> dict:
        return {**self.gio, "chosen_clusters": self.chosen_clusters, "chosen_cluster_sizes": self.chosen_cluster_sizes,
                "pairs_selected": self.pairs_selected,
                **({"knn_kl_chosen_centroids": self.knn_kl_chosen_centroids}
                   if self.knn_kl_chosen_centroids is not None else {})}


class SelectStage(Stage[SelectResult]):
    name = "select"
    reads = ("quantize_train", "quantize_target")
    resources = Resources("driver")
    result = SelectResult

    def config(self, cfg):
        return cfg.gio

    def run(self, ctx: Context, inputs: Mapping[str, Result]) -> SelectResult:
        cfg = ctx.cfg
        pool: QuantizeResult = inputs["quantize_train"]
        target: QuantizeResult = inputs["quantize_target"]
        train, sizes, goal = pool.centroids, pool.sizes, target.centroids
        if goal.shape[0] < cfg.gio.k + 1:
            raise UserError(f"target has {goal.shape[0]} clusters; GIO's k-NN estimator with k={cfg.gio.k} needs at "
                            f"least {cfg.gio.k + 1} (add target pairs or lower gio.k)")
        unit = "clusters" if cfg.quantize.enabled else "pairs"
        log.info("select: GIO on %d pool %s against %d target %s, at most %d iterations (stop criterion: %s)",
                 len(train), unit, len(goal), unit, cfg.gio.max_iter, cfg.gio.stop_criterion)
        result = select(train, goal, config=cfg.gio)
        chosen = [int(c) for c in result.chosen_indices]
        picked = int(sizes[chosen].sum()) if chosen else 0
        log.info("select: %d / %d iterations, stop: %s; %d of %d pool pairs in %d of %d %s; relaxed KL estimate "
                 "%.2f -> %.2f (k-NN KL estimates can be negative: see the report)", result.iterations,
                 cfg.gio.max_iter, result.stop_reason, picked, int(sizes.sum()), len(chosen), len(train), unit,
                 result.initial_kl, result.final_kl)
        if sizes.sum() and picked / sizes.sum() > MOST_OF_THE_POOL:
            log.warning("select: GIO took %.0f%% of the pool: the target is not much narrower than the pool at this k "
                        "(%d clusters for %d pairs); a budget (selection.budget_*), v_init=jump or another k gives a "
                        "smaller, more specific selection", 100 * picked / sizes.sum(), len(train), int(sizes.sum()))
        gio = {k: v for k, v in result.to_dict().items() if k != "config"}
        knn = knn_kl(goal, train[chosen], k=cfg.gio.k) if len(chosen) >= cfg.gio.k else None
        return SelectResult(gio=gio, chosen_clusters=chosen, chosen_cluster_sizes=[int(sizes[c]) for c in chosen],
                            pairs_selected=picked, knn_kl_chosen_centroids=knn)
