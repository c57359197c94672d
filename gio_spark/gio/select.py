"""``select``: run GIO on a pool of vectors against a target sample."""
from __future__ import annotations

import logging
import time
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np

from .config import GIOConfig
from .estimators import (
    check_target,
    kl_constants,
    log_dist,
    log_dist_sums,
    min_log_dists,
    self_knn_log_mean,
    sq_dists,
)
from .loop import (BUDGET, CRITERION_CODE, MAX_ITER, STOP_REASONS, LoopInputs, LoopSpec, LoopState, build_loop,
                   grad_direction)
from .result import SelectionResult

log = logging.getLogger(__name__)

OWN_STOP_REASONS = {**STOP_REASONS, CRITERION_CODE["data_size"]: "data_size", MAX_ITER: "max_iter"}
# the exact optimizer with discard_nearest_for_xy keeps an n x N log-distance matrix
MAX_EXACT_DISCARD_ENTRIES = 1 << 28


def _as_matrix(name: str, a, dtype) -> np.ndarray:
    arr = np.asarray(a)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array [rows, dim], got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.number):
        raise ValueError(f"{name} must be numeric, got dtype {arr.dtype}")
    arr = arr.astype(dtype, copy=False)
    bad = ~np.isfinite(arr)
    if bad.any():
        row = int(np.argwhere(bad)[0][0])
        raise ValueError(f"{name} has {int(bad.any(axis=1).sum())} row(s) with NaN or infinite values (first: row {row})")
    return arr


def uniform_start(cfg: GIOConfig, dim: int, rng: np.random.Generator) -> np.ndarray:
    """``uniform_start_size`` points drawn uniformly in [low, high)^dim, rows scaled to unit
    length when ``normalize`` (a zero row stays zero)."""
    w = rng.uniform(cfg.uniform_low, cfg.uniform_high, size=(cfg.uniform_start_size, dim))
    if cfg.normalize:
        norms = np.linalg.norm(w, axis=1, keepdims=True)
        w = np.where(norms > 0, w / np.where(norms > 0, norms, 1.0), w)
    return w


def select(
    train,
    target,
    init=None,
    config: Optional[GIOConfig] = None,
    weights=None,
    budget: Optional[float] = None,
    **options,
) -> SelectionResult:
    """Select rows of ``train`` (the pool G, [N, d]) whose set best matches ``target``
    (X, [n, d]) under the relaxed k-NN KL, greedily, as GIO does.

    ``init`` is an optional initial set D ([m, d], not pool rows). Options are the fields
    of :class:`GIOConfig`, given as ``config`` or as keyword arguments.

    With a ``budget``, GIO keeps choosing, in its order, until the ``weights`` of the selected
    rows (e.g. the pairs or tokens each centroid stands for; default 1 a row) reach it, also
    past the point where its stop criterion, ``max_iter`` or ``max_data_size`` would have
    stopped it (resets are off); ``own_stop_points`` of the result says where that was.
    """
    if config is None:
        config = GIOConfig.from_dict(options)
    elif options:
        raise ValueError("give either config or keyword options, not both")
    if budget is not None and not budget > 0:
        raise ValueError(f"budget must be > 0, got {budget}")
    if config.dtype == "float64":
        with jax.enable_x64(True):
            return _select(train, target, init, config, weights, budget)
    return _select(train, target, init, config, weights, budget)


def _select(train, target, init, cfg: GIOConfig, weights, budget: Optional[float]) -> SelectionResult:
    t0 = time.perf_counter()
    dtype = np.float64 if cfg.dtype == "float64" else np.float32
    g = _as_matrix("train", train, dtype)
    x = _as_matrix("target", target, dtype)
    check_target(x, cfg.k)
    n, d = x.shape
    if g.shape[1] != d:
        raise ValueError(f"train has dimension {g.shape[1]} but target has {d}")
    pool_n = g.shape[0]
    rng = np.random.default_rng(cfg.seed)

    used0 = np.zeros(pool_n, dtype=bool)
    init_rows = np.zeros(0, dtype=np.int64)
    if init is not None:
        if cfg.random_init_pct:
            raise ValueError("give an initial set or random_init_pct, not both")
        w0 = _as_matrix("init", init, dtype)
        if w0.shape[1] != d:
            raise ValueError(f"init has dimension {w0.shape[1]} but target has {d}")
    elif cfg.random_init_pct:
        amount = int(cfg.random_init_pct * pool_n)
        if amount < 1:
            raise ValueError(
                f"random_init_pct={cfg.random_init_pct} of a pool of {pool_n} rows is no row at all"
            )
        init_rows = rng.choice(pool_n, size=amount, replace=False).astype(np.int64)
        used0[init_rows] = True
        w0 = g[init_rows]
    else:
        w0 = uniform_start(cfg, d, rng).astype(dtype)
    m0 = w0.shape[0]
    discard = cfg.discard_nearest_for_xy
    if discard and m0 < 2:
        raise ValueError("discard_nearest_for_xy needs an initial set of at least 2 points")

    xj, gj, wj = jnp.asarray(x), jnp.asarray(g), jnp.asarray(w0)
    eps = jnp.asarray(cfg.eps, dtype)
    x_sq = jnp.sum(xj * xj, axis=1)
    x_mean = jnp.mean(xj, axis=0)
    self_term = d * self_knn_log_mean(xj, cfg.k, cfg.eps)
    sum_log0 = jnp.sum(log_dist_sums(xj, wj, cfg.eps))
    min_log0 = min_log_dists(xj, wj, cfg.eps) if discard else jnp.zeros(n, dtype)

    criterion = CRITERION_CODE[cfg.stop_criterion]
    data_limit = int(cfg.max_data_size * pool_n) if cfg.stop_criterion == "data_size" else cfg.max_iter
    own_limit = min(cfg.max_iter, data_limit)
    budgeted = budget is not None
    w = np.ones(pool_n) if weights is None else np.asarray(weights, dtype=np.float64)
    if w.shape != (pool_n,) or not np.all(np.isfinite(w)) or (w < 0).any():
        raise ValueError(f"weights must be {pool_n} finite values >= 0, one per train row")
    accept_limit = pool_n if budgeted else own_limit
    epochs = cfg.max_resets + 1 if cfg.uses_resets and not budgeted else 1
    buffer = max(1, min(accept_limit, pool_n * epochs))
    consts = jnp.asarray(kl_constants(m0 + buffer + 1, n, cfg.k), dtype)

    cols0 = m0 - 1 if discard else m0
    initial_kl = d * (sum_log0 - (jnp.sum(min_log0) if discard else 0.0)) / (n * cols0) - self_term + consts[m0]

    if cfg.v_init == "jump":
        v0 = xj[int(rng.integers(n))]
    else:
        v0 = x_mean

    if cfg.optimizer == "exact":
        pool_scores = log_dist_sums(xj, gj, cfg.eps)
        if discard:
            if n * pool_n > MAX_EXACT_DISCARD_ENTRIES:
                raise ValueError(
                    f"optimizer='exact' with discard_nearest_for_xy keeps an n x N matrix; "
                    f"{n} x {pool_n} is over {MAX_EXACT_DISCARD_ENTRIES} entries"
                )
            pool_logd = log_dist(sq_dists(xj, gj), eps)
        else:
            pool_logd = jnp.zeros((1, 1), dtype)
    else:
        pool_scores = jnp.zeros(1, dtype)
        pool_logd = jnp.zeros((1, 1), dtype)

    inputs = LoopInputs(
        x=xj, x_sq=x_sq, x_mean=x_mean, pool=gj, pool_sq=jnp.sum(gj * gj, axis=1),
        pool_scores=pool_scores, pool_logd=pool_logd, kl_const=consts,
        self_term=jnp.asarray(self_term, dtype), eps=eps,
        step_unit=jnp.asarray(0.0, dtype),
        grad_desc_iter=jnp.int32(cfg.grad_desc_iter),
        random_restart_prob=jnp.asarray(cfg.random_restart_prob, dtype),
        max_resets=jnp.int32(cfg.max_resets), max_seq=jnp.int32(cfg.max_sequential_increases),
        min_difference=jnp.asarray(cfg.min_difference, dtype), min_kl=jnp.asarray(cfg.min_kl, dtype),
        accept_limit=jnp.int32(accept_limit),
        weights=jnp.asarray(w if budgeted else np.zeros(1), dtype),
        budget=jnp.asarray(budget if budgeted else 0.0, dtype),
        own_limit=jnp.int32(own_limit),
        own_limit_code=jnp.int32(CRITERION_CODE["data_size"] if data_limit < cfg.max_iter else MAX_ITER),
    )
    if cfg.optimizer == "gradient":
        scale = _scale_factor(cfg, inputs, v0, min_log0, m0, discard)
        inputs = inputs._replace(step_unit=jnp.asarray(cfg.lr * scale * d / n, dtype))
    else:
        scale = float("nan")

    state = LoopState(
        v=v0, used=jnp.asarray(used0), n_avail=jnp.int32(pool_n - int(used0.sum())),
        sum_log=jnp.asarray(sum_log0, dtype), sum_comp=jnp.asarray(0.0, dtype), min_log=min_log0,
        m=jnp.int32(m0), kl_prev=jnp.asarray(initial_kl, dtype), n_acc=jnp.int32(0),
        iters=jnp.int32(0), resets=jnp.int32(0), seq=jnp.int32(0), just_reset=jnp.bool_(False),
        stop=jnp.int32(0), gd_steps=jnp.int32(0), key=jax.random.PRNGKey(cfg.seed),
        selected=jnp.full(buffer, -1, jnp.int32), kls=jnp.zeros(buffer, dtype),
        weight=jnp.asarray(w[init_rows].sum() if budgeted else 0.0, dtype),
        own_stop=jnp.int32(-1), own_code=jnp.int32(0),
    )
    spec = LoopSpec(criterion, cfg.v_init, cfg.optimizer, discard, cfg.uses_resets and not budgeted, buffer, budgeted)
    t1 = time.perf_counter()
    compiled = build_loop(spec).lower(inputs, state).compile()
    t2 = time.perf_counter()
    final = jax.block_until_ready(compiled(inputs, state))
    t3 = time.perf_counter()

    n_acc = int(final.n_acc)
    code = int(final.stop)
    if code == BUDGET:
        reason = "budget"
    elif code:
        reason = STOP_REASONS[code]
    elif budgeted:
        reason = "pool_exhausted"
    elif cfg.stop_criterion == "data_size" and n_acc >= data_limit:
        reason = "data_size"
    elif n_acc >= cfg.max_iter:
        reason = "max_iter"
    else:
        reason = "pool_exhausted"
    result = SelectionResult(
        selected_indices=np.asarray(final.selected[:n_acc], dtype=np.int64),
        kl_curve=np.asarray(final.kls[:n_acc], dtype=np.float64),
        initial_kl=float(initial_kl),
        stop_reason=reason,
        iterations=int(final.iters),
        n_resets=int(final.resets),
        gd_steps=int(final.gd_steps),
        init_indices=init_rows,
        init_size=m0,
        config=cfg,
        timings={"setup_s": t1 - t0, "compile_s": t2 - t1, "loop_s": t3 - t2, "total_s": t3 - t0},
    )
    if budgeted:
        own = int(final.own_stop)
        result.budget = float(budget)
        result.weight_selected = float(final.weight)
        result.own_stop_points = own if own >= 0 else None
        result.own_stop_reason = OWN_STOP_REASONS.get(int(final.own_code)) if own >= 0 else None
    result.timings["scale_factor"] = scale
    log.info(
        "GIO selected %d points in %d iterations (%.3f s loop, %.3f s compile); stop: %s; KL %.4f -> %.4f",
        n_acc, result.iterations, t3 - t2, t2 - t1, reason, result.initial_kl, result.final_kl,
    )
    return result


def _scale_factor(cfg: GIOConfig, inputs: LoopInputs, v0, min_log0, m0: int, discard: bool) -> float:
    """The reference's 'auto' scale: |v0| / |gradient at v0| for the initial set."""
    if cfg.scale_factor != "auto":
        return float(cfg.scale_factor)
    n, d = inputs.x.shape
    cols = m0 if discard else m0 + 1
    grad = d / (n * cols) * grad_direction(inputs, v0, min_log0, discard)
    gnorm = float(jnp.linalg.norm(grad))
    if not np.isfinite(gnorm) or gnorm == 0.0:
        raise ValueError(
            "scale_factor='auto' failed: the gradient at the initial v is zero or not finite "
            "(with discard_nearest_for_xy, v may be nearer to every target point than the initial set "
            "is); give a numeric scale_factor"
        )
    return float(jnp.linalg.norm(v0)) / gnorm
