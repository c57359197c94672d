"""``select_pairs``: the job on DataFrames a notebook already has (Databricks, Jupyter), in the
caller's own Spark session, returning DataFrames.

The same job as ``gio-spark run``, with the same typed config: the DataFrames are inputs of
format ``dataframe`` (job/readers/frame.py). The run writes what the command line writes, to
``output`` or, without one, to a folder of the call's own under ``stages_dir``/_select_pairs;
``selected`` and
``scores`` are lazy DataFrames over those files (nothing but what the job collects anyway comes
to the driver), with the pool's own columns under their own names.
"""
from __future__ import annotations

import logging
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Union

from .errors import UserError
from .job.config import JobConfig, apply_override, config_from_dict
from .job.uri import join

log = logging.getLogger("gio_spark")

Frames = Union[Any, Mapping[str, Any]]  # a DataFrame, or named targets: {name: DataFrame}


@dataclass
class Selection:
    """What ``select_pairs`` returns. ``selected``: the chosen pool rows, their own columns plus
    ``pair_id``, ``cluster``, ``selection_rank``, ``target_distance`` (and ``density_ratio``, or
    ``target`` for named targets); ``scores``: one row per pool pair (with ``write_scores``);
    ``summary``: the run's manifest; ``report_png``: its report as PNG bytes; ``output``: where
    the run's files are."""

    selected: Any
    summary: dict
    report_png: bytes
    output: str
    scores: Optional[Any] = None
    config: Optional[JobConfig] = field(default=None, repr=False)

    def show_report(self):
        """The report in a notebook cell (an IPython image)."""
        from IPython.display import Image

        return Image(self.report_png)


def _is_connect(df) -> bool:
    return type(df).__module__.startswith("pyspark.sql.connect")


def _session(pool, targets: Mapping[str, Any]):
    from pyspark.sql import DataFrame

    for name, df in (("pool", pool), *((f"target {n}" if n else "target", d) for n, d in targets.items())):
        if _is_connect(df):
            raise UserError(f"{name} is a Spark Connect DataFrame: select_pairs needs a classic Spark session with a "
                            f"JVM driver (Databricks: dedicated, single-user access mode compute); Spark Connect "
                            f"(serverless, standard access mode, spark.remote) is not supported yet")
        if not isinstance(df, DataFrame):
            raise UserError(f"{name} is a {type(df).__name__}, not a Spark DataFrame")
    spark = pool.sparkSession
    for name, df in targets.items():
        if df.sparkSession is not spark:
            raise UserError(f"target {name or ''} belongs to another Spark session than the pool".replace("  ", " "))
    return spark


def _stages_dir(spark) -> str:
    """Where stages are kept when the caller names no place: beside the session's tables (a
    shared filesystem: DBFS on Databricks), or the temporary folder for a local session."""
    if spark.sparkContext.master.startswith("local"):
        return join(tempfile.gettempdir(), "gio-spark-stages")
    return join(spark.conf.get("spark.sql.warehouse.dir"), "gio-spark-stages")


def _ensure_logging() -> None:
    """The job's progress lines in the cell: a handler for the package's loggers when the caller
    set up none (Jupyter and Databricks show stderr in the cell)."""
    from .logs import HANDLER_NAME, _Formatter, _StderrHandler

    package = logging.getLogger("gio_spark")
    if any(h.get_name() == HANDLER_NAME for h in package.handlers) or logging.getLogger().handlers:
        return
    handler = _StderrHandler()
    handler.setFormatter(_Formatter())
    handler.set_name(HANDLER_NAME)
    package.addHandler(handler)
    package.setLevel(logging.INFO)


def select_pairs(pool, target: Frames, *, text_col: str, src_col: Optional[str] = None, tgt_col: Optional[str] = None,
                 id_col: Optional[str] = None, target_weights: Optional[Mapping[str, float]] = None,
                 budget_pairs: Optional[int] = None, budget_tokens: Optional[int] = None,
                 budget_share: Optional[float] = None, write_scores: bool = False,
                 config: Optional[Mapping[str, Any]] = None, stages_dir: Optional[str] = None,
                 output: Optional[str] = None, if_exists: str = "overwrite") -> Selection:
    """Select from ``pool`` the pairs that best match ``target`` (a DataFrame, or several named
    targets as ``{name: DataFrame}`` with ``target_weights``), in the DataFrames' own session.

    ``text_col`` names the column that is embedded; ``src_col`` and ``tgt_col`` name the pair's
    two sides (default: ``text_col`` alone); the target has the same column names. ``id_col``
    names the pool's unique id column (a target is numbered by it where it has it); without one,
    each row's id is a hash of its content, and identical rows are counted and kept once. Budgets and ``write_scores`` are the command line's; ``config``
    sets any other key of the job's config (dotted keys, e.g. ``{"embedding.method": "static"}``,
    or nested sections). ``stages_dir`` keeps the stages for later calls (default: beside the
    session's tables, or the temporary folder for a local session); ``output`` writes what the
    command line writes there (default: a folder of this call's own under
    ``<stages_dir>/_select_pairs/``, which the returned DataFrames read; remove it when done).

    Errors that are the caller's to fix are one-line ``gio_spark.errors.UserError``s."""
    from .job.pipeline import run_job
    from .job.readers import frame

    targets = dict(target) if isinstance(target, Mapping) else {"": target}
    if not targets or (len(targets) > 1 and "" in targets):
        raise UserError("give target as one DataFrame or as {name: DataFrame}")
    spark = _session(pool, targets)
    src = src_col or text_col
    side = "tgt" if tgt_col is not None and text_col == tgt_col and text_col != src else "src"
    if text_col not in (src, tgt_col):
        raise UserError(f"text_col {text_col!r} must be src_col or tgt_col ({src!r}, {tgt_col!r})")
    inputs = {"format": "dataframe", "src_col": src, "tgt_col": tgt_col or ""}

    def ids(df) -> dict:  # the pool's id column; a target numbered by it where it has it, else by content
        return {"id_col": id_col if id_col and (df is pool or id_col in df.columns) else ""}

    data: dict[str, Any] = {"train": {**inputs, **ids(pool), "path": frame.PREFIX + "train"}, "if_exists": if_exists,
                            "selection": {"write_scores": write_scores}, "embedding": {"side": side}}
    if "" in targets:
        data["target"] = {**inputs, **ids(targets[""]), "path": frame.PREFIX + "target"}
    else:
        weights = dict(target_weights or {})
        unknown = sorted(set(weights) - set(targets))
        if unknown:
            raise UserError(f"target_weights names {', '.join(unknown)}, which are not targets ({', '.join(targets)})")
        data["targets"] = [{**inputs, **ids(targets[n]), "name": n, "path": frame.PREFIX + f"target_{n}",
                            **({"weight": weights[n]} if n in weights else {})} for n in targets]
    for key, value in (("budget_pairs", budget_pairs), ("budget_tokens", budget_tokens), ("budget_share", budget_share)):
        if value is not None:
            data["selection"][key] = value
    for key, value in (config or {}).items():
        if isinstance(value, Mapping):
            for inner, v in value.items():
                apply_override(data, f"{key}.{inner}", v)
        else:
            apply_override(data, key, value)
    data["stages_dir"] = data.get("stages_dir") or stages_dir or _stages_dir(spark)
    # without an output, each call a folder of its own: an earlier result's DataFrames stay readable
    data["output"] = output or join(data["stages_dir"], "_select_pairs",
                                    f"{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}")
    if data.get("output_format", "parquet") != "parquet":
        raise UserError("select_pairs returns the selection as a DataFrame: output_format must be parquet")
    cfg = config_from_dict(data)
    names = {"train": pool, **({"target": targets[""]} if "" in targets else
                               {f"target_{n}": df for n, df in targets.items()})}
    for name, df in names.items():
        frame.check_frame(df, cfg.inputs()[name], name)
        if name != "train" and not df.take(1):  # a one-row job, before the run
            raise UserError(f"{name} is an empty DataFrame: the target needs pairs")
    _ensure_logging()
    with frame.LOCK:
        paths = [frame.register(name, df) for name, df in names.items()]
        try:
            manifest = run_job(cfg, spark)
        finally:
            for path in paths:
                frame.unregister(path)
    from .job.fs import FileSystem

    fs = FileSystem(spark)
    renames = {"src": src, **({"tgt": tgt_col} if tgt_col else {})}
    selected = _own_columns(spark.read.parquet(join(cfg.output, "selected")), renames)
    scores = spark.read.parquet(join(cfg.output, "scores")) if write_scores else None
    return Selection(selected=selected, summary=manifest, report_png=fs.read_bytes(join(cfg.output, "report.png")),
                     output=cfg.output, scores=scores, config=cfg)


def _own_columns(df, renames: Mapping[str, str]):
    """The selection with the pool's columns under their own names (the job's ``src``/``tgt``
    back to the columns they came from; a missing second side dropped)."""
    out = df
    for job_col, own in renames.items():
        if own != job_col:
            out = out.withColumnRenamed(job_col, own)
    if "tgt" not in renames and "tgt" in out.columns:
        out = out.drop("tgt")
    return out
