"""Report stage: the manifest's summary and report.png, from the centroids on the driver plus
example pairs of a few chosen clusters (two small Spark queries, at most a dozen rows)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

from pyspark.sql import Window
from pyspark.sql import functions as F

from ..report import render_report
from ..stage import Context, Progress, Resources, Result, Stage
from ..summary import example_ranks, nearest_distances, nearest_other_distances, quantization_summary, selection_summary
from ..uri import join
from .select import SelectResult

REPORT = "report.png"


@dataclass
class ReportResult(Result):
    summary: dict = field(default_factory=dict)


class ReportStage(Stage[ReportResult]):
    name = "report"
    reads = ("pairs_train", "quantize_train", "quantize_target", "guard", "select", "write")
    resources = Resources("driver")
    result = ReportResult
    reusable = False  # it writes the run's own output

    def progress(self, cfg, inputs: Mapping[str, Result]) -> Progress:
        return Progress("report")

    def run(self, ctx: Context, inputs: Mapping[str, Result]) -> ReportResult:
        cfg = ctx.cfg
        pool, target, selection = inputs["quantize_train"], inputs["quantize_target"], inputs["select"]
        guard, written = inputs["guard"], inputs["write"]
        distances = nearest_distances(pool.centroids, target.centroids)
        examples = _examples(ctx.spark, inputs, selection)
        summary = selection_summary(selection.to_dict(), guard.sizes, distances, examples, cfg.quantize.enabled,
                                    cfg.gio.max_iter, pairs_selected=written.rows_out)
        summary["target_duplicates"] = guard.stats()
        if summary.get("budget"):
            summary["budget"]["pairs_written"] = written.rows_out
            summary["budget"]["tokens_written"] = written.tokens_out
        summary["quantization"] = {side: quantization_summary(inputs[f"quantize_{side}"].stats)
                                   for side in ("train", "target")}
        figure = render_report(summary, selection.to_dict(), guard.sizes, distances,
                               nearest_other_distances(target.centroids))
        ctx.fs.write_bytes(join(cfg.output, REPORT), figure)
        return ReportResult(summary=summary)


def _examples(spark, inputs: Mapping[str, Result], selection: SelectResult, per_cluster: int = 2) -> list[dict]:
    """Two pairs of each of the first and last chosen clusters: their ids from the assignments
    of just those clusters, then the pairs by id (two small jobs, nothing large collected)."""
    chosen, sizes = selection.chosen_clusters, selection.chosen_cluster_sizes
    ranks = example_ranks(len(chosen))
    if not ranks:
        return []
    wanted = [int(chosen[r]) for r in ranks]
    spread = Window.partitionBy("cluster").orderBy(F.xxhash64("pair_id"), "pair_id")
    picked = (
        inputs["quantize_train"].assignments.read(spark)
        .filter(F.col("cluster").isin(wanted))
        .withColumn("_n", F.row_number().over(spread))
        .filter(F.col("_n") <= per_cluster)
        .select("pair_id", "cluster")
        .collect()
    )
    ids = [int(r["pair_id"]) for r in picked]
    texts = {}
    pairs = inputs["pairs_train"].kept(spark)
    if "src" in pairs.columns and ids:
        rows = pairs.filter(F.col("pair_id").isin(ids)).select("pair_id", "src", "tgt").collect()
        texts = {int(r["pair_id"]): {"src": r["src"], "tgt": r["tgt"]} for r in rows}
    by_cluster: dict[int, list[dict]] = {}
    for r in sorted(picked, key=lambda r: int(r["pair_id"])):
        by_cluster.setdefault(int(r["cluster"]), []).append({"pair_id": int(r["pair_id"]), **texts.get(int(r["pair_id"]), {})})
    return [
        {"rank": r + 1, "cluster": int(chosen[r]), "pairs": int(sizes[r]), "examples": by_cluster.get(int(chosen[r]), [])}
        for r in ranks
    ]
