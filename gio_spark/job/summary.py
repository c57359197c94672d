"""What a run selected, in numbers a user can check: pairs and clusters chosen, why GIO
stopped, how close the selection is to the target, and example pairs (numpy only)."""
from __future__ import annotations

from typing import Any, Optional

import numpy as np

KL_NOTE = (
    "KL values are k-NN estimates of KL(target || selection) in nats: GIO's relaxed estimate for the curve, "
    "the standard estimator (Wang, Kulkarni and Verdu 2009) for knn_kl_chosen_centroids. They are differences "
    "of mean log distances plus constants, so for finite samples they are not bounded below by 0 and can be "
    "negative. Compare values within a run (lower is closer to the target), not their sign."
)
STOP_REASONS = {
    "increase": "the next cluster would have raised the KL estimate",
    "max_iter": "it reached gio.max_iter",
    "data_size": "it reached gio.max_data_size of the pool",
    "pool_exhausted": "every pool cluster was selected",
    "min_difference": "the KL estimate improved by less than gio.min_difference",
    "min_kl": "the KL estimate fell below gio.min_kl",
    "max_resets": "the KL estimate rose again after gio.max_resets resets",
    "sequential_increase_tolerance": "the KL estimate rose more than gio.max_sequential_increases times in a row",
    "budget": "the selection reached the budget (selection.budget_*)",
}
# at most this many train x target distances for the nearest-target comparison (else a sample of the target)
MAX_DISTANCES = 50_000_000


def nearest_distances(points: np.ndarray, reference: np.ndarray, seed: int = 0) -> np.ndarray:
    """Euclidean distance of each row of ``points`` to its nearest row of ``reference`` (a
    sample of ``reference`` when the pairs would be over MAX_DISTANCES)."""
    p = np.asarray(points, dtype=np.float64)
    r = np.asarray(reference, dtype=np.float64)
    if len(p) == 0 or len(r) == 0:
        return np.full(len(p), np.nan)
    if len(p) * len(r) > MAX_DISTANCES:
        r = r[np.random.default_rng(seed).choice(len(r), size=max(1, MAX_DISTANCES // len(p)), replace=False)]
    return _min_distances(p, r, None)


def nearest_other_distances(points: np.ndarray, seed: int = 0) -> np.ndarray:
    """Distance of each row (or of a sample of rows, for large inputs) to its nearest other row."""
    p = np.asarray(points, dtype=np.float64)
    if len(p) < 2:
        return np.full(len(p), np.nan)
    rows = np.arange(len(p))
    if len(p) * len(p) > MAX_DISTANCES:
        rows = np.random.default_rng(seed).choice(len(p), size=max(1, MAX_DISTANCES // len(p)), replace=False)
    return _min_distances(p[rows], p, rows)


def _min_distances(p: np.ndarray, r: np.ndarray, self_rows: Optional[np.ndarray]) -> np.ndarray:
    r_sq = (r * r).sum(axis=1)
    out = np.empty(len(p))
    step = max(1, MAX_DISTANCES // (10 * len(r)))
    for start in range(0, len(p), step):
        chunk = p[start : start + step]
        d2 = (chunk * chunk).sum(axis=1)[:, None] - 2.0 * chunk @ r.T + r_sq[None, :]
        if self_rows is not None:
            d2[np.arange(len(chunk)), self_rows[start : start + len(chunk)]] = np.inf
        out[start : start + len(chunk)] = np.sqrt(np.maximum(d2.min(axis=1), 0.0))
    return out


def weighted_quantiles(values: np.ndarray, weights: np.ndarray, qs=(0.1, 0.5, 0.9)) -> Optional[dict[str, float]]:
    """Quantiles of ``values`` where each counts ``weights`` times (None when empty)."""
    values, weights = np.asarray(values, dtype=float), np.asarray(weights, dtype=float)
    keep = weights > 0
    if not keep.any():
        return None
    order = np.argsort(values[keep])
    v, w = values[keep][order], weights[keep][order]
    cum = (np.cumsum(w) - 0.5 * w) / w.sum()
    return {f"p{int(round(q * 100))}": round(float(np.interp(q, cum, v)), 4) for q in qs}


def selection_summary(selection: dict[str, Any], pool_sizes: np.ndarray, distances: np.ndarray,
                      examples: list[dict[str, Any]], quantized: bool, max_iter: int,
                      pairs_selected: Optional[int] = None) -> dict[str, Any]:
    """The manifest's ``summary``: pairs selected of the pool, clusters chosen of all, why GIO
    stopped, nearest-target distances of selected and unselected pairs, example pairs.
    ``pool_sizes`` are the usable pairs per cluster; ``pairs_selected`` what was written (a
    budget cuts the last cluster), else the chosen clusters' pairs."""
    chosen = np.asarray(selection["chosen_clusters"], dtype=np.int64)
    sizes = np.asarray(pool_sizes, dtype=np.int64)
    mask = np.zeros(len(sizes), dtype=bool)
    mask[chosen] = True
    pool_pairs = int(sizes.sum())
    picked = int(sizes[mask].sum()) if pairs_selected is None else int(pairs_selected)
    out = {
        "pairs_selected": picked,
        "pairs_in_pool": pool_pairs,
        "share_of_pool": round(picked / pool_pairs, 4) if pool_pairs else 0.0,
        "clusters_chosen": int(mask.sum()),
        "clusters_total": int(len(sizes)),
        "unit": "clusters" if quantized else "pairs",
    }
    if "targets" in selection:  # named targets: GIO's figures per target
        out["targets"] = {side: {
            "name": t["name"], "weight": t["weight"], "share": t["share"], "pairs": t["pairs"],
            "clusters": len(t["clusters"]), "iterations": t["iterations"], "stop_reason": t["stop_reason"],
            "gio_own_stop": t["gio_own_stop"], "kl_at_cut": t["kl_at_cut"],
            "knn_kl_chosen_centroids": t["knn_kl_chosen_centroids"], "taken_by_others": t["taken_by_others"],
            **({"shortfall": t["shortfall"]} if "shortfall" in t else {})} for side, t in selection["targets"].items()}
        out["max_iter"] = int(max_iter)
        out["kl"] = {"note": KL_NOTE}
    else:
        reason = selection["stop_reason"]
        out.update({
            "iterations": int(selection["iterations"]),
            "max_iter": int(max_iter),
            "stop_reason": reason,
            "stop_explained": STOP_REASONS.get(reason, reason),
            "kl": {
                "initial": selection["initial_kl"],
                "final": selection["final_kl"],
                "knn_kl_chosen_centroids": selection.get("knn_kl_chosen_centroids"),
                "note": KL_NOTE,
            },
        })
    out.update({
        "nearest_target_distance": {
            "what": "Euclidean distance of each pool cluster centroid to the nearest target centroid, "
                    "quantiles over pairs (each cluster counts as many times as it has pairs)",
            "selected": weighted_quantiles(distances[mask], sizes[mask]),
            "not_selected": weighted_quantiles(distances[~mask], sizes[~mask]),
        },
        "examples": examples,
    })
    if selection.get("budget"):
        out["budget"] = selection["budget"]
    out["method"] = selection.get("method", "gio")
    ratio = selection.get("density_ratio")
    if ratio:  # GIO's figures above are its own run; the pairs were taken by density ratio
        out["density_ratio"] = {
            "what": "pool pairs taken by their density ratio score (target-like over pool-like), highest first",
            "size_from": ratio["size_from"], "unit": ratio["unit"], "amount": ratio["amount"],
            "score_bins": len(ratio["bins"]), "score_from": ratio["score_from"], "cut": ratio["cut"],
            **({"shortfall": ratio["shortfall"]} if "shortfall" in ratio else {})}
        out["nearest_target_distance"]["what"] += " (of GIO's own clusters: the pairs were taken by density ratio)"
    return out


def example_ranks(n_chosen: int, ends: int = 3) -> list[int]:
    """Selection ranks (0-based) shown with examples: the first and the last ``ends``."""
    return sorted(set(range(min(ends, n_chosen))) | set(range(max(0, n_chosen - ends), n_chosen)))


def quantization_summary(stats: dict[str, Any]) -> dict[str, Any]:
    """One side's k-means quality as the report shows it (from the quantize stage's figures)."""
    sizes = stats.get("size_percentiles", {})
    return {
        "clusters": stats.get("clusters"),
        "rows": stats.get("rows"),
        "mean_sqdist": stats.get("mean_sqdist"),
        "singletons": stats.get("singletons"),
        "empty": stats.get("empty"),
        "size_p50": sizes.get("p50"),
        "size_p90": sizes.get("p90"),
        "size_max": sizes.get("p100"),
    }
