"""The model through ONNX Runtime (embedding.backend onnx / onnx-int8): the export of the
installed model package (offline), its cache, its vectors beside torch's, and the errors."""
import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gio_spark.errors import UserError
from gio_spark.job import onnx_model
from gio_spark.job.config import EmbeddingConfig
from gio_spark.job.embed import SentenceEmbedder, check_embedding, cosine_summary, encode, load_model, resolve_model
from gio_spark.job.tally import Tally

from .test_embed import MODEL

pytestmark = pytest.mark.skipif(importlib.util.find_spec("onnxruntime") is None, reason="needs gio-spark[onnx]")

# padded batches, a batch of one, equal lengths, an empty text, one past max_seq_length (256 tokens)
TEXTS = ["Take two tablets every day.", "Click OK to save the file.", "Where were you last night?",
         "The Council adopted the regulation.", "", "word " * 400, "Ok", "Yes.", "A much longer sentence about "
         "the side effects of the medicine, which the patient should read before taking it."]


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """A cache of the module's own, so that every export here is made here."""
    folder = tmp_path_factory.mktemp("onnx-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GIO_SPARK_CACHE", str(folder))
        yield folder


def torch_vectors(texts, batch_size=4):
    return encode(load_model(MODEL, "cpu"), texts, batch_size)


def test_float32_export_gives_torch_vectors(cache):
    model = onnx_model.load_onnx(MODEL, int8=False)
    for batch_size in (1, 4, 128):
        got = model.encode(TEXTS, batch_size)
        assert got.shape == (len(TEXTS), 384) and got.dtype == np.float32
        np.testing.assert_allclose(got, torch_vectors(TEXTS, batch_size), atol=1e-4)


def test_int8_export_stays_close_to_torch(cache):
    got = onnx_model.load_onnx(MODEL, int8=True).encode(TEXTS, 4)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    cosines = np.sum(got * torch_vectors(TEXTS), axis=1)
    assert cosines.mean() > 0.97 and cosines.min() > 0.9


def test_export_is_made_once_and_keyed_by_the_model_files(cache, tmp_path):
    first = onnx_model.exported(MODEL, int8=False)
    made = (first / onnx_model.GRAPH).stat().st_mtime_ns
    assert onnx_model.exported(MODEL, int8=False) == first
    assert (first / onnx_model.GRAPH).stat().st_mtime_ns == made
    settings = json.loads((first / onnx_model.SETTINGS).read_text())
    assert settings["dimension"] == 384 and settings["max_seq_length"] == 256 and not settings["int8"]
    assert not [p for p in first.parent.iterdir() if p.name.startswith(".")]  # no work folder left
    fingerprint = onnx_model.model_fingerprint(Path(resolve_model(MODEL)))
    assert fingerprint in first.name
    copy = tmp_path / "copy"  # a model package whose files changed: another key
    shutil.copytree(resolve_model(MODEL), copy)
    assert onnx_model.model_fingerprint(copy) == fingerprint
    (copy / "README.md").write_text("changed")
    assert onnx_model.model_fingerprint(copy) != fingerprint


def test_a_worker_that_loses_the_race_uses_the_winners_export(cache, monkeypatch):
    winner = onnx_model.exported(MODEL, int8=False)
    real_rename = onnx_model.os.rename

    def slower(src, dst):  # another worker renamed its export into place between the check and here
        raise OSError(39, "Directory not empty")

    shutil.move(str(winner), str(winner) + ".kept")

    def export_then_lose(name, folder, int8):  # this worker's export (its content does not matter here)
        (folder / onnx_model.SETTINGS).write_text("{}")
        real_rename(str(winner) + ".kept", winner)

    monkeypatch.setattr(onnx_model, "export", export_then_lose)
    monkeypatch.setattr(onnx_model.os, "rename", slower)
    assert onnx_model.exported(MODEL, int8=False) == winner
    assert not [p for p in winner.parent.iterdir() if p.name.startswith(".")]


def test_the_task_reports_its_cosines_to_torch(cache):
    embedder = SentenceEmbedder(EmbeddingConfig(model=MODEL, backend="onnx-int8"))
    pdf = pd.DataFrame({"pair_id": range(len(TEXTS) * 2), "src": TEXTS * 2})
    agreement = Tally()

    class Accumulator:
        def add(self, value):
            agreement.merge(value)

    vecs, distinct = embedder.embed_task(pdf, Accumulator())
    assert distinct == len(TEXTS)
    np.testing.assert_array_equal(vecs[: len(TEXTS)], vecs[len(TEXTS):])
    summary = cosine_summary(agreement)
    assert summary["texts"] == 8 and 0.9 < summary["min"] <= summary["mean"] < 1.0


def test_missing_onnxruntime_is_one_line_naming_the_extra(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnxruntime" else real(name, *a))
    with pytest.raises(UserError) as err:
        check_embedding(EmbeddingConfig(model=MODEL, backend="onnx"))
    assert "pip install 'gio-spark[onnx]'" in str(err.value) and "\n" not in str(err.value)


def test_a_model_without_mean_pooling_is_refused(cache, tmp_path):
    copy = tmp_path / "cls-model"
    shutil.copytree(resolve_model(MODEL), copy)
    pooling = copy / "1_Pooling" / "config.json"
    config = json.loads(pooling.read_text())
    config.update(pooling_mode_mean_tokens=False, pooling_mode_cls_token=True)
    pooling.write_text(json.dumps(config))
    with pytest.raises(UserError, match="mean-pooling models"):
        check_embedding(EmbeddingConfig(model=str(copy), backend="onnx"))


def test_backend_is_checked_by_the_config():
    with pytest.raises(ValueError):
        EmbeddingConfig(model=MODEL, backend="openvino")


@pytest.mark.spark
def test_a_job_embeds_through_onnx_runtime_and_reports_it(spark, tmp_path):
    from gio_spark.job.pipeline import run_job

    from .test_job import POOL, TARGET, job, medicine_share, write_text

    train, target = write_text(tmp_path, "train", POOL), write_text(tmp_path, "target", TARGET)
    manifest = run_job(job(tmp_path, train, target, embedding={"backend": "onnx-int8"}), spark)
    for side, rows in (("train", POOL), ("target", TARGET)):
        stats = manifest["embedding"][side]
        assert stats["backend"] == "onnx-int8"
        checked = stats["cosine_to_torch"]
        assert checked["texts"] == 8 * stats["partitions"] and 0.9 < checked["min"] <= checked["mean"] < 1
    assert medicine_share(pd.read_parquet(tmp_path / "out" / "selected")) > 0.8
