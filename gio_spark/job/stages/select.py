"""Select stage: GIO (the JAX core) on the driver, over the pool's and the target's centroids;
only centroids and sizes are in memory here. Clusters whose pairs all duplicate the target
are not offered. With a budget, GIO goes on in its order until the clusters' pairs (or tokens)
reach it, and the last cluster is cut (by the write stage) to the exact budget.

By density ratio (one target, ``selection.method`` auto or density_ratio), GIO still runs, and
its own stop says how much to select when there is no budget; the pairs are then taken by their
density ratio score, highest first: whole bins of the score (the guard counted each bin's pairs
and tokens) down to the budget, the last bin cut by the write stage."""
from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from typing import Mapping, Optional, Sequence

import numpy as np

from ...density_ratio import BINS
from ...errors import UserError
from ...gio import knn_kl, select
from ...gio.mixture import claim, shares
from ..config import target_name
from ..stage import Context, Resources, Result, Stage
from .guard import GuardResult
from .quantize import QuantizeResult

log = logging.getLogger(__name__)

MOST_OF_THE_POOL = 0.5  # a selection above this share of the pool gets a warning


@dataclass
class SelectResult(Result):
    gio: dict  # the core's SelectionResult.to_dict(), without its config
    chosen_clusters: list = field(default_factory=list)  # pool clusters in the order GIO added them
    chosen_cluster_sizes: list = field(default_factory=list)  # their usable pairs
    pairs_selected: int = 0  # pairs of the chosen clusters, the last one cut to a pair budget
    knn_kl_chosen_centroids: Optional[float] = None
    budget: Optional[dict] = None  # unit, amount, what was reached, and where GIO's own stop was
    cut: Optional[dict] = None  # the last cluster's share of the budget: {cluster, keep, unit}
    targets: Optional[dict] = None  # named targets: each one's clusters, cut and figures, by side
    ratio: Optional[dict] = None  # by density ratio: the bins taken, their sizes, the cut, how the size was set

    def to_dict(self) -> dict:
        out = {**self.gio, "chosen_clusters": self.chosen_clusters, "chosen_cluster_sizes": self.chosen_cluster_sizes,
               "pairs_selected": self.pairs_selected}
        if self.knn_kl_chosen_centroids is not None:
            out["knn_kl_chosen_centroids"] = self.knn_kl_chosen_centroids
        if self.budget is not None:
            out["budget"], out["cut"] = self.budget, self.cut
        if self.targets is not None:
            out["targets"] = self.targets
        if self.ratio is not None:
            out["method"], out["density_ratio"] = "density_ratio", self.ratio
        else:
            out["method"] = "gio"
        return out

    @property
    def unit(self) -> str:
        """The scores' column that says which unit (cluster, or ratio bin) a pair is in."""
        return "cluster" if self.ratio is None else "ratio_bin"

    def claims(self) -> list[tuple[str, list, Optional[dict]]]:
        """(target side, its units in its order, the cut of its last one) for each target; a cut
        names its unit under ``id``."""
        if self.ratio is not None:
            return [("target", self.ratio["bins"], self.ratio["cut"] and {**self.ratio["cut"], "id": self.ratio["cut"]["bin"]})]
        if self.targets is None:
            return [("target", self.chosen_clusters, self.cut and {**self.cut, "id": self.cut["cluster"]})]
        return [(side, t["clusters"], t["cut"] and {**t["cut"], "id": t["cut"]["cluster"]})
                for side, t in self.targets.items()]

    def unit_sizes(self, side: str) -> list:
        """The usable pairs of each unit a target took, in its order."""
        if self.ratio is not None:
            return self.ratio["bin_sizes"]
        return self.chosen_cluster_sizes if self.targets is None else self.targets[side]["cluster_sizes"]


class SelectStage(Stage[SelectResult]):
    name = "select"
    resources = Resources("driver")
    result = SelectResult

    def __init__(self, targets: Sequence[str] = ("target",)) -> None:
        self.targets = list(targets)
        self.reads = ("quantize_train", *[f"quantize_{t}" for t in targets], "guard")

    def config(self, cfg):
        sel = cfg.selection
        common = (cfg.gio, sel.budget, sel.token_sides if sel.budget_tokens else None)
        if cfg.by_ratio:
            return (*common, "density_ratio")
        return common if cfg.target is not None else (*common, cfg.target_weights())

    def run(self, ctx: Context, inputs: Mapping[str, Result]) -> SelectResult:
        cfg = ctx.cfg
        guard: GuardResult = inputs["guard"]
        for side in self.targets:
            found = inputs[f"quantize_{side}"].centroids.shape[0]
            if found < cfg.gio.k + 1:
                raise UserError(f"{side} has {found} clusters; GIO's k-NN estimator with k={cfg.gio.k} needs at "
                                f"least {cfg.gio.k + 1} (add target pairs or lower gio.k)")
        if not (guard.sizes > 0).any():
            raise UserError(f"the guard excluded every pool pair: all {guard.excluded} duplicate target pairs (is the "
                            f"pool the target?); --keep-target-duplicates (selection.keep_target_duplicates) leaves "
                            f"them in")
        if cfg.target is None:
            return self._mixture(cfg, inputs)
        chosen = self._one(cfg, inputs)
        return by_ratio(cfg, chosen, guard) if cfg.by_ratio else chosen

    def _one(self, cfg, inputs: Mapping[str, Result]) -> SelectResult:
        """One target: GIO to its own stop, or in its order to the budget."""
        pool: QuantizeResult = inputs["quantize_train"]
        guard: GuardResult = inputs["guard"]
        goal = inputs["quantize_target"].centroids
        sizes = guard.sizes
        offered = np.flatnonzero(sizes > 0)  # clusters with usable pairs
        unit = "clusters" if cfg.quantize.enabled else "pairs"
        log.info("select: GIO on %d pool %s against %d target %s, at most %d iterations (stop criterion: %s)%s",
                 len(offered), unit, len(goal), unit, cfg.gio.max_iter, cfg.gio.stop_criterion,
                 f", budget {cfg.selection.budget[1]:g} {cfg.selection.budget[0]}" if cfg.selection.budget else "")
        weights, amount, budget_unit = self._budget(cfg, guard, offered)
        result = select(pool.centroids[offered], goal, config=cfg.gio, weights=weights, budget=amount)
        order = [int(i) for i in result.chosen_indices]
        chosen = [int(offered[i]) for i in order]
        picked = int(sizes[chosen].sum()) if chosen else 0
        budget, cut = None, None
        if amount is not None:
            budget, cut = self._budget_outcome(cfg, result, weights[order], amount, budget_unit, chosen, sizes)
            if cut is not None and budget_unit == "pairs":
                picked = int(sizes[chosen[:-1]].sum()) + cut["keep"]
        log.info("select: %d / %d iterations, stop: %s; %d of %d usable pool pairs in %d of %d %s; relaxed KL "
                 "estimate %.2f -> %.2f (k-NN KL estimates can be negative: see the report)", result.iterations,
                 cfg.gio.max_iter, result.stop_reason, picked, int(sizes.sum()), len(chosen), len(sizes), unit,
                 result.initial_kl, result.final_kl)
        if sizes.sum() and picked / sizes.sum() > MOST_OF_THE_POOL and amount is None:
            log.warning("select: GIO took %.0f%% of the pool: the target is not much narrower than the pool at this k "
                        "(%d clusters for %d pairs); a budget (--budget-pairs), v_init=jump or another k gives a "
                        "smaller, more specific selection", 100 * picked / sizes.sum(), len(sizes), int(sizes.sum()))
        gio = {k: v for k, v in result.to_dict().items() if k != "config"}
        knn = knn_kl(goal, pool.centroids[chosen], k=cfg.gio.k) if len(chosen) >= cfg.gio.k else None
        return SelectResult(gio=gio, chosen_clusters=chosen, chosen_cluster_sizes=[int(sizes[c]) for c in chosen],
                            pairs_selected=picked, knn_kl_chosen_centroids=knn, budget=budget, cut=cut)

    def _mixture(self, cfg, inputs: Mapping[str, Result]) -> SelectResult:
        """Named targets: GIO per target over the same pool clusters, each cluster to the target
        that ranked it first (gio/mixture.py); with a budget, each target's share of it."""
        pool: QuantizeResult = inputs["quantize_train"]
        guard: GuardResult = inputs["guard"]
        sizes = guard.sizes
        offered = np.flatnonzero(sizes > 0)
        weights, amount, unit = self._budget(cfg, guard, offered)
        weight_of = np.zeros(len(sizes))
        weight_of[offered] = sizes[offered] if weights is None else weights
        wanted: list = [None] * len(self.targets)
        budget = None
        if amount is not None:  # each target's share, and enough of each GIO order to fill it
            wanted = shares(list(cfg.target_weights().values()), amount, whole=unit == "pairs")
            for side, share in zip(self.targets, wanted):
                if share == 0 and cfg.target_weights()[side] > 0:
                    log.warning("select: %s: its weight (%.3g of the whole) gets 0 of the %g %s of the budget; it "
                                "selects nothing (raise its weight or the budget)", target_name(side),
                                cfg.target_weights()[side], amount, unit)
            enough = min(float(weights.sum()), amount + len(self.targets) * float(weights.max()))
            budget = {"unit": cfg.selection.budget[0], "amount": cfg.selection.budget[1], "weight": unit,
                      "weight_target": amount}
        runs, orders = {}, []
        for side in self.targets:
            goal = inputs[f"quantize_{side}"].centroids
            run = select(pool.centroids[offered], goal, config=cfg.gio, weights=weights,
                         budget=None if amount is None else enough)
            runs[side] = run
            orders.append([int(offered[i]) for i in run.chosen_indices])
        smallest = None
        if unit == "tokens":  # a target takes no cluster whose every pair is longer than what is left of its share
            smallest = guard.fewest_tokens(cfg.selection.token_sides).astype(np.float64)
        taken = claim(orders, weight_of, wanted, smallest)
        targets = {}
        for side, run, order, mine, share in zip(self.targets, runs.values(), orders, taken, wanted):
            goal = inputs[f"quantize_{side}"].centroids
            curve = [run.initial_kl, *run.kl_curve.tolist()]
            own = run.own_stop_points if amount is not None else len(curve) - 1
            cut = None
            if mine.keep_last is not None:
                cut = {"cluster": mine.clusters[-1], "keep": int(round(mine.keep_last)) if unit == "pairs"
                       else mine.keep_last, "unit": unit}
            pairs = int(sizes[mine.clusters].sum())
            if cut is not None and unit == "pairs":
                pairs += cut["keep"] - int(sizes[cut["cluster"]])
            chosen = pool.centroids[mine.clusters]
            targets[side] = {
                "name": target_name(side), "weight": cfg.target_weights()[side], "share": share,
                "clusters": mine.clusters, "cluster_sizes": [int(sizes[c]) for c in mine.clusters],
                "ranks": mine.ranks, "cut": cut, "pairs": pairs, "reached": mine.reached,
                "taken_by_others": mine.taken_by_others, "iterations": run.iterations, "stop_reason": run.stop_reason,
                "gio_own_stop": None if own is None else {
                    "clusters": own, "reason": run.own_stop_reason or run.stop_reason, "kl": float(curve[own]),
                    "pairs": int(sizes[order[:own]].sum())},
                "kl_curve": run.kl_curve.tolist(), "initial_kl": run.initial_kl,
                "kl_at_cut": float(curve[min(mine.ranks[-1] + 1, len(curve) - 1)]) if mine.ranks else None,
                "knn_kl_chosen_centroids": knn_kl(goal, chosen, k=cfg.gio.k) if len(chosen) >= cfg.gio.k else None,
            }
            short = None if share is None else share - mine.reached
            if short:
                targets[side]["shortfall"] = short
                log.warning("select: %s got %g of its %g %s: the usable pool ran out in its GIO order", target_name(side),
                            mine.reached, share, unit)
            log.info("select: %s: %d pairs in %d clusters (%g %s it wanted another target took first), GIO's own "
                     "stop after %s clusters", target_name(side), pairs, len(mine.clusters), mine.taken_by_others,
                     unit or "pairs", own)
        if budget is not None:
            budget["shares"] = {side: t["share"] for side, t in targets.items()}
            short = sum(t.get("shortfall", 0) for t in targets.values())
            if short:
                budget["shortfall"] = short
        chosen = [c for t in targets.values() for c in t["clusters"]]
        return SelectResult(gio={}, chosen_clusters=chosen, chosen_cluster_sizes=[int(sizes[c]) for c in chosen],
                            pairs_selected=sum(t["pairs"] for t in targets.values()), budget=budget, targets=targets)

    @staticmethod
    def _budget(cfg, guard: GuardResult, offered: np.ndarray):
        """(weights of the offered clusters, amount, unit of the cut) of the budget, or Nones."""
        if cfg.selection.budget is None:
            return None, None, None
        kind, amount = cfg.selection.budget
        if kind == "tokens":
            return guard.tokens(cfg.selection.token_sides)[offered].astype(np.float64), float(amount), "tokens"
        sizes = guard.sizes[offered].astype(np.float64)
        if kind == "share":
            amount = max(1.0, round(amount * float(sizes.sum())))
        return sizes, float(amount), "pairs"

    @staticmethod
    def _budget_outcome(cfg, result, weights: np.ndarray, amount: float, unit: str, chosen: list, sizes: np.ndarray):
        """What the budget reached and where GIO's own stop was; the cut of the last cluster."""
        kind = cfg.selection.budget[0]
        reached = float(weights.sum()) if len(weights) else 0.0
        own = result.own_stop_points
        curve = [result.initial_kl, *result.kl_curve.tolist()]
        budget = {"unit": kind, "amount": cfg.selection.budget[1], "weight": unit, "weight_target": amount,
                  "kl_at_budget": result.final_kl,
                  "gio_own_stop": None if own is None else {
                      "clusters": own, "reason": result.own_stop_reason, "kl": float(curve[own]),
                      "pairs": int(sizes[chosen[:own]].sum()), "weight": float(weights[:own].sum())}}
        cut = None
        if result.stop_reason == "budget" and chosen:
            keep = int(round(amount - float(weights[:-1].sum())))
            cut = {"cluster": chosen[-1], "keep": keep, "unit": unit}
        else:  # the guard left less than the budget: all of it is selected, and the shortfall said
            budget["shortfall"] = amount - reached
            log.warning("select: the budget of %g %s is more than the usable pool holds (%g, after the guard kept "
                        "target duplicates out); selecting all of it, %g %s short", amount, unit, reached,
                        amount - reached, unit)
        if own is not None and own < len(chosen):
            log.info("select: GIO's own stop (%s) came after %d clusters, %d pairs (KL %.2f); the budget took it to "
                     "%d clusters (KL %.2f)", result.own_stop_reason, own, budget["gio_own_stop"]["pairs"],
                     budget["gio_own_stop"]["kl"], len(chosen), result.final_kl)
        return budget, cut


def by_ratio(cfg, gio: SelectResult, guard: GuardResult) -> SelectResult:
    """The selection by density ratio: bins of the ratio score, highest first, until their pairs
    (or tokens) reach the budget, or without one the pairs GIO's own stop chose; the last bin is
    cut. GIO's run stays in the result (its curve, its own stop) for the report."""
    sizes = guard.bin_sizes
    if cfg.selection.budget is None:
        unit, weights, amount, size_from = "pairs", sizes, float(gio.pairs_selected), "gio_own_stop"
    else:
        kind, amount = cfg.selection.budget
        unit, weights = ("tokens", guard.bin_tokens(cfg.selection.token_sides)) if kind == "tokens" else ("pairs", sizes)
        if kind == "share":
            amount = max(1.0, round(amount * float(sizes.sum())))
        amount, size_from = float(amount), "budget"
    order = [b for b in range(BINS - 1, -1, -1) if sizes[b] > 0]
    reached = np.cumsum(weights[order].astype(np.float64))
    last = int(np.searchsorted(reached, amount))  # the first bin at which the amount is reached
    bins = order[: last + 1]
    cut = None
    if last < len(order):
        before = float(reached[last - 1]) if last else 0.0
        keep = amount - before
        if keep < weights[bins[-1]]:
            cut = {"bin": bins[-1], "keep": int(round(keep)) if unit == "pairs" else keep, "unit": unit}
    picked = int(sizes[bins].sum()) - (int(sizes[cut["bin"]]) - cut["keep"] if cut and unit == "pairs" else 0)
    ratio = {"size_from": size_from, "unit": unit, "amount": amount, "bins": [int(b) for b in bins],
             "bin_sizes": [int(sizes[b]) for b in bins], "cut": cut, "pairs": picked,
             "score_from": round(bins[-1] / BINS, 6) if bins else None}
    if last >= len(order) and cfg.selection.budget is not None:
        ratio["shortfall"] = amount - (float(reached[-1]) if len(reached) else 0.0)
    log.info("select: by density ratio, %d pairs (%s) from %d score bins, scores from %.4f up%s", picked,
             "the budget" if size_from == "budget" else "as many as GIO's own stop chose", len(bins),
             ratio["score_from"] or 0.0, f"; the last bin cut to {cut['keep']:g} {unit}" if cut else "")
    return dataclasses.replace(gio, pairs_selected=picked, cut=None, ratio=ratio)
