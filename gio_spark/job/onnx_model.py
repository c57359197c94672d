"""The sentence model through ONNX Runtime on CPU (``embedding.backend: onnx | onnx-int8``).

The installed model is exported once per machine into a cache folder (``GIO_SPARK_CACHE``,
default ``~/.cache/gio-spark``, else the temporary directory; never a download): torch's ONNX
exporter traces the Transformer with the mean pooling and the L2 normalisation inside the
graph; ``onnx-int8`` then quantizes the weights of its matrix products to int8, per output
channel (ONNX Runtime's dynamic quantization: each batch's activations get one int8 scale at run
time, so a text's int8 vector depends a little on the texts batched with it; batches are set by
the task's rows, so it is still the same on any cluster shape). The folder holds the graph, the
model's tokenizer and the export's settings. Concurrent exporters (two Python workers of one
executor) each write a folder of their own and rename it into place; the first rename wins.

Only Transformer + mean-pooling models (all-MiniLM-L6-v2, all-mpnet-base-v2) are exported; the
texts are batched and tokenized exactly as the torch path does (``embed.encode``).
"""
from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import logging
import os
import shutil
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional

import numpy as np

from ..errors import UserError

log = logging.getLogger(__name__)

EXTRA = "pip install 'gio-spark[onnx]'"
OPSET = 17
GRAPH = "model.onnx"
SETTINGS = "gio-spark-onnx.json"
FORMAT = 1  # bump when the export changes, so caches made by older code are not reused


def check_onnx_installed() -> None:
    """One line naming the extra when ONNX Runtime or onnx is missing."""
    missing = [m for m in ("onnxruntime", "onnx") if importlib.util.find_spec(m) is None]
    if missing:
        raise UserError(f"embedding.backend onnx needs {' and '.join(missing)}: {EXTRA} on the driver and on "
                        f"every executor (or set embedding.backend: torch)")


def cache_root() -> Path:
    return Path(os.environ.get("GIO_SPARK_CACHE") or Path.home() / ".cache" / "gio-spark").expanduser()


def export_folder() -> Path:
    """``<cache>/onnx``, or where that cannot be made (a container user without a writable
    home), a folder of this user's in the temporary directory."""
    folder = cache_root() / "onnx"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if os.access(folder, os.W_OK):
            return folder
    except OSError:
        pass
    fallback = Path(tempfile.gettempdir()) / f"gio-spark-{os.getuid()}" / "onnx"
    log.warning("embedding: cannot write to %s; exporting the ONNX model into %s instead", folder, fallback)
    fallback.mkdir(parents=True, exist_ok=True)
    return fallback


def model_fingerprint(folder: Path) -> str:
    """A short hash of the model folder's files (relative names, sizes, modification times) and
    of the export's format, opset and torch version."""
    import torch

    digest = hashlib.sha256(f"{FORMAT}/{OPSET}/{torch.__version__}".encode())
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        stat = path.stat()
        digest.update(f"{path.relative_to(folder)}:{stat.st_size}:{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def exported(name: str, int8: bool) -> Path:
    """The cache folder of ``name``'s export (int8 or float32), made here if it is not there."""
    from .embed import resolve_model

    resolved = Path(resolve_model(name))
    if not resolved.is_dir():
        raise UserError(f"embedding.backend onnx exports an installed model: {name!r} is neither a local model "
                        f"folder nor an installed model package")
    slug = "".join(c if c.isalnum() or c in "-_." else "_" for c in Path(name).name)[-60:]
    target = export_folder() / f"{slug}-{model_fingerprint(resolved)}-{'int8' if int8 else 'fp32'}"
    if (target / SETTINGS).is_file():
        return target
    work = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        export(name, work, int8)
        try:
            os.rename(work, target)
            log.info("embedding: exported %s to ONNX%s in %s", name, " (int8)" if int8 else "", target)
        except OSError:  # another worker renamed its export into place first
            if not (target / SETTINGS).is_file():
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target


def export(name: str, folder: Path, int8: bool) -> None:
    """Write ``name``'s graph (pooling and normalisation included), tokenizer and settings into
    ``folder``."""
    import torch

    from .embed import _dimension, _mean_pooling_parts, _MODELS, load_model

    loaded = (name, "cpu") in _MODELS
    model = load_model(name, "cpu")
    if not loaded:  # the driver, or a worker's first export: the model is not kept for later
        _MODELS.pop((name, "cpu"))
    parts = _mean_pooling_parts(model)
    if parts is None:
        raise UserError(f"embedding.backend onnx supports Transformer + mean-pooling models (all-MiniLM-L6-v2, "
                        f"all-mpnet-base-v2); {name!r} is not one: set embedding.backend: torch")
    tokenizer, hf, max_len, inputs = parts

    class Pooled(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.hf = hf

        def forward(self, *feed):
            hidden = self.hf(**dict(zip(inputs, feed)))[0]
            mask = feed[inputs.index("attention_mask")].unsqueeze(-1).to(hidden.dtype)
            mean = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
            return torch.nn.functional.normalize(mean, p=2, dim=1)

    # two texts of different lengths: the trace sees padding
    example = tokenizer(["an example", "a longer example sentence for the trace"], padding=True, return_tensors="pt")
    graph = folder / GRAPH
    axes = {k: {0: "batch", 1: "tokens"} for k in inputs}
    with warnings.catch_warnings(), torch.inference_mode():
        warnings.simplefilter("ignore")  # the tracer's warnings concern shapes the graph keeps dynamic
        torch.onnx.export(Pooled().eval(), tuple(example[k] for k in inputs), str(graph), input_names=inputs,
                          output_names=["embedding"], dynamic_axes={**axes, "embedding": {0: "batch"}},
                          opset_version=OPSET, dynamo=False)
    if int8:
        quantize_int8(graph)
    tokenizer.save_pretrained(str(folder))
    settings = {"model": name, "max_seq_length": max_len, "inputs": inputs, "int8": int8,
                "dimension": _dimension(model)}
    (folder / SETTINGS).write_text(json.dumps(settings), encoding="utf-8")


def quantize_int8(graph: Path) -> None:
    """Replace ``graph`` by its int8 version: the weights of every matrix product quantized per
    output channel (signed), activations per batch at run time."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantized = graph.with_name("int8.onnx")
    with _quiet_root_logger():  # ONNX Runtime's advice to pre-process goes to the root logger
        quantize_dynamic(str(graph), str(quantized), weight_type=QuantType.QInt8, per_channel=True,
                         op_types_to_quantize=["MatMul"])
    os.replace(quantized, graph)


@contextlib.contextmanager
def _quiet_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


@dataclass
class OnnxModel:
    """An ONNX Runtime session over an exported model, with its tokenizer."""

    session: object
    tokenizer: object
    max_seq_length: int
    inputs: list[str]
    dimension: int

    def encode(self, texts: list[str], batch_size: int) -> np.ndarray:
        """L2-normalised float32 [len(texts), dim], batched as ``embed.encode`` batches."""
        from .embed import length_order, tokenized_batches

        out = np.empty((len(texts), self.dimension), dtype=np.float32)
        for idx, enc in tokenized_batches(self.tokenizer, texts, length_order(texts), batch_size,
                                          self.max_seq_length, tensors="np"):
            out[idx] = self.session.run(None, {k: enc[k].astype(np.int64, copy=False) for k in self.inputs})[0]
        return out


_SESSIONS: dict[tuple[str, bool, Optional[int]], OnnxModel] = {}


def load_onnx(name: str, int8: bool, max_seq_length: Optional[int] = None) -> OnnxModel:
    """The ONNX model of ``name``, exported if needed, loaded once per process with as many
    threads as torch would use here (``GIO_SPARK_TORCH_THREADS``, default 1: Spark runs a
    worker per core)."""
    key = (name, int8, max_seq_length)
    if key not in _SESSIONS:
        check_onnx_installed()
        folder = exported(name, int8)
        import onnxruntime as ort
        from transformers import AutoTokenizer

        settings = json.loads((folder / SETTINGS).read_text(encoding="utf-8"))
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(os.environ.get("GIO_SPARK_TORCH_THREADS", "1"))
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        session = ort.InferenceSession(str(folder / GRAPH), options, providers=["CPUExecutionProvider"])
        _SESSIONS[key] = OnnxModel(session=session, tokenizer=AutoTokenizer.from_pretrained(str(folder)),
                                   max_seq_length=max_seq_length or settings["max_seq_length"],
                                   inputs=settings["inputs"], dimension=settings["dimension"])
    return _SESSIONS[key]
