"""Report stage: the manifest's summary and report.png, from the centroids on the driver and
the example pairs the write stage kept of what it wrote (no Spark job)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np

from ..report import render_report
from ..stage import Context, Progress, Resources, Result, Stage
from ..summary import nearest_distances, nearest_other_distances, quantization_summary, selection_summary
from ..uri import join

REPORT = "report.png"


@dataclass
class ReportResult(Result):
    summary: dict = field(default_factory=dict)


class ReportStage(Stage[ReportResult]):
    name = "report"
    resources = Resources("driver")
    result = ReportResult
    reusable = False  # it writes the run's own output

    def __init__(self, targets: Sequence[str] = ("target",)) -> None:
        self.targets = list(targets)
        self.reads = ("quantize_train", *[f"quantize_{t}" for t in targets], "guard", "select", "write")

    def progress(self, cfg, inputs: Mapping[str, Result]) -> Progress:
        return Progress("report")

    def run(self, ctx: Context, inputs: Mapping[str, Result]) -> ReportResult:
        cfg = ctx.cfg
        pool, selection = inputs["quantize_train"], inputs["select"]
        guard, written = inputs["guard"], inputs["write"]
        goals = np.concatenate([inputs[f"quantize_{t}"].centroids for t in self.targets])  # every target's
        distances = nearest_distances(pool.centroids, goals)
        summary = selection_summary(selection.to_dict(), guard.sizes, distances, written.examples, cfg.quantize.enabled,
                                    cfg.gio.max_iter, pairs_selected=written.rows_out)
        summary["target_duplicates"] = guard.stats()
        for side, figures in (written.targets or {}).items():  # what was written of each named target
            summary["targets"][side].update(pairs=figures["pairs"], tokens=figures["tokens"])
        if summary.get("budget"):
            summary["budget"]["pairs_written"] = written.rows_out
            summary["budget"]["tokens_written"] = written.tokens_out
        summary["quantization"] = {side: quantization_summary(inputs[f"quantize_{side}"].stats)
                                   for side in ("train", *self.targets)}
        figure = render_report(summary, selection.to_dict(), guard.sizes, distances, nearest_other_distances(goals),
                               guard.bin_sizes)
        ctx.fs.write_bytes(join(cfg.output, REPORT), figure)
        return ReportResult(summary=summary)
