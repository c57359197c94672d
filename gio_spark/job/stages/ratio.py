"""Density ratio stage (``selection.method: density_ratio``): the model that says how much more
target-like than pool-like each pool pair is (gio_spark/density_ratio.py), fitted on the
driver to the target's vectors and a uniform sample of the pool's, about
``sample_per_target`` rows per target row, both chosen by a hash of the pair id (the same rows
on any cluster). Only the sample and the target reach the driver; the guard's pass over the
pool scores every pair with the model."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field, fields
from typing import Mapping

import numpy as np

from ...density_ratio import DensityRatioModel, fit_density_ratio
from ..quantize import collected, hashed_subset
from ..stage import Context, Progress, Resources, Result, Stage

log = logging.getLogger(__name__)


@dataclass
class DensityRatioResult(Result):
    """The fitted DensityRatioModel as a stage result (the same fields)."""

    coef: np.ndarray  # [d] the classifier's weights
    target: np.ndarray  # [n, d] float32 target rows
    sample: np.ndarray  # [m, d] float32 pool sample rows
    logit_ref: np.ndarray  # [m] sorted
    knn_ref: np.ndarray  # [m] sorted
    intercept: float = 0.0
    k_target: int = 1
    k_sample: int = 1
    mix: float = 0.5
    aucs: dict = field(default_factory=dict)  # cross-validated AUC of each mix (empty when mix was given)

    @classmethod
    def of(cls, model: DensityRatioModel) -> "DensityRatioResult":
        return cls(**{f.name: getattr(model, f.name) for f in fields(DensityRatioModel)})

    def model(self) -> DensityRatioModel:
        return DensityRatioModel(**{f.name: getattr(self, f.name) for f in fields(DensityRatioModel)})

    def stats(self) -> dict:
        return {"target_rows": int(len(self.target)), "sample_rows": int(len(self.sample)),
                "k_target": self.k_target, "k_sample": self.k_sample, "mix": self.mix,
                "mix_auc": dict(self.aucs), "classifier_intercept": round(self.intercept, 6)}


class DensityRatioStage(Stage[DensityRatioResult]):
    name = "density_ratio"
    resources = Resources("driver")
    result = DensityRatioResult

    def __init__(self, vectors: str) -> None:
        """``vectors``: the stage family holding each side's vectors (``embed`` or ``pairs``)."""
        self.reads = (f"{vectors}_train", f"{vectors}_target")

    def config(self, cfg):
        return cfg.density_ratio

    def progress(self, cfg, inputs: Mapping[str, Result]) -> Progress:
        return Progress("density ratio: sample the pool")

    def run(self, ctx: Context, inputs: Mapping[str, Result]) -> DensityRatioResult:
        cfg = ctx.cfg.density_ratio
        target = self._rows(ctx, inputs[self.reads[1]], cfg.max_target_rows, cfg.seed)
        sample = self._rows(ctx, inputs[self.reads[0]], min(cfg.max_sample_rows, cfg.sample_per_target * len(target)),
                            cfg.seed + 1)
        model = fit_density_ratio(target, sample, k=cfg.k, seed=cfg.seed, mix=cfg.mix)
        log.info("density ratio: classifier and k-NN estimate (k=%d of %d target rows, %d of %d pool sample rows) "
                 "fitted; k-NN weight %g%s", model.k_target, len(target), model.k_sample, len(sample), model.mix,
                 f" (cross-validated AUC {model.aucs[f'{model.mix:g}']:.4f})" if model.aucs else " (as configured)")
        return DensityRatioResult.of(model)

    @staticmethod
    def _rows(ctx: Context, side: Result, wanted: int, seed: int) -> np.ndarray:
        """About ``wanted`` of the side's vectors (all when it has no more), chosen by a hash of
        the pair id, in pair-id order."""
        table, rows = side.vectors()
        df = table.read(ctx.spark).select("pair_id", "embedding")
        return collected(hashed_subset(df, rows, wanted, seed))
