"""report.png: what was selected and whether it matches the target, at a glance."""
from __future__ import annotations

import io
import textwrap
from typing import Any

import numpy as np

from ..density_ratio import BINS

TEXT_WIDTH = 72  # characters of each side of an example pair
DPI = 90


def _short(text: Any, width: int = TEXT_WIDTH) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _targets_kl_panel(ax, selection: dict, summary: dict) -> None:
    """Named targets: each one's GIO curve over its own order, its own stop and its last cluster."""
    for side, t in selection["targets"].items():
        curve = [t["initial_kl"], *t["kl_curve"]]
        line, = ax.plot(range(len(curve)), curve, label=t["name"])
        own = t["gio_own_stop"]
        if own and own["clusters"] < len(curve):
            ax.plot([own["clusters"]], [own["kl"]], marker="o", color=line.get_color())
        if t["ranks"]:
            last = min(t["ranks"][-1] + 1, len(curve) - 1)
            ax.plot([last], [curve[last]], marker="s", color=line.get_color())
    ax.axhline(0.0, color="grey", lw=0.8, ls="--")
    ax.plot([], [], ls="", marker="o", color="grey", label="GIO's own stop")
    ax.plot([], [], ls="", marker="s", color="grey", label="its last cluster")
    ax.legend(fontsize=7.5)
    ax.set_xlabel(f"{summary['unit']} in each target's GIO order")
    ax.set_ylabel("relaxed k-NN KL estimate (nats)")
    ax.set_title("KL(target || selection) as GIO adds " + summary["unit"], fontsize=10)


def _kl_panel(ax, selection: dict, summary: dict) -> None:
    if "targets" in selection:
        _targets_kl_panel(ax, selection, summary)
        return
    unit = summary["unit"]
    curve = [selection["initial_kl"], *selection["kl_curve"]]
    ax.plot(range(len(curve)), curve, marker="." if len(curve) < 60 else None, color="tab:blue")
    ax.axhline(0.0, color="grey", lw=0.8, ls="--")
    if len(curve) > 1:
        ax.annotate(f"stop: {summary['stop_reason']}", (len(curve) - 1, curve[-1]), textcoords="offset points",
                    xytext=(-10, 12), ha="right", fontsize=8)
    own = (summary.get("budget") or {}).get("gio_own_stop")
    if own and own["clusters"] < len(curve) - 1:  # a budget took GIO past its own stop
        ax.axvline(own["clusters"], color="tab:red", lw=0.9, ls=":")
        ax.annotate(f"GIO's own stop ({own['reason']})", (own["clusters"], own["kl"]), textcoords="offset points",
                    xytext=(6, -14), fontsize=8, color="tab:red")
    ax.set_xlabel(f"{unit} added by GIO (0: its uniform start only)")
    ax.set_ylabel("relaxed k-NN KL estimate (nats)")
    ax.set_title("KL(target || selection) as GIO adds " + unit, fontsize=10)
    note = ("k-NN KL estimates are differences of mean log distances:\nbelow 0 is possible for finite samples. "
            "Lower is closer\nto the target; compare values within a run, not their sign.")
    ax.text(0.0, -0.17, note, transform=ax.transAxes, ha="left", va="top", fontsize=8, color="0.25")


def _distance_panel(ax, summary: dict, pool_sizes: np.ndarray, distances: np.ndarray, mask: np.ndarray,
                    target_distances: np.ndarray) -> None:
    finite = np.isfinite(distances)
    groups = [("selected", mask & finite, "tab:green"), ("not selected", ~mask & finite, "tab:grey")]
    values = np.concatenate([distances[finite], target_distances[np.isfinite(target_distances)]])
    bins = np.linspace(0.0, float(values.max()) if len(values) else 1.0, 31)
    for label, keep, color in groups:
        if keep.any() and pool_sizes[keep].sum() > 0:
            med = summary["nearest_target_distance"]["selected" if label == "selected" else "not_selected"]["p50"]
            ax.hist(distances[keep], bins=bins, weights=pool_sizes[keep] / pool_sizes[keep].sum(), alpha=0.6,
                    histtype="stepfilled", color=color, label=f"{label} pool pairs (median {med:.2f})")
    if np.isfinite(target_distances).any():
        t = target_distances[np.isfinite(target_distances)]
        ax.hist(t, bins=bins, weights=np.full(len(t), 1.0 / len(t)), histtype="step", color="black", lw=1.2,
                label="target centroids: nearest other one")
    ax.set_xlabel("distance to the nearest target centroid (embedding space)")
    ax.set_ylabel("share of pairs (weighted by cluster size)")
    ax.set_title("Selection vs target: selected pairs should sit closer", fontsize=10)
    ax.legend(fontsize=7.5)


def _sizes_panel(ax, selection: dict, summary: dict) -> None:
    sizes = np.asarray(selection["chosen_cluster_sizes"], dtype=float)
    unit = summary["unit"]
    if len(sizes):
        ax.stairs(sizes, np.arange(len(sizes) + 1) + 0.5, fill=True, color="tab:green", alpha=0.7)
        twin = ax.twinx()
        twin.plot(np.arange(1, len(sizes) + 1), np.cumsum(sizes), color="tab:orange")
        twin.set_ylabel("pairs selected so far", color="tab:orange")
        twin.set_ylim(bottom=0)
    ax.set_xlabel(f"chosen {unit}, in the order GIO added them")
    ax.set_ylabel("pairs in the cluster")
    own = " (GIO's own choice: it sets how much)" if summary.get("method") == "density_ratio" else ""
    ax.set_title(f"{summary['clusters_chosen']} chosen {unit}{own}: size of each", fontsize=10)


def _ratio_panel(ax, summary: dict, selection: dict, bin_sizes: np.ndarray) -> None:
    """By density ratio: the pool's usable pairs over the ratio score, the selected part above the cut."""
    sizes = np.asarray(bin_sizes, dtype=float)
    ratio = selection["density_ratio"]
    shown = 64  # display bins
    group = max(1, len(sizes) // shown)
    pool = sizes[: group * shown].reshape(shown, group).sum(axis=1)
    chosen = np.zeros(len(sizes))
    chosen[ratio["bins"]] = sizes[ratio["bins"]]
    cut = ratio["cut"]
    if cut and ratio["unit"] == "pairs":
        chosen[cut["bin"]] = cut["keep"]
    picked = chosen[: group * shown].reshape(shown, group).sum(axis=1)
    edges = np.arange(shown + 1) / shown
    ax.stairs(pool, edges, fill=True, color="tab:grey", alpha=0.5, label="pool pairs")
    ax.stairs(picked, edges, fill=True, color="tab:green", alpha=0.8, label=f"selected ({summary['pairs_selected']:,})")
    if ratio["score_from"] is not None:
        ax.axvline(ratio["score_from"], color="tab:red", lw=0.9, ls=":")
    ax.set_yscale("symlog")
    ax.set_xlabel("density ratio score (0: pool-like, 1: target-like; the pool sample's scale)")
    ax.set_ylabel("usable pool pairs")
    ax.set_title("Pairs taken by density ratio, highest first", fontsize=10)
    ax.legend(fontsize=7.5)


def _quantization_text(summary: dict) -> list[str]:
    lines = []
    for side, q in summary.get("quantization", {}).items():
        if q.get("mean_sqdist") is None:
            continue
        head = f"k-means, {side}: {q['rows']:,} pairs in {q['clusters']:,} clusters"
        if q["clusters"] == q["rows"]:  # k was lowered to the row count: singletons by construction
            lines.append(f"{head}: one pair per cluster (the side has no more rows than k)")
            continue
        lines.append(
            f"{head}; mean squared distance to the centroid "
            f"{q['mean_sqdist']:.3f}; cluster size median {q['size_p50']:.0f}, p90 {q['size_p90']:.0f}, "
            f"max {q['size_max']:.0f}; {q['singletons']} singletons, {q['empty']} empty"
        )
    return lines + ([""] if lines else [])


def _examples_lines(summary: dict) -> list[str]:
    if summary.get("method") == "density_ratio":
        lines = ["Example pairs (two per score bin) of the highest and the lowest score bins taken; rank = order taken"]
    else:
        lines = ["Example pairs (two per cluster) of the first and the last clusters GIO added; rank = order added"]
    previous = 0
    for ex in summary["examples"]:
        if ex["rank"] > previous + 1:
            lines.append("  ...")
        previous = ex["rank"]
        whose = f"{ex['target']}: " if "target" in ex else ""
        if "bin" in ex:
            lines.append(f"#{ex['rank']:<4} score bin {ex['bin']} (scores from {ex['bin'] / BINS:.4f})  "
                         f"({ex['pairs']:,} pairs)")
        else:
            last = "  (the last one added)" if ex["rank"] == summary["clusters_chosen"] and "target" not in ex else ""
            lines.append(f"{whose}#{ex['rank']:<4} cluster {ex['cluster']}  ({ex['pairs']:,} pairs){last}")
        for pair in ex["examples"]:
            if "src" in pair:
                lines.append(f"      {_short(pair['src']):<{TEXT_WIDTH}}  |  {_short(pair['tgt'])}")
            else:
                lines.append(f"      pair_id {pair['pair_id']}")
    if not summary["examples"]:
        lines.append("(nothing was selected)")
    return lines


def _headline(summary: dict) -> str:
    """The report's title: what was selected, how GIO stopped or the targets' shares, the budget,
    the guard, the median distances."""
    headline = (
        f"Selected {summary['pairs_selected']:,} of {summary['pairs_in_pool']:,} pool pairs "
        f"({100 * summary['share_of_pool']:.1f}%) in {summary['clusters_chosen']:,} of {summary['clusters_total']:,} "
        f"{summary['unit']}. "
    )
    ratio = summary.get("density_ratio")
    if ratio:
        headline = (f"Selected {summary['pairs_selected']:,} of {summary['pairs_in_pool']:,} pool pairs "
                    f"({100 * summary['share_of_pool']:.1f}%) by density ratio, scores from {ratio['score_from']:.4f}, "
                    + ("as many as the budget. " if ratio["size_from"] == "budget"
                       else f"as many as GIO's own stop chose ({summary['clusters_chosen']:,} clusters). "))
    if "targets" in summary:
        headline += "Targets: " + "; ".join(
            f"{t['name']} {t['pairs']:,} pairs in {t['clusters']} {summary['unit']}"
            + (f" ({t['taken_by_others']:g} taken first by another)" if t["taken_by_others"] else "")
            for t in summary["targets"].values()) + "."
    else:
        headline += (f"GIO stopped after {summary['iterations']:,} of at most {summary['max_iter']:,} iterations: "
                     f"{summary['stop_explained']}.")
    budget = summary.get("budget")
    if ratio:
        budget = None  # said above
    if budget and "targets" in summary:
        headline += f" Budget: {budget['amount']:g} {budget['unit']}, shared by the targets' weights."
    elif budget:
        own = budget.get("gio_own_stop")
        headline += (f" Budget: {budget['amount']:g} {budget['unit']}"
                     + (f", past GIO's own stop at {own['pairs']:,} pairs" if own else "") + ".")
    dups = summary.get("target_duplicates", {})
    if dups.get("duplicates"):
        found = sum(dups["duplicates"].values())
        headline += (f" {found:,} pool pairs duplicate target pairs: "
                     + ("kept out." if dups.get("active") else "left in (guard off)."))
    near = summary["nearest_target_distance"]
    if near["selected"] and near["not_selected"] and not ratio:
        headline += (f" Median distance to the nearest target centroid: selected {near['selected']['p50']:.2f}, "
                     f"not selected {near['not_selected']['p50']:.2f}.")
    return headline


def render_report(summary: dict, selection: dict, pool_sizes: np.ndarray, distances: np.ndarray,
                  target_distances: np.ndarray, bin_sizes: np.ndarray | None = None) -> bytes:
    """report.png: :func:`report_figure` of the same arguments."""
    import matplotlib.pyplot as plt

    fig = report_figure(summary, selection, pool_sizes, distances, target_distances, bin_sizes)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    plt.close(fig)
    return buf.getvalue()


def report_figure(summary: dict, selection: dict, pool_sizes: np.ndarray, distances: np.ndarray,
                  target_distances: np.ndarray, bin_sizes: np.ndarray | None = None):
    """The report's matplotlib Figure: headline numbers; the KL curve; nearest-target distances
    of selected vs unselected pairs (by density ratio: the pool over the ratio score, the
    selected part); the size of each chosen cluster; example pairs. Its margins are fixed (a
    "tight" bounding box would draw the whole figure twice, half of the report's time)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pool_sizes = np.asarray(pool_sizes, dtype=float)
    mask = np.zeros(len(pool_sizes), dtype=bool)
    mask[np.asarray(selection["chosen_clusters"], dtype=np.int64)] = True
    lines = _quantization_text(summary) + _examples_lines(summary)
    title = textwrap.wrap(_headline(summary), 160)
    # the layout in inches, fixed: the title's lines (12 points), the panels, their labels and notes
    # below them, then the text's lines (8 points)
    top, panels, below, text = 0.5 + 0.22 * len(title), 4.0, 1.3, 0.2 + 0.14 * len(lines)
    width, height = 17.0, top + panels + below + text
    fig = plt.figure(figsize=(width, height))
    fig.suptitle("\n".join(title), fontsize=12, x=0.1 / width, y=1 - 0.1 / height, ha="left", va="top", fontweight="bold")
    grid = fig.add_gridspec(1, 3, wspace=0.35, left=0.7 / width, right=1 - 0.6 / width, top=1 - top / height,
                            bottom=(below + text) / height)
    _kl_panel(fig.add_subplot(grid[0]), selection, summary)
    if summary.get("method") == "density_ratio":
        _ratio_panel(fig.add_subplot(grid[1]), summary, selection, bin_sizes)
    else:
        _distance_panel(fig.add_subplot(grid[1]), summary, pool_sizes, np.asarray(distances, dtype=float), mask,
                        np.asarray(target_distances, dtype=float))
    _sizes_panel(fig.add_subplot(grid[2]), selection, summary)
    fig.text(0.7 / width, text / height, "\n".join(lines), family="monospace", fontsize=8, va="top", ha="left")
    return fig
