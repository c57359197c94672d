"""How much more likely the target is than the pool at each pool pair: the density ratio
p_target / p_pool that selection ranks by (pure numerics: NumPy and scikit-learn).

GIO minimises KL(target || selection). When the pool holds the target's kind of data among
others, the subset of n pairs that contains the most of it is the n pairs with the highest
ratio p_target(x) / p_pool(x). The model estimates that ratio from the target's vectors and a
uniform sample of the pool's, two ways, and mixes them:

- a linear classifier (logistic regression, target against the pool sample): its logit is the
  log ratio up to a constant, under a linear model;
- GIO's own k-NN estimate, made contrastive: the k-th nearest target row against the
  (k * m / n)-th nearest of the m sample rows, ``log ratio ~ d * (log r_pool - log r_target)``
  (here without the factor d, which does not change the order).

Each score is put on the scale of its empirical distribution over the pool sample (extended
linearly beyond the sample's range, so the pairs above every sample row stay ordered), and the
two are mixed with the weight that ranks held-out target rows above held-out sample rows best
(area under the ROC curve, cross-validated: the sample is unlabelled, but a better ranking of
target against pool is a better ranking of the target's kind against the rest). Everything is
deterministic: fixed folds, one BLAS thread for the fit, scores rounded to 12 decimals.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np

MIXES = (0.0, 0.25, 0.5, 0.75, 1.0)  # weights of the k-NN part tried by cross-validation
D2_MIN = 1e-10  # squared distances are clipped here, as GIO's estimators clip them
BLOCK = 4096  # rows scored at once (memory: BLOCK x (n + m) distances)
DECIMALS = 12  # scores are rounded so that float noise across batchings cannot reorder pairs
BINS = 4096  # the ratio's histogram bins (the unit a budget is filled by, the last one cut)


def kth_sq_dist(x: np.ndarray, ref: np.ndarray, k: int, skip_self: bool = False) -> np.ndarray:
    """Squared Euclidean distance of each row of ``x`` to its k-th nearest row of ``ref``
    (k >= 1), in float32 (a GEMM per block of rows); with ``skip_self`` the nearest (the row
    itself, x being ref) is skipped."""
    rank = k if skip_self else k - 1
    x, ref = np.asarray(x, dtype=np.float32), np.asarray(ref, dtype=np.float32)
    out = np.empty(len(x))
    ref_sq = np.einsum("ij,ij->i", ref, ref)
    for s in range(0, len(x), BLOCK):
        b = x[s:s + BLOCK]
        d2 = np.einsum("ij,ij->i", b, b)[:, None] - 2.0 * (b @ ref.T) + ref_sq[None, :]
        out[s:s + BLOCK] = np.partition(d2, rank, axis=1)[:, rank]
    return np.maximum(out, D2_MIN)


def knn_log_ratio(x: np.ndarray, target: np.ndarray, sample: np.ndarray, k_target: int, k_sample: int,
                  in_target: bool = False, in_sample: bool = False) -> np.ndarray:
    """GIO's k-NN log density ratio (per dimension) at each row of ``x``: log r_sample - log r_target;
    ``in_target`` / ``in_sample``: x is that reference itself (its own row skipped)."""
    return 0.5 * (np.log(kth_sq_dist(x, sample, k_sample, in_sample))
                  - np.log(kth_sq_dist(x, target, k_target, in_target)))


def on_sample_scale(sorted_ref: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Each value's place in the sorted reference scores: the empirical CDF (mid-ranks,
    interpolated), continued linearly beyond the first and last reference value."""
    m = len(sorted_ref)
    grid = (np.arange(m) + 0.5) / m
    lo, hi = float(sorted_ref[0]), float(sorted_ref[-1])
    span = max(hi - lo, 1e-12)
    out = np.interp(values, sorted_ref, grid)
    out = np.where(values > hi, grid[-1] + (values - hi) / span, out)
    return np.where(values < lo, grid[0] - (lo - values) / span, out)


def _logistic(x: np.ndarray, y: np.ndarray):
    from sklearn.linear_model import LogisticRegression
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):  # the same bits on any driver
        return LogisticRegression(C=1.0, max_iter=5000).fit(x, y)


def neighbours(n_target: int, n_sample: int, k: int) -> tuple[int, int]:
    """(k for the target, k for the sample): k, at most n_target - 1 (a target row is scored
    without itself), and the sample's k scaled by its size, so both radii hold the same share."""
    k_target = max(1, min(k, n_target - 1))
    k_sample = max(1, min(n_sample - 1, round(k_target * n_sample / n_target)))
    return k_target, k_sample


def choose_mix(target: np.ndarray, sample: np.ndarray, k: int, folds: int = 5,
               seed: int = 0) -> tuple[float, dict[str, float]]:
    """The k-NN part's weight in MIXES whose mix ranks held-out target rows above held-out sample
    rows best (ROC AUC over ``folds`` folds; a tie goes to the weight nearest 0.5), and each
    weight's AUC. Too few rows to fold: 0.5."""
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import KFold

    folds = min(folds, len(target), len(sample))
    if folds < 2 or len(target) < 4:
        return 0.5, {}
    split = KFold(folds, shuffle=True, random_state=seed)
    mixed: dict[float, list[np.ndarray]] = {w: [] for w in MIXES}
    labels = []
    for (t_fit, t_out), (s_fit, s_out) in zip(split.split(target), split.split(sample)):
        tf, sf = target[t_fit], sample[s_fit]
        model = _logistic(np.vstack([tf, sf]), np.r_[np.ones(len(tf)), np.zeros(len(sf))])
        held = np.vstack([target[t_out], sample[s_out]])
        kt, ks = neighbours(len(tf), len(sf), k)
        lin = on_sample_scale(np.sort(model.decision_function(sf)), model.decision_function(held))
        knn = on_sample_scale(np.sort(knn_log_ratio(sf, tf, sf, kt, ks, in_sample=True)),
                              knn_log_ratio(held, tf, sf, kt, ks))
        for w in MIXES:
            mixed[w].append((1.0 - w) * lin + w * knn)
        labels.append(np.r_[np.ones(len(t_out)), np.zeros(len(s_out))])
    y = np.concatenate(labels)
    aucs = {w: round(float(roc_auc_score(y, np.concatenate(mixed[w]))), 6) for w in MIXES}
    best = max(MIXES, key=lambda w: (aucs[w], -abs(w - 0.5)))
    return best, {f"{w:g}": a for w, a in aucs.items()}


@dataclass
class DensityRatioModel:
    """What scoring a pool pair needs: the classifier, the k-NN references and both scores'
    distributions over the pool sample."""

    coef: np.ndarray  # [d] the classifier's weights
    intercept: float
    target: np.ndarray  # [n, d] float32: the target rows (k-NN reference)
    sample: np.ndarray  # [m, d] float32: the pool sample rows (k-NN reference, the classifier's negatives)
    k_target: int
    k_sample: int
    mix: float  # weight of the k-NN part
    logit_ref: np.ndarray  # [m] the sample's logits, sorted
    knn_ref: np.ndarray  # [m] the sample's k-NN log ratios (each without itself), sorted
    aucs: dict = field(default_factory=dict)  # cross-validated AUC of each mix

    def score(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(ratio score, classifier logit, k-NN log ratio) of each row of ``x`` [rows, d]; the
        ratio score orders pairs by how much more target-like than pool-like they are (about
        0 to 1 over the pool, beyond for pairs past every sample row)."""
        x = np.asarray(x, dtype=np.float64)
        logit = x @ self.coef + self.intercept
        knn = knn_log_ratio(x, self.target, self.sample, self.k_target, self.k_sample)
        ratio = ((1.0 - self.mix) * on_sample_scale(self.logit_ref, logit)
                 + self.mix * on_sample_scale(self.knn_ref, knn))
        return np.round(ratio, DECIMALS), np.round(logit, DECIMALS), np.round(knn, DECIMALS)


def fit_density_ratio(target: np.ndarray, sample: np.ndarray, k: int = 20, folds: int = 5, seed: int = 0,
                      mix: Optional[float] = None) -> DensityRatioModel:
    """Fit the model on the target's rows [n, d] and a uniform sample of the pool's [m, d]
    (m about 10 n); ``mix`` fixes the k-NN part's weight instead of choosing it."""
    target = np.asarray(target, dtype=np.float64)
    sample = np.asarray(sample, dtype=np.float64)
    if len(target) < 2 or len(sample) < 2:
        raise ValueError(f"the density ratio needs at least 2 target and 2 pool rows, got {len(target)} and "
                         f"{len(sample)}")
    aucs: dict = {}
    if mix is None:
        mix, aucs = choose_mix(target, sample, k, folds, seed)
    model = _logistic(np.vstack([target, sample]), np.r_[np.ones(len(target)), np.zeros(len(sample))])
    k_target, k_sample = neighbours(len(target), len(sample), k)
    logit_ref = np.sort(sample @ model.coef_[0] + model.intercept_[0])
    knn_ref = np.sort(knn_log_ratio(sample, target, sample, k_target, k_sample, in_sample=True))
    return DensityRatioModel(coef=model.coef_[0].astype(np.float64), intercept=float(model.intercept_[0]),
                             target=target.astype(np.float32), sample=sample.astype(np.float32),
                             k_target=k_target, k_sample=k_sample, mix=float(mix),
                             logit_ref=logit_ref, knn_ref=knn_ref, aucs=aucs)


def ratio_bin(ratio: np.ndarray) -> np.ndarray:
    """The histogram bin of each ratio score (0 to BINS - 1; scores past the ends in the end bins)."""
    return np.clip(np.floor(np.asarray(ratio) * BINS), 0, BINS - 1).astype(np.int32)
