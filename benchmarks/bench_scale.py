"""Scale: GIO over 1,000,000 synthetic precomputed vectors on one machine; prints time and
peak memory.

``--mode core``: the pool rows go straight to the selection core (no quantization).
``--mode job``: the vectors are written as Parquet and the Spark job runs end to end
(vectors format, MLlib k-means, GIO on the centroids, explosion); only centroids and counts
reach the driver, so the Python driver's memory stays small whatever the pool size.

    python benchmarks/bench_scale.py --mode core [--rows 1000000] [--dim 64]
    python benchmarks/bench_scale.py --mode job  [--rows 1000000] [--dim 32] [--k 500]
"""
from __future__ import annotations

import argparse
import resource
import shutil
import time
from pathlib import Path

import numpy as np


def synthetic(rows: int, dim: int, seed: int = 0, clusters: int = 200):
    """Unit-length vectors (like sentence embeddings) around ``clusters`` centres; the target
    comes from the first 10 of them."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(clusters, dim)).astype(np.float32)
    centers /= np.linalg.norm(centers, axis=1, keepdims=True)
    noise = np.float32(0.5 / np.sqrt(dim))
    labels = rng.integers(0, clusters, size=rows)
    pool = centers[labels] + noise * rng.standard_normal(size=(rows, dim), dtype=np.float32)
    target = centers[rng.integers(0, 10, size=2000)] + noise * rng.standard_normal(size=(2000, dim), dtype=np.float32)
    pool /= np.linalg.norm(pool, axis=1, keepdims=True)
    target /= np.linalg.norm(target, axis=1, keepdims=True)
    return pool, target, labels


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def jvm_peak_rss_mib(spark) -> float:
    pid = spark.sparkContext._jvm.java.lang.ProcessHandle.current().pid()
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def run_core(args) -> None:
    from gio_spark.gio import select

    pool, target, labels = synthetic(args.rows, args.dim)
    print(f"pool {pool.shape} ({pool.nbytes / 2**20:.0f} MiB), target {target.shape}; peak RSS so far {peak_rss_mib():.0f} MiB")
    t = time.perf_counter()
    r = select(pool, target, max_iter=args.select, stop_criterion="data_size", v_init="jump", seed=0)
    seconds = time.perf_counter() - t
    share = float(np.mean(labels[r.selected_indices] < 10))
    print(f"selected {len(r.selected_indices)} of {args.rows:,} rows in {seconds:.1f} s "
          f"({r.timings['loop_s']:.1f} s loop, {r.iterations} iterations); share from the target's clusters {share:.3f}")
    print(f"peak RSS of the process: {peak_rss_mib():.0f} MiB")


def run_job(args) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from gio_spark.job.config import config_from_dict
    from gio_spark.job.pipeline import run_job as job
    from gio_spark.job.session import get_spark

    work = Path(args.work)
    shutil.rmtree(work, ignore_errors=True)
    (work / "pool").mkdir(parents=True)
    pool, target, labels = synthetic(args.rows, args.dim)
    chunk = 200_000
    for i, start in enumerate(range(0, args.rows, chunk)):
        part = pool[start:start + chunk]
        table = pa.table({
            "id": pa.array(np.arange(start, start + len(part), dtype=np.int64)),
            "features": pa.FixedSizeListArray.from_arrays(pa.array(part.ravel()), args.dim).cast(pa.list_(pa.float32())),
            "label": pa.array(labels[start:start + chunk]),
        })
        pq.write_table(table, work / "pool" / f"part-{i:03d}.parquet")
    pq.write_table(pa.table({
        "id": pa.array(np.arange(len(target), dtype=np.int64)),
        "features": pa.FixedSizeListArray.from_arrays(pa.array(target.ravel()), args.dim).cast(pa.list_(pa.float32())),
    }), work / "target.parquet")
    del pool
    print(f"wrote {args.rows:,} x {args.dim} vectors; Python peak RSS so far {peak_rss_mib():.0f} MiB", flush=True)
    spark = get_spark()
    cfg = config_from_dict({
        "train": {"path": str(work / "pool"), "format": "vectors"},
        "target": {"path": str(work / "target.parquet"), "format": "vectors"},
        "output": str(work / "out"), "if_exists": "overwrite",
        "quantize": {"k": args.k, "seed": 0, "max_iter": 10},
        "gio": {"max_iter": args.select, "v_init": "jump"},
    })
    t = time.perf_counter()
    manifest = job(cfg, spark)
    seconds = time.perf_counter() - t
    out = spark.read.parquet(str(work / "out" / "selected")).select("label").toPandas()
    print(f"job: {manifest['rows']['selected']:,} of {args.rows:,} pairs selected in {seconds:.0f} s "
          f"({len(manifest['selection']['chosen_clusters'])} of {args.k} clusters); "
          f"share from the target's clusters {np.mean(out.label < 10):.3f}")
    print("seconds per stage:", manifest["seconds"])
    print(f"peak RSS: Python driver {peak_rss_mib():.0f} MiB, JVM (driver and local executors) {jvm_peak_rss_mib(spark):.0f} MiB")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mode", choices=["core", "job"], default="core")
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--dim", type=int, default=None)
    ap.add_argument("--k", type=int, default=500)
    ap.add_argument("--select", type=int, default=300, help="max points to add")
    ap.add_argument("--work", default="/tmp/gio-bench-scale")
    args = ap.parse_args()
    if args.dim is None:
        args.dim = 64 if args.mode == "core" else 32
    (run_core if args.mode == "core" else run_job)(args)


if __name__ == "__main__":
    main()
