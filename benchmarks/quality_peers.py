"""The peers bench_quality sets beside the job, and its downstream measure.

Peers (each returns the pair ids it selects, ``n`` of them, best first):
- ``classifier``: logistic regression (scikit-learn, C=1) on the job's own vectors, the target's
  rows against a seeded uniform sample of ten times as many pool rows, the pool ranked by its
  logit (target duplicates left out, as the job leaves them out);
- ``moore-lewis``: cross-entropy difference (Moore & Lewis 2010) with OpusFilter's
  ``CrossEntropyDifferenceFilter`` and VariKN character LMs as OpusFilter trains them: an
  in-domain LM on the target's English side, a general LM on as many random pool sentences;
  the pool ranked by in-domain minus general cross-entropy, lowest first;
- ``dsir``: DSIR (PyPI ``data-selection``), hashed n-gram importance resampling;
- ``nearest``: the job's own nearest-target ranking (``max_cosine`` of ``--write-scores``);
- ``random``.

Downstream measure: a character n-gram LM (VariKN, as OpusFilter trains it) on a selection's
English side, and its perplexity (per character and word boundary, unknown characters counted)
on held-out target sentences that no method saw.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Sequence

import numpy as np

CLASSIFIER_SAMPLE = 10  # pool rows per target row


def classifier_select(pool_ids: np.ndarray, pool_vectors: np.ndarray, target_vectors: np.ndarray,
                      usable: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """The ``n`` usable pool pairs with the highest logit of a target-vs-pool classifier."""
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(seed)
    negatives = pool_vectors[rng.choice(len(pool_vectors), min(len(pool_vectors),
                                                               CLASSIFIER_SAMPLE * len(target_vectors)), replace=False)]
    x = np.vstack([target_vectors, negatives])
    y = np.r_[np.ones(len(target_vectors)), np.zeros(len(negatives))]
    logit = LogisticRegression(C=1.0, max_iter=5000).fit(x, y).decision_function(pool_vectors)
    logit = np.where(usable, logit, -np.inf)
    order = np.lexsort((pool_ids, -logit))
    return pool_ids[order[:n]]


@contextlib.contextmanager
def _quiet():
    """VariKN prints its progress from C to the process's stdout and stderr: send them nowhere."""
    saved = [os.dup(1), os.dup(2)]
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 1)
        os.dup2(null, 2)
        yield
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, null):
            os.close(fd)


def _char_lm(texts: Sequence[str], path: Path):
    """A VariKN character LM (OpusFilter's defaults) trained on ``texts``, written to ``path``."""
    from opusfilter import lm

    tokenizer = lm.LMTokenizer()  # characters, with <w> between words
    segmented = path.with_suffix(".seg")
    segmented.write_text("".join(" ".join(tokenizer.tokenize(t.strip())) + "\n" for t in texts), encoding="utf-8")
    with _quiet():
        lm.train(str(segmented), str(path))
    segmented.unlink()
    return path


def moore_lewis_select(pool_ids: np.ndarray, pool_texts: Sequence[str], target_texts: Sequence[str], n: int,
                       seed: int = 0) -> np.ndarray:
    """The ``n`` pool pairs with the lowest cross-entropy difference (OpusFilter's filter)."""
    from opusfilter.lm import CrossEntropyDifferenceFilter

    rng = np.random.default_rng(seed)
    general = [pool_texts[i] for i in rng.choice(len(pool_texts), min(len(pool_texts), len(target_texts)),
                                                 replace=False)]
    with tempfile.TemporaryDirectory() as work:
        id_lm = _char_lm(target_texts, Path(work) / "in-domain.arpa")
        nd_lm = _char_lm(general, Path(work) / "general.arpa")
        with _quiet():
            scorer = CrossEntropyDifferenceFilter(id_lm_params=[{"filename": str(id_lm)}],
                                                  nd_lm_params=[{"filename": str(nd_lm)}])
        with _quiet():
            scores = np.fromiter((s[0] for s in scorer.score([(t,) for t in pool_texts])), dtype=np.float64,
                                 count=len(pool_texts))
    order = np.lexsort((pool_ids, scores))
    return pool_ids[order[:n]]


def heldout_perplexity(train_texts: Sequence[str], heldout: Sequence[str]) -> float:
    """Perplexity (per character and word boundary) of ``heldout`` under a character LM trained
    on ``train_texts``; unknown characters are counted, with the LM's unknown-token probability."""
    from opusfilter import lm

    tokenizer = lm.LMTokenizer()
    with tempfile.TemporaryDirectory() as work:
        path = _char_lm(train_texts, Path(work) / "selection.arpa")
        with _quiet():
            model = lm.get_lm(filename=str(path), include_unks=True)
        bits, tokens = 0.0, 0
        with _quiet():
            for text in heldout:
                _, entropy, logprob = lm.token_perplexity(model, tokenizer.tokenize(text.strip()))
                bits += logprob
                tokens += round(logprob / entropy) if entropy else 0
    return float(2.0 ** (bits / tokens))


def dsir_select(work: Path, pool_ids: np.ndarray, pool_texts: list[str], target_texts: list[str], name: str,
                n: int) -> np.ndarray:
    """Pair ids DSIR picks: n of the pool by hashed n-gram importance weights against the target."""
    from data_selection import HashedNgramDSIR

    work.mkdir(parents=True, exist_ok=True)
    raw = work / "pool.jsonl"
    if not raw.exists():
        raw.write_text("".join(json.dumps({"text": t, "id": int(i)}) + "\n" for i, t in zip(pool_ids, pool_texts)))
    tgt = work / f"{name}.jsonl"
    tgt.write_text("".join(json.dumps({"text": t}) + "\n" for t in target_texts))
    np.random.seed(0)  # DSIR's Gumbel top-k draws from NumPy's global generator
    dsir = HashedNgramDSIR([str(raw)], [str(tgt)], cache_dir=str(work / f"cache-{name}"), min_example_length=0,
                           num_proc=1)
    dsir.fit_importance_estimator(num_tokens_to_fit="auto")
    dsir.compute_importance_weights()
    out = work / f"out-{name}"
    shutil.rmtree(out, ignore_errors=True)  # a previous size's sample for this target
    dsir.resample(out_dir=str(out), num_to_sample=n, cache_dir=str(work / f"resample-{name}"))
    picked = [json.loads(line)["id"] for f in sorted(out.glob("*.jsonl")) for line in f.read_text().splitlines() if line]
    return np.asarray(picked, dtype=np.int64)
