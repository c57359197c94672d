"""The stage type, its typed results, the store that keeps them and the runner that reuses them.

A stage declares its ``name``, the stages it ``reads``, the config slice that is hashed
(``config``), an input ``fingerprint`` (read stages), its ``resources`` and its progress line;
``run`` returns a typed result. The runner keys each stage by its name, config slice, the keys
of what it read, its fingerprint and the package version, reuses a published result with that
key, and times and records every stage for the manifest.

Store layout, under ``<output>/_stages`` or a shared ``--stages-dir``::

    <root>/<name>/<key>/_stage.json         the result's scalars, and which attempt holds its files
    <root>/<name>/<key>/<attempt>/...       arrays as .npy, tables as Parquet folders

A stage is published by creating ``_stage.json`` exclusively, after all its files are written:
two runs that compute the same stage at once both finish, one publishes, the other uses the
published result and removes its own files. Nothing is ever changed after publication.
"""
from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import logging
import time
import typing
import uuid
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, Mapping, Optional, TypeVar

import numpy as np

from .. import __version__
from ..errors import UserError
from . import failures
from .fs import FileSystem
from .progress import job_tag, jobs_by_tag, spark_progress
from .uri import escape_glob, join, redact

log = logging.getLogger(__name__)

MARKER = "_stage.json"


def _plain(value: Any) -> Any:
    return dataclasses.asdict(value) if dataclasses.is_dataclass(value) else str(value)


def digest(*parts: Any) -> str:
    """A short stable hash of JSON-able values and config dataclasses."""
    blob = json.dumps(parts, sort_keys=True, default=_plain).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


@dataclass(frozen=True)
class Table:
    """A Parquet table a stage wrote (by Spark); ``uri`` is its folder, ``schema`` its Spark
    schema as JSON (read with it, Spark runs no job to infer one from the files)."""

    uri: str
    schema: Optional[str] = None

    def read(self, spark):
        reader = spark.read
        if self.schema is not None:
            from pyspark.sql.types import StructType

            reader = reader.schema(StructType.fromJson(json.loads(self.schema)))
        return reader.parquet(escape_glob(self.uri))  # Spark globs paths; this one is literal


@dataclass(frozen=True)
class Resources:
    """Where a stage's work runs: on the driver, or in executor tasks (with GPUs per task)."""

    where: str = "driver"
    gpus_per_task: float = 0.0

    def describe(self) -> str:
        if self.where == "driver":
            return "driver"
        return f"executors, {self.gpus_per_task:g} GPU per task" if self.gpus_per_task else "executors"


@dataclass
class Result:
    """Base of typed stage results (dataclasses): ``np.ndarray`` fields are saved as
    ``<field>.npy``, ``Table`` fields are Parquet folders the stage wrote, the rest is JSON."""

    def save(self, fs: FileSystem, folder: str) -> dict[str, Any]:
        """Write the arrays under ``folder``; the JSON-able rest, to go into the marker."""
        values: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, np.ndarray):
                buf = io.BytesIO()
                np.save(buf, value)
                fs.write_bytes(join(folder, f"{f.name}.npy"), buf.getvalue())
            elif isinstance(value, Table):
                values[f.name] = {"table": value.uri.rstrip("/").rsplit("/", 1)[-1], "schema": value.schema}
            else:
                values[f.name] = value
        return values

    @classmethod
    def load(cls, fs: FileSystem, folder: str, values: Mapping[str, Any]):
        hints = typing.get_type_hints(cls)
        kwargs: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            kind = hints[f.name]
            if kind is np.ndarray:
                kwargs[f.name] = np.load(io.BytesIO(fs.read_bytes(join(folder, f"{f.name}.npy"))))
            elif isinstance(values.get(f.name), dict) and "table" in values[f.name] and Table in _members(kind):
                kwargs[f.name] = Table(join(folder, values[f.name]["table"]), values[f.name].get("schema"))
            else:
                kwargs[f.name] = values.get(f.name)
        return cls(**kwargs)


def _members(kind: Any) -> tuple:
    return typing.get_args(kind) or (kind,)


R = TypeVar("R", bound=Result)


@dataclass
class Context:
    """What a stage's ``run`` gets besides its inputs."""

    spark: Any
    fs: FileSystem
    cfg: Any  # JobConfig
    folder: Optional[str] = None  # where the stage writes its files (reusable stages)
    progress: Any = None  # the StageProgress of the running stage, when it declared one

    def table(self, name: str) -> Table:
        """Where the stage writes a Parquet table of its result."""
        return Table(join(self.folder, name))

    def write_table(self, df, name: str) -> Table:
        """Write ``df`` as the stage's Parquet table ``name``; the table knows its schema."""
        table = self.table(name)
        df.write.parquet(table.uri)
        return Table(table.uri, df.schema.json())


@dataclass(frozen=True)
class Progress:
    """How a stage's progress line shows (see progress.spark_progress)."""

    label: str
    total_rows: Optional[int] = None
    max_iter: Optional[int] = None
    count_rows: bool = False
    outputs_per_row: int = 0


class Stage(Generic[R]):
    """One step of the job. Subclasses set ``name``, ``reads``, ``resources`` and ``result``
    and implement ``run``; a stage that is not ``reusable`` (it writes the run's own output)
    runs every time."""

    name: str
    reads: tuple[str, ...] = ()
    resources: Resources = Resources()
    result: ClassVar[type]
    reusable: ClassVar[bool] = True

    def config(self, cfg) -> Any:
        """The config slice that changes this stage's result (hashed into its key)."""
        return None

    def fingerprint(self, ctx: Context) -> Any:
        """What identifies the stage's input data beyond its config (read stages)."""
        return None

    def progress(self, cfg, inputs: Mapping[str, Result]) -> Optional[Progress]:
        """How the stage's progress line shows, or None for a stage that shows none."""
        return None

    def explain(self, exc: BaseException) -> Optional[UserError]:
        """A one-line error for a failure of this stage that is the user's to fix."""
        return None

    def run(self, ctx: Context, inputs: Mapping[str, Result]) -> R:
        raise TypeError(f"{type(self).__name__} does not define run()")


@dataclass
class StageRecord:
    key: str
    reused: bool
    seconds: float
    resources: str
    path: Optional[str]
    job_tag: Optional[str] = None  # the tag of the Spark jobs the stage ran (none when reused)


class StageStore:
    """Published stage results under ``root``; ``shared`` stores are never pruned."""

    def __init__(self, fs: FileSystem, root: str, shared: bool) -> None:
        self.fs, self.root, self.shared = fs, root.rstrip("/"), shared

    def _dir(self, name: str, key: str) -> str:
        return join(self.root, name, key)

    def load(self, stage: Stage, key: str) -> Optional[tuple[Result, str]]:
        """The published result of ``stage`` with ``key`` and its folder, or None. A result whose
        files are not all there as they were written (a file deleted, truncated or added since)
        is never read in part: the stage is computed again."""
        marker = join(self._dir(stage.name, key), MARKER)
        if not self.fs.exists(marker):
            return None
        try:
            saved = json.loads(self.fs.read_text(marker))
            folder = join(self._dir(stage.name, key), saved["attempt"])
            damage = self._damage(folder, saved["files"])
            if damage is None:
                return stage.result.load(self.fs, folder, saved["result"]), folder
            log.warning("stage %s: its stored result %s is damaged (%s); computing the stage again", stage.name,
                        redact(folder), damage)
            self._discard(marker, saved["attempt"], folder)
            return None
        except (ValueError, KeyError, TypeError, UserError) as exc:
            log.warning("stage %s: %s is unreadable (%s); computing the stage again", stage.name, redact(marker),
                        str(exc).splitlines()[0])
            self.fs.delete(marker)
            return None

    def _files(self, folder: str) -> dict[str, int]:
        """Size of every file below ``folder`` (hidden ones left out), by path relative to it."""
        base = self.fs.info(folder).path.rstrip("/") + "/"
        return {f.path[len(base):]: f.size for f in self.fs.files_under(folder)}

    def _damage(self, folder: str, written: dict[str, int]) -> Optional[str]:
        """What differs between the files a published stage wrote and what is there now."""
        if not written:  # a result held in its marker alone
            return None
        if not self.fs.exists(folder):
            return "its folder is gone"
        found = self._files(folder)
        missing = sorted(set(written) - set(found))
        resized = sorted(p for p in set(written) & set(found) if written[p] != found[p])
        added = sorted(set(found) - set(written))
        problems = [f"{len(paths)} {what}, e.g. {paths[0]}" for what, paths in
                    (("missing", missing), ("of another size", resized), ("added", added)) if paths]
        return f"of {len(written)} files: {'; '.join(problems)}" if problems else None

    def _discard(self, marker: str, attempt: str, folder: str) -> None:
        """Remove a damaged result: its marker (unless another run has published anew) and files."""
        try:
            current = json.loads(self.fs.read_text(marker)).get("attempt")
        except (ValueError, UserError):  # gone or unreadable: it points at nothing usable either
            current = attempt
        if current == attempt:
            self.fs.delete(marker)
        self.fs.delete(folder)

    def begin(self, name: str, key: str) -> str:
        """A fresh folder for one attempt at computing the stage."""
        return join(self._dir(name, key), f"attempt-{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}")

    def publish(self, stage: Stage, key: str, folder: str, result: Result, seconds: float) -> tuple[Result, str]:
        """Publish ``result`` (its files already under ``folder``); when another run published
        the same key first, its result is used and this attempt's files are removed."""
        values = result.save(self.fs, folder)
        marker = join(self._dir(stage.name, key), MARKER)
        files = self._files(folder) if self.fs.exists(folder) else {}
        payload = {"stage": stage.name, "key": key, "attempt": folder.rsplit("/", 1)[-1], "result": values,
                   "files": files, "seconds": round(seconds, 3), "version": __version__, "published": time.time()}
        if not self.fs.create_exclusive(marker, json.dumps(payload, default=_plain).encode()):
            log.info("stage %s: another run published it first; using that result", stage.name)
            self.fs.delete(folder)
            found = self.load(stage, key)
            if found is None:
                raise RuntimeError(f"stage {stage.name}: {marker} exists but cannot be read")
            return found
        if not self.shared:  # a run's own store: other keys and attempts of this stage are stale
            for entry in self.fs.names(join(self.root, stage.name)):
                if entry != key:
                    self.fs.delete(join(self.root, stage.name, entry))
        for entry in self.fs.names(self._dir(stage.name, key)):
            if entry.startswith("attempt-") and entry != payload["attempt"] and not self.shared:
                self.fs.delete(join(self._dir(stage.name, key), entry))
        return result, folder


def _writing(exc: BaseException, folder: Optional[str]) -> bool:
    """Whether a stage's failure happened writing files (a full disk, a read-only folder)."""
    text = str(exc)
    return ("TASK_WRITE_FAILED" in text or "while writing rows" in text
            or (folder is not None and folder.rsplit("/", 1)[-1] in text))


@dataclass
class Runner:
    """Runs stages in the order given, each with the results of the stages it reads."""

    ctx: Context
    store: StageStore
    results: dict[str, Result] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)
    records: dict[str, StageRecord] = field(default_factory=dict)

    def key(self, stage: Stage) -> str:
        missing = [n for n in stage.reads if n not in self.keys]
        if missing:
            raise RuntimeError(f"stage {stage.name} reads {missing}, which have not run")
        return digest(stage.name, stage.config(self.ctx.cfg), [self.keys[n] for n in stage.reads],
                      stage.fingerprint(self.ctx), __version__)

    def run(self, stage: Stage[R]) -> R:
        key = self.key(stage)
        inputs = {n: self.results[n] for n in stage.reads}
        found = self.store.load(stage, key) if stage.reusable else None
        if found is not None:
            result, folder = found
            log.info("stage %s: done before (key %s), reusing", stage.name, key)
            self._record(stage, key, result, True, 0.0, folder)
            return result
        folder = self.store.begin(stage.name, key) if stage.reusable else None
        spec = stage.progress(self.ctx.cfg, inputs)
        log.info("stage %s: running (%s)", stage.name, stage.resources.describe())
        start = time.perf_counter()
        try:
            with job_tag(self.ctx.spark) as tag:
                if spec is None:
                    result = stage.run(dataclasses.replace(self.ctx, folder=folder), inputs)
                else:
                    with spark_progress(self.ctx.spark, spec.label, total_rows=spec.total_rows,
                                        max_iter=spec.max_iter, count_rows=spec.count_rows,
                                        outputs_per_row=spec.outputs_per_row) as progress:
                        result = stage.run(dataclasses.replace(self.ctx, folder=folder, progress=progress), inputs)
        except UserError:
            raise
        except Exception as exc:
            where = folder or self.ctx.cfg.output  # a stage that is not reusable writes the run's output
            writes = _writing(exc, folder) or not stage.reusable
            error = stage.explain(exc) or (failures.explain(exc, where, "write") if writes else None)
            if error is None:
                raise
            raise error from exc
        seconds = time.perf_counter() - start
        if stage.reusable:
            result, folder = self.store.publish(stage, key, folder, result, seconds)
        log.info("stage %s: done in %.1f s", stage.name, seconds)
        self._record(stage, key, result, False, seconds, folder, tag)
        return result

    def _record(self, stage: Stage, key: str, result: Result, reused: bool, seconds: float,
                folder: Optional[str], tag: Optional[str] = None) -> None:
        self.keys[stage.name] = key
        self.results[stage.name] = result
        self.records[stage.name] = StageRecord(key, reused, seconds, stage.resources.describe(), folder, tag)

    def spark_jobs(self) -> dict[str, int]:
        """Spark jobs each stage ran in this run (0 for a reused stage), and their total."""
        counts = jobs_by_tag(self.ctx.spark, {n: r.job_tag for n, r in self.records.items() if r.job_tag})
        out = {name: counts.get(name, 0) for name in self.records}
        return {**out, "total": sum(out.values())}

    @property
    def reused(self) -> list[str]:
        return [name for name, r in self.records.items() if r.reused]
