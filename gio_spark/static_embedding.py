"""Static token vectors distilled from a sentence model (pure numerics: NumPy and SciPy).

A text's static vector is the L2-normalised mean of its tokens' vectors (each occurrence
counts). The token vectors start from the model's vector of each token on its own and are
then fitted by ridge regression so that the mean over a text's tokens matches the model's
vector of the text, on a sample of texts:

    min_W  sum_i |a_i W - y_i|^2 + ridge * |W - W0|^2

with ``a_i`` the text's token counts divided by its length. Tokens that are not in the sample
keep their start vector. Everything here is deterministic: sparse products and sums in a
fixed order, no threaded reductions.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import scipy.sparse as sp


def token_means(ids: Sequence[Sequence[int]], vocab: int) -> sp.csr_matrix:
    """[texts, vocab] CSR: row i holds each token's share of text i's tokens (rows of texts
    without tokens are empty)."""
    lengths = np.fromiter((len(t) for t in ids), dtype=np.int64, count=len(ids))
    cols = np.fromiter((tok for t in ids for tok in t), dtype=np.int64, count=int(lengths.sum()))
    rows = np.repeat(np.arange(len(ids)), lengths)
    weights = np.repeat(1.0 / np.maximum(lengths, 1), lengths)
    out = sp.csr_matrix((weights, (rows, cols)), shape=(len(ids), vocab), dtype=np.float64)
    out.sum_duplicates()
    return out


@dataclass
class Fit:
    vectors: np.ndarray  # [vocab, dim] float32
    iterations: int
    residual: float  # relative residual of the normal equations at the end
    fitted_tokens: int  # tokens seen in the fit sample (the rest keep their start vector)


def fit_token_vectors(means: sp.csr_matrix, targets: np.ndarray, start: np.ndarray, ridge: float,
                      tol: float = 1e-4, max_iter: int = 300) -> Fit:
    """Token vectors [vocab, dim] minimising the ridge objective above: conjugate gradients on
    the normal equations ``(A'A + ridge I) D = A'(Y - A W0)``, one per output dimension, all at
    once, over the tokens the sample has."""
    if ridge <= 0:
        raise ValueError("ridge must be positive")
    seen = np.flatnonzero(np.diff(means.tocsc().indptr))
    a = means[:, seen].tocsr()
    at = a.T.tocsr()
    start = np.asarray(start, dtype=np.float64)

    def normal(x: np.ndarray) -> np.ndarray:
        return at @ (a @ x) + ridge * x

    rhs = at @ (np.asarray(targets, dtype=np.float64) - a @ start[seen])
    x = np.zeros_like(rhs)
    r = rhs.copy()
    p = r.copy()
    rr = np.einsum("ij,ij->j", r, r)
    norm0 = np.sqrt(np.maximum(rr, 1e-300))
    it = 0
    for it in range(1, max_iter + 1):
        q = normal(p)
        alpha = rr / np.maximum(np.einsum("ij,ij->j", p, q), 1e-300)
        x += p * alpha
        r -= q * alpha
        rr_new = np.einsum("ij,ij->j", r, r)
        if np.all(np.sqrt(rr_new) <= tol * norm0):
            rr = rr_new
            break
        p = r + p * (rr_new / np.maximum(rr, 1e-300))
        rr = rr_new
    vectors = start.copy()
    vectors[seen] += x
    return Fit(vectors.astype(np.float32), it, float(np.max(np.sqrt(rr) / norm0)), len(seen))


def static_vectors(token_vectors: np.ndarray, ids: Sequence[Sequence[int]]) -> np.ndarray:
    """L2-normalised float32 [texts, dim]: the mean of each text's token vectors (a text
    without tokens gets zeros)."""
    means = token_means(ids, token_vectors.shape[0]).astype(np.float32)
    out = np.asarray(means @ token_vectors, dtype=np.float32)
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    return np.divide(out, norms, out=np.zeros_like(out), where=norms > 0)
