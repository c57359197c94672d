"""Static token vectors (embedding.method static): the fit, the tokenizer helpers, and the job
with its static_model stage on local[2] (the cluster and local[1] in test_cluster.py)."""
import numpy as np
import pandas as pd
import pytest

from gio_spark.errors import UserError
from gio_spark.job.config import EmbeddingConfig
from gio_spark.job.embed import StaticEmbedder, static_tokenizer, token_ids, vocabulary_texts
from gio_spark.static_embedding import fit_token_vectors, static_vectors, token_means

from .test_embed import MODEL


def test_token_means_rows_are_token_shares():
    m = token_means([[1, 1, 3], [], [0]], vocab=4).toarray()
    assert np.allclose(m, [[0, 2 / 3, 0, 1 / 3], [0, 0, 0, 0], [1, 0, 0, 0]])


def test_fit_recovers_token_vectors_and_is_deterministic():
    rng = np.random.default_rng(0)
    true = rng.normal(size=(40, 6))
    texts = [list(rng.integers(0, 30, size=rng.integers(3, 12))) for _ in range(2000)]  # tokens 30-39 never occur
    means = token_means(texts, 40)
    targets = means @ true
    start = rng.normal(size=(40, 6)).astype(np.float32)
    fit = fit_token_vectors(means, targets, start, ridge=1e-6, tol=1e-8, max_iter=2000)
    assert fit.fitted_tokens == 30
    assert np.abs(fit.vectors[:30] - true[:30]).max() < 1e-2
    assert np.array_equal(fit.vectors[30:], start[30:])  # unseen tokens keep their start
    again = fit_token_vectors(means, targets, start, ridge=1e-6, tol=1e-8, max_iter=2000)
    assert np.array_equal(fit.vectors, again.vectors)
    with pytest.raises(ValueError, match="ridge"):
        fit_token_vectors(means, targets, start, ridge=0)


def test_static_vectors_are_unit_or_zero():
    vectors = static_vectors(np.eye(3, dtype=np.float32) * 5, [[0, 0, 1], [], [2]])
    assert vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), [1, 0, 1])
    assert np.allclose(vectors[0], np.array([2, 1, 0]) / np.sqrt(5))


def test_tokenizer_helpers_follow_the_model():
    tok = static_tokenizer(MODEL)
    assert tok is static_tokenizer(MODEL)  # once per process
    words = vocabulary_texts(tok)
    assert len(words) == tok.get_vocab_size()
    assert not any(w.startswith("##") for w in words)
    ids = token_ids(tok, ["  Take two tablets.  ", "Take two tablets."])
    assert ids[0] == ids[1] and len(ids[0]) >= 4
    assert len(token_ids(static_tokenizer(MODEL, 3), ["one two three four five"])[0]) == 3


def test_static_needs_the_models_tokenizer_file(tmp_path):
    with pytest.raises(UserError, match="tokenizer.json"):
        static_tokenizer(str(tmp_path))


def test_static_embedder_dedupes_and_averages_sides():
    tok = static_tokenizer(MODEL)
    vectors = np.random.default_rng(1).normal(size=(tok.get_vocab_size(), 8)).astype(np.float32)
    pdf = pd.DataFrame({"pair_id": [1, 2, 3], "src": ["a b", "c d", "a b"], "tgt": ["x", "y", "x"]})
    one, distinct = StaticEmbedder(EmbeddingConfig(model=MODEL), token_vectors=vectors).embed_task(pdf)
    assert distinct == 2 and np.array_equal(one[0], one[2])
    both, _ = StaticEmbedder(EmbeddingConfig(model=MODEL, side="both"), token_vectors=vectors).embed_task(pdf)
    assert np.allclose(np.linalg.norm(both, axis=1), 1, atol=1e-6)
    assert not np.allclose(both[0], one[0])


@pytest.mark.spark
def test_static_job_fits_once_and_selects_the_domain(spark, tmp_path):
    from gio_spark.job.pipeline import run_job

    from .test_job import POOL, STAGES, TARGET, job, medicine_share, write_text

    train, target = write_text(tmp_path, "train", POOL), write_text(tmp_path, "target", TARGET)
    static = {"method": "static", "static_fit_texts": 60}  # of the pool's distinct English texts
    first = run_job(job(tmp_path, train, target, embedding=static), spark)
    fit = first["embedding"]["static_model"]
    assert first["embedding"]["train"]["method"] == "static"
    assert len({src for src, _ in POOL}) > 60
    assert fit["fit_texts"] + fit["held_out"] == 60 and fit["held_out"] == 6
    assert 0.5 < fit["heldout_cosine"] <= 1 and fit["fitted_tokens"] > 50
    vectors = pd.read_parquet(first["stages"]["embed_train"]["path"] + "/embeddings")
    assert len(vectors) == len(POOL)
    assert np.allclose(np.linalg.norm(np.stack(vectors.embedding), axis=1), 1, atol=1e-5)
    out = pd.read_parquet(tmp_path / "out" / "selected")
    assert medicine_share(out) > 0.8
    again = run_job(job(tmp_path, train, target, embedding=static, if_exists="overwrite"), spark)
    assert again["stages_reused"] == ["pairs_train", "pairs_target", "static_model", *STAGES[2:]]
    assert set(pd.read_parquet(tmp_path / "out" / "selected").pair_id) == set(out.pair_id)
    # another target: the fit and the pool's vectors are the pool's, reused
    other = write_text(tmp_path, "other", POOL[40:70])
    moved = run_job(job(tmp_path, train, other, embedding=static, if_exists="overwrite"), spark)
    assert {"static_model", "embed_train", "quantize_train"} <= set(moved["stages_reused"])
    assert "embed_target" not in moved["stages_reused"]
    # more fit texts: a new fit and new vectors; the pool is not read again
    refit = run_job(job(tmp_path, train, target, embedding={**static, "static_fit_texts": 70}, if_exists="overwrite"),
                    spark)
    assert refit["stages_reused"][0] == "pairs_train" and "static_model" not in refit["stages_reused"]
    assert "embed_train" not in refit["stages_reused"]
