"""k-NN estimators of KL(X || Y) on vectors: the relaxed one GIO optimises and the standard one.

Distances follow the reference package exactly: squared distances by expansion
(|x|^2 - 2 x.y + |y|^2) clipped to [1e-10, 1e20], then square root. Large inputs are
processed in row blocks so memory stays bounded.
"""
from __future__ import annotations

import math
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

D2_MIN = 1e-10
D2_MAX = 1e20
BLOCK_ROWS = 2048


def sq_dists(a: jax.Array, b: jax.Array, a_sq: jax.Array | None = None,
             b_sq: jax.Array | None = None) -> jax.Array:
    """Clipped squared Euclidean distances [len(a), len(b)], as the reference computes them."""
    a_sq = jnp.sum(a * a, axis=-1) if a_sq is None else a_sq
    b_sq = jnp.sum(b * b, axis=-1) if b_sq is None else b_sq
    d2 = a_sq[:, None] - 2.0 * (a @ b.T) + b_sq[None, :]
    return jnp.clip(d2, D2_MIN, D2_MAX)


def log_dist(d2: jax.Array, eps: float) -> jax.Array:
    """log(distance + eps) from clipped squared distances."""
    return jnp.log(jnp.sqrt(d2) + eps)


@jax.jit
def _col_log_sums(x: jax.Array, y: jax.Array, eps: float) -> jax.Array:
    return jnp.sum(log_dist(sq_dists(x, y), eps), axis=0)


@jax.jit
def _row_min_log(x: jax.Array, y: jax.Array, eps: float) -> jax.Array:
    return jnp.min(log_dist(sq_dists(x, y), eps), axis=1)


def _blocks(n: int, size: int = BLOCK_ROWS):
    for start in range(0, n, size):
        yield start, min(start + size, n)


def _by_blocks(fn: Callable[[jax.Array], jax.Array], rows: jax.Array) -> jax.Array:
    parts = [fn(rows[s:e]) for s, e in _blocks(rows.shape[0])]
    return jnp.concatenate(parts) if parts else jnp.zeros((0,), rows.dtype)


def log_dist_sums(x: jax.Array, y: jax.Array, eps: float) -> jax.Array:
    """For each row y_j: sum_i log(|x_i - y_j| + eps). Shape [len(y)]."""
    return _by_blocks(lambda yb: _col_log_sums(x, yb, eps), y)


def min_log_dists(x: jax.Array, y: jax.Array, eps: float) -> jax.Array:
    """For each row x_i: min_j log(|x_i - y_j| + eps). Shape [len(x)]."""
    return _by_blocks(lambda xb: _row_min_log(xb, y, eps), x)


def _kth_nn_d2(queries: jax.Array, ref: jax.Array, rank: int) -> jax.Array:
    """Squared distance from each query to its rank-th nearest row of ref (rank 0 = nearest)."""
    neg, _ = jax.lax.top_k(-sq_dists(queries, ref), rank + 1)
    return -neg[:, rank]


_kth_nn_d2_jit = jax.jit(_kth_nn_d2, static_argnums=2)


def self_knn_log_mean(x: jax.Array, k: int, eps: float) -> jax.Array:
    """mean_i log(rho_k(x_i) + eps), rho_k the distance to the k-th neighbour of x_i in X
    (the nearest, x_i itself, skipped as in the reference)."""
    d2 = _by_blocks(lambda xb: _kth_nn_d2_jit(xb, x, k), x)
    return jnp.mean(jnp.log(jnp.sqrt(d2) + eps))


def kl_constant(m: int, n: int, k: int) -> float:
    """mean_{j=1..m} log(k m / (j (n - 1))): the count term of the relaxed estimator."""
    return math.log(k) + math.log(m) - math.log(n - 1) - math.lgamma(m + 1) / m


def kl_constants(max_m: int, n: int, k: int) -> np.ndarray:
    """kl_constant for m = 0..max_m (entry 0 unused, set to 0)."""
    out = np.zeros(max_m + 1, dtype=np.float64)
    for m in range(1, max_m + 1):
        out[m] = kl_constant(m, n, k)
    return out


def check_target(x: np.ndarray, k: int) -> None:
    if x.ndim != 2:
        raise ValueError(f"target must be a 2-D array, got shape {x.shape}")
    if x.shape[0] < k + 1:
        raise ValueError(
            f"target has {x.shape[0]} rows; the k-NN estimator with k={k} needs at least k+1={k + 1}"
        )


def relaxed_kl(x, w, k: int = 5, eps: float = 1e-8, discard_nearest_for_xy: bool = False) -> float:
    """The relaxed k-NN estimate of KL(X || W) that GIO minimises (reference
    ``GIOKL.calculate_statistical_distance``): every x_i is compared with all of W
    (all but its nearest point with ``discard_nearest_for_xy``)."""
    x = jnp.asarray(x)
    w = jnp.asarray(w, dtype=x.dtype)
    check_target(np.asarray(x), k)
    n, d = x.shape
    m = w.shape[0]
    if w.ndim != 2 or w.shape[1] != d:
        raise ValueError(f"W has shape {w.shape}; expected [m, {d}]")
    cols = m - 1 if discard_nearest_for_xy else m
    if cols < 1:
        raise ValueError(f"W needs at least {2 if discard_nearest_for_xy else 1} rows, has {m}")
    total = jnp.sum(log_dist_sums(x, w, eps))
    if discard_nearest_for_xy:
        total = total - jnp.sum(min_log_dists(x, w, eps))
    xx = self_knn_log_mean(x, k, eps)
    return float(d * total / (n * cols) - d * xx + kl_constant(m, n, k))


def knn_kl(x, y, k: int = 5) -> float:
    """Standard k-NN estimator of KL(X || Y) (Wang, Kulkarni and Verdu, 2009):
    (d/n) sum_i log(nu_k(i) / rho_k(i)) + log(m / (n - 1)), with rho_k the distance from
    x_i to its k-th neighbour in X without itself and nu_k the distance to its k-th
    neighbour in Y."""
    x = jnp.asarray(x)
    y = jnp.asarray(y, dtype=x.dtype)
    check_target(np.asarray(x), k)
    n, d = x.shape
    m = y.shape[0]
    if y.ndim != 2 or y.shape[1] != d:
        raise ValueError(f"Y has shape {y.shape}; expected [m, {d}]")
    if m < k:
        raise ValueError(f"Y has {m} rows; the k-NN estimator with k={k} needs at least {k}")
    rho = _by_blocks(lambda xb: _kth_nn_d2_jit(xb, x, k), x)
    nu = _by_blocks(lambda xb: _kth_nn_d2_jit(xb, y, k - 1), x)
    log_ratio = 0.5 * (jnp.log(nu) - jnp.log(rho))
    return float(d * jnp.mean(log_ratio) + math.log(m / (n - 1)))
