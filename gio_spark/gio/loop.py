"""The GIO loop as one jitted ``lax.while_loop``.

Pure JAX, no host round trips per iteration. The pool is masked, never copied; the KL is
updated incrementally from per-point log-distance sums (Kahan-compensated), so adding a
point costs O(n d). With ``discard_nearest_for_xy=False`` the gradient in v depends on
|W| only; with True it also needs, per target row, the distance to its nearest selected
point, which is kept up to date in the loop state.
"""
from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from .estimators import D2_MAX, D2_MIN

# stop codes; 0 means running. Names are the stop reasons reported to users.
STOP_REASONS = {
    1: "increase",
    2: "max_resets",
    3: "min_difference",
    4: "sequential_increase_tolerance",
    5: "min_kl",
}
CRITERION_CODE = {name: code for code, name in STOP_REASONS.items()}
CRITERION_CODE["data_size"] = 6
BUDGET = 7  # the selected points' weights reached the budget
MAX_ITER = 8  # where GIO's own stop was max_iter (budget runs)


class LoopSpec(NamedTuple):
    """Static (compile-time) choices of the loop."""

    criterion: int
    v_init: str
    optimizer: str
    discard_nearest: bool
    resets: bool
    buffer: int
    budget: bool = False  # run until the weights reach the budget; the criterion only marks GIO's own stop


class LoopInputs(NamedTuple):
    x: jax.Array  # [n, d] target
    x_sq: jax.Array  # [n]
    x_mean: jax.Array  # [d]
    pool: jax.Array  # [N, d]
    pool_sq: jax.Array  # [N]
    pool_scores: jax.Array  # [N] sum_i log(|x_i - g| + eps) (exact optimizer) or [1]
    pool_logd: jax.Array  # [n, N] log-distances (exact optimizer with discard) or [1, 1]
    kl_const: jax.Array  # [m_max + 1] count term of the estimator by |W|
    self_term: jax.Array  # d * mean_i log(rho_k(x_i) + eps)
    eps: jax.Array
    step_unit: jax.Array  # lr * scale * d / n; divided by the column count per step
    grad_desc_iter: jax.Array
    random_restart_prob: jax.Array
    max_resets: jax.Array
    max_seq: jax.Array
    min_difference: jax.Array
    min_kl: jax.Array
    accept_limit: jax.Array
    weights: jax.Array  # [N] weight of each pool point (budget runs) or [1]
    budget: jax.Array  # the weight to reach (budget runs)
    own_limit: jax.Array  # points after which GIO's own limits (max_iter, data_size) would stop
    own_limit_code: jax.Array  # which of the two that is


class LoopState(NamedTuple):
    v: jax.Array
    used: jax.Array  # [N] bool: not available as a candidate
    n_avail: jax.Array
    sum_log: jax.Array  # sum over W and X of log-distances (Kahan sum)
    sum_comp: jax.Array  # Kahan compensation
    min_log: jax.Array  # [n] min over W of log-distance (discard_nearest only)
    m: jax.Array  # |W|, initial points included
    kl_prev: jax.Array
    n_acc: jax.Array
    iters: jax.Array
    resets: jax.Array
    seq: jax.Array  # consecutive accepted increases
    just_reset: jax.Array
    stop: jax.Array
    gd_steps: jax.Array
    key: jax.Array
    selected: jax.Array  # [buffer] pool rows in order of selection
    kls: jax.Array  # [buffer] KL after each accepted point
    weight: jax.Array  # weight of the selection so far (budget runs)
    own_stop: jax.Array  # points accepted when GIO's own criterion would have stopped, -1 before
    own_code: jax.Array  # which criterion that was


def _log_d(d2: jax.Array, eps: jax.Array) -> jax.Array:
    return jnp.log(jnp.sqrt(jnp.clip(d2, D2_MIN, D2_MAX)) + eps)


def grad_direction(inp: LoopInputs, v: jax.Array, min_log: jax.Array, discard: bool) -> jax.Array:
    """Gradient in v of sum_i log(|x_i - v| + eps) (terms where v is x_i's nearest
    selected point dropped when ``discard``); the estimator's gradient is this times
    d / (n * columns)."""
    d2 = inp.x_sq - 2.0 * (inp.x @ v) + v @ v
    r = jnp.sqrt(jnp.clip(d2, D2_MIN, D2_MAX))
    c = jnp.where((d2 > D2_MIN) & (d2 < D2_MAX), 1.0 / (r * (r + inp.eps)), 0.0)
    if discard:
        c = jnp.where(jnp.log(r + inp.eps) < min_log, 0.0, c)
    return jnp.sum(c) * v - c @ inp.x


def _descend(inp: LoopInputs, v, steps, step, min_log, discard):
    """Up to ``steps`` gradient steps; stops early, exactly, once v is a fixed point."""

    def cond(c):
        t, _, moving = c
        return (t < steps) & moving

    def body(c):
        t, v, _ = c
        nv = v - step * grad_direction(inp, v, min_log, discard)
        return t + 1, nv, jnp.any(nv != v)

    t, v, _ = lax.while_loop(cond, body, (jnp.int32(0), v, jnp.bool_(True)))
    return v, t


def _kahan_add(s, comp, value):
    y = value - comp
    t = s + y
    return t, (t - s) - y


@lru_cache(maxsize=None)
def build_loop(spec: LoopSpec):
    """The jitted loop for one static spec: (inputs, initial state) -> final state."""
    discard = spec.discard_nearest

    def cols(m, dtype):
        return (m - 1 if discard else m).astype(dtype)

    def kl_of(inp, total, m, n):
        c = cols(m, total.dtype)
        return inp.x.shape[1] * total / (n * c) - inp.self_term + inp.kl_const[m]

    def body(inp: LoopInputs, s: LoopState) -> LoopState:
        n = inp.x.shape[0]
        key, k_restart, k_jump = jax.random.split(s.key, 3)
        restart = jax.random.uniform(k_restart) < inp.random_restart_prob
        long = (s.iters == 0) | s.just_reset | restart
        steps = jnp.where(long, 3 * inp.grad_desc_iter, inp.grad_desc_iter)

        if spec.optimizer == "gradient":
            step = inp.step_unit / cols(s.m + 1, inp.step_unit.dtype)
            v, taken = _descend(inp, s.v, steps, step, s.min_log, discard)
            dist = jnp.sqrt(jnp.sum((inp.pool - v) ** 2, axis=1))
            idx = jnp.argmin(jnp.where(s.used, jnp.inf, dist))
            g = inp.pool[idx]
            logd = _log_d(inp.x_sq - 2.0 * (inp.x @ g) + inp.pool_sq[idx], inp.eps)
            point_sum = jnp.sum(logd)
        else:
            v, taken = s.v, jnp.int32(0)
            if discard:
                score = inp.pool_scores - jnp.sum(jnp.minimum(s.min_log[:, None], inp.pool_logd), axis=0)
            else:
                score = inp.pool_scores
            idx = jnp.argmin(jnp.where(s.used, jnp.inf, score))
            point_sum = inp.pool_scores[idx]
            logd = inp.pool_logd[:, idx] if discard else s.min_log

        new_sum, new_comp = _kahan_add(s.sum_log, s.sum_comp, point_sum)
        if discard:
            new_min = jnp.minimum(s.min_log, logd)
            total = new_sum - new_comp - jnp.sum(new_min)
        else:
            new_min = s.min_log
            total = new_sum - new_comp
        kl = kl_of(inp, total, s.m + 1, n)

        if spec.v_init == "mean":
            v = inp.x_mean
        elif spec.v_init == "jump":
            v = inp.x[jax.random.randint(k_jump, (), 0, n)]

        inc = kl > s.kl_prev
        crit = spec.criterion
        if crit in (CRITERION_CODE["increase"], CRITERION_CODE["max_resets"]):
            bad = inc
        elif crit == CRITERION_CODE["min_difference"]:
            bad = (s.kl_prev - kl) < inp.min_difference
        elif crit == CRITERION_CODE["sequential_increase_tolerance"]:
            bad = inc & (s.seq >= inp.max_seq)
        else:
            bad = jnp.bool_(False)
        if spec.resets:
            reset = bad & (s.resets < inp.max_resets)
        else:
            reset = jnp.bool_(False)
        halt = bad & ~reset
        accept = ~bad
        own_stop, own_code, weight = s.own_stop, s.own_code, s.weight
        if spec.budget:  # every point is taken; the criterion only marks where GIO would have stopped
            limit = s.n_acc >= inp.own_limit
            here = (own_stop < 0) & (bad | limit)
            code = jnp.where(bad, crit, inp.own_limit_code)
            if crit == CRITERION_CODE["min_kl"]:  # min_kl keeps the point that crosses the threshold
                crossed = (own_stop < 0) & ~limit & (kl < inp.min_kl)
                own_stop = jnp.where(crossed, s.n_acc + 1, own_stop)
                own_code = jnp.where(crossed, crit, own_code)
            own_stop = jnp.where(here, s.n_acc, own_stop)
            own_code = jnp.where(here, code, own_code)
            weight = s.weight + inp.weights[idx]
            halt, accept, reset = weight >= inp.budget, jnp.bool_(True), jnp.bool_(False)

        if spec.v_init == "prev_opt":
            v = jnp.where(reset, inp.x_mean, v)
        stop = jnp.where(halt, BUDGET if spec.budget else crit, 0)
        if crit == CRITERION_CODE["min_kl"] and not spec.budget:
            stop = jnp.where(accept & (kl < inp.min_kl), crit, stop)

        slot = jnp.minimum(s.n_acc, spec.buffer - 1)
        used = jnp.where(reset, jnp.zeros_like(s.used), s.used.at[idx].set(s.used[idx] | accept))
        n_avail = jnp.where(reset, s.used.shape[0], s.n_avail - accept.astype(jnp.int32))
        return LoopState(
            v=v,
            used=used,
            n_avail=n_avail,
            sum_log=jnp.where(accept, new_sum, s.sum_log),
            sum_comp=jnp.where(accept, new_comp, s.sum_comp),
            min_log=jnp.where(accept, new_min, s.min_log),
            m=s.m + accept.astype(jnp.int32),
            kl_prev=jnp.where(accept, kl, s.kl_prev),
            n_acc=s.n_acc + accept.astype(jnp.int32),
            iters=s.iters + 1,
            resets=s.resets + reset.astype(jnp.int32),
            seq=jnp.where(accept, jnp.where(inc, s.seq + 1, 0), s.seq),
            just_reset=reset,
            stop=stop.astype(jnp.int32),
            gd_steps=s.gd_steps + taken,
            key=key,
            selected=jnp.where(accept, s.selected.at[slot].set(idx.astype(jnp.int32)), s.selected),
            kls=jnp.where(accept, s.kls.at[slot].set(kl), s.kls),
            weight=weight,
            own_stop=own_stop,
            own_code=own_code,
        )

    def cond(inp: LoopInputs, s: LoopState):
        return (s.stop == 0) & (s.n_acc < inp.accept_limit) & (s.n_avail > 0)

    @jax.jit
    def run(inp: LoopInputs, state: LoopState) -> LoopState:
        return lax.while_loop(lambda s: cond(inp, s), lambda s: body(inp, s), state)

    return run
