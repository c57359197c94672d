"""GIO selection speed: the reference grad-info-opt 0.1.2 against gio_spark.gio on the same
seeded input, in the paper's WMT setting (K=1500 centroids, d=768, k=5, grad_desc_iter=50,
lr=0.01, v_init prev_opt, a uniform start of 20 unit vectors).

Prints seconds per iteration of each, their ratio, whether the selections agree, and the time
of 1000 iterations of ours (stop on data_size). The reference part runs where grad-info-opt
is installed (it starts a local SparkSession: set SPARK_LOCAL_IP=127.0.0.1).

    python benchmarks/bench_select.py [--ref-iters 4] [--long-iters 1000] [--dtype float32]
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import random
import time

import jax
import numpy as np

from gio_spark.gio import GIOConfig, select


def make_input(seed: int = 0, n: int = 1500, d: int = 768, start: int = 20):
    """Unit vectors: a pool from 30 clusters, a target from 10 of them, a uniform start."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(30, d))
    centers /= np.linalg.norm(centers, axis=1, keepdims=True)

    def draw(count, which):
        rows = centers[rng.choice(which, size=count)] + rng.normal(scale=0.6 / np.sqrt(d), size=(count, d))
        return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)

    pool = draw(n, np.arange(30))
    target = draw(n, np.arange(10))
    init = rng.uniform(-1, 1, size=(start, d))
    init = (init / np.linalg.norm(init, axis=1, keepdims=True)).astype(np.float32)
    return pool, target, init


PAPER = dict(k=5, grad_desc_iter=50, lr=0.01, v_init="prev_opt", stop_criterion="data_size", max_data_size=1.0)


def run_ours(pool, target, init, iters: int, dtype: str):
    cfg = GIOConfig(max_iter=iters, dtype=dtype, **PAPER)
    select(pool, target, init=init, config=cfg)  # warm: compile once, as a long run would
    best = None
    for _ in range(3):
        r = select(pool, target, init=init, config=cfg)
        if best is None or r.timings["loop_s"] < best.timings["loop_s"]:
            best = r
    return best


def run_reference(pool, target, init, iters: int):
    """The reference fit for ``iters`` added points; returns (seconds, GD runs, selected rows)."""
    import jax.numpy as jnp
    from GIO import GIOKL

    random.seed(0)
    np.random.seed(0)
    gio = GIOKL.GIOKL(uniform_start_size=len(init), dim=pool.shape[1])  # starts Spark: not timed
    opts = {k: v for k, v in PAPER.items()}
    t = time.perf_counter()
    w, kls, _ = gio.fit(jnp.array(pool), jnp.array(target), D=jnp.array(init), max_iter=iters - 1, **opts)
    seconds = time.perf_counter() - t
    w = np.asarray(w)[len(init):]
    rows = [int(np.flatnonzero(np.all(pool == r, axis=1))[0]) for r in w]
    # with max_iter=M the reference adds M+1 points and runs M+2 descents (the last is discarded)
    return seconds, iters + 1, rows, [float(x) for x in kls]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ref-iters", type=int, default=4)
    ap.add_argument("--long-iters", type=int, default=1000)
    ap.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    ap.add_argument("--skip-reference", action="store_true")
    ap.add_argument("--json", help="also write the figures to this file")
    args = ap.parse_args()

    pool, target, init = make_input()
    figures: dict = {"device": str(jax.devices()[0]), "input": list(pool.shape), "dtype": args.dtype}
    ours = run_ours(pool, target, init, args.ref_iters, args.dtype)
    ours_per_iter = ours.timings["loop_s"] / ours.iterations
    figures.update(ours_iterations=ours.iterations, ours_s_per_iter=ours_per_iter,
                   ours_gd_steps=ours.gd_steps, ours_compile_s=ours.timings["compile_s"])
    print(f"ours:      {ours_per_iter * 1e3:9.3f} ms/iteration over {ours.iterations} iterations "
          f"({ours.gd_steps} gradient steps; compile {ours.timings['compile_s']:.2f} s, once per shape)")

    have_ref = importlib.util.find_spec("GIO") is not None
    if have_ref and not args.skip_reference:
        seconds, runs, rows, kls = run_reference(pool, target, init, args.ref_iters)
        ref_per_iter = seconds / runs
        same = rows == ours.selected_indices.tolist()
        ratio = ref_per_iter / ours_per_iter
        figures.update(ref_s_per_iter=ref_per_iter, ratio=ratio, same_selection=same,
                       max_rel_kl_diff=float(np.max(np.abs(np.array(kls) - ours.kl_curve) / np.abs(kls))))
        print(f"reference: {ref_per_iter * 1e3:9.1f} ms/iteration over {runs} iterations")
        print(f"ratio:     {ratio:9.0f}x  (target >= 1000x)")
        print(f"same selection: {same}  (ours {ours.selected_indices.tolist()}, reference {rows})")
    else:
        print("reference: grad-info-opt not installed; skipped (pip install grad-info-opt==0.1.2)")

    long = run_ours(pool, target, init, args.long_iters, args.dtype)
    figures.update(long_iterations=long.iterations, long_loop_s=long.timings["loop_s"],
                   long_total_s=long.timings["total_s"], long_gd_steps=long.gd_steps)
    print(f"ours, {long.iterations} iterations: {long.timings['loop_s']:.2f} s loop, "
          f"{long.timings['total_s']:.2f} s with setup and compile ({long.gd_steps} gradient steps; target < 10 s)")
    exact = select(pool, target, init=init, config=GIOConfig(max_iter=args.long_iters, dtype=args.dtype,
                                                           optimizer="exact", **PAPER))
    figures.update(exact_loop_s=exact.timings["loop_s"], exact_final_kl=exact.final_kl, gradient_final_kl=long.final_kl)
    print(f"exact optimizer, {exact.iterations} iterations: {exact.timings['loop_s']:.2f} s loop; relaxed KL after "
          f"{len(exact.kl_curve)} points: exact {exact.final_kl:.4f}, gradient {long.final_kl:.4f}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(figures, fh, indent=1)


if __name__ == "__main__":
    main()
