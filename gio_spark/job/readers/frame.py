"""DataFrames the caller already has (``format: dataframe``, through ``gio_spark.select_pairs``):
``path`` is the name the API registered the DataFrame under for the run (``dataframe:train``,
``dataframe:target``, ``dataframe:target_<name>``), in this process.

Pair ids come from ``id_col`` (an integral column as it is, any other type by a 64-bit hash of
its value; a repeated id is an error), or, with ``id_col`` empty, from the row's content (a
64-bit hash of all its columns): identical rows then share an id, and all but one are skipped
as ``duplicate_row`` and counted, as the file readers count what they skip. ``tgt_col`` empty:
the pairs have no second side (``tgt`` is empty). The stage key's fingerprint is a hash of every
row's content and the schema (one pass over the DataFrame), so a rerun on the same data reuses
the stages, as for files.
"""
from __future__ import annotations

import threading
from typing import Optional

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from ...errors import UserError
from ..config import InputConfig
from ..fs import FileInfo, FileSystem
from .base import (DUPLICATE_ROW, EMPTY_PAIR, NULL_PAIR, InputFiles, RawPairs, Reader, blank, check_user_columns,
                   skip_reason)

PREFIX = "dataframe:"
_FRAMES: dict[str, DataFrame] = {}
LOCK = threading.RLock()  # one API call registers its frames at a time


def register(name: str, df: DataFrame) -> str:
    """Make ``df`` readable as the input ``dataframe:<name>`` (hold LOCK around the run)."""
    _FRAMES[PREFIX + name] = df
    return PREFIX + name


def unregister(path: str) -> None:
    _FRAMES.pop(path, None)


def frame(path: str, name: str) -> DataFrame:
    if path not in _FRAMES:
        raise UserError(f"{name}: {path} is a DataFrame input, which only gio_spark.select_pairs can give (the "
                        f"command line reads files)")
    return _FRAMES[path]


def content_hash(df: DataFrame):
    """A 64-bit hash of a row's content: every column, nested ones included, as JSON."""
    return F.xxhash64(F.to_json(F.struct(*[F.col(f"`{c}`") for c in df.columns])))


class FrameFiles(InputFiles):
    """A DataFrame input as the read stage's listing: one pseudo file, the registered name; its
    fingerprint is the content of every row and the schema."""

    def __init__(self, path: str, df: DataFrame) -> None:
        info = FileInfo(path, 0, 0)
        super().__init__([info], [info])
        self.df = df
        self._fingerprint: Optional[list] = None

    def fingerprint(self, fs: FileSystem) -> list[list]:
        if self._fingerprint is None:
            row = self.df.select(F.count(F.lit(1)).alias("n"),
                                 F.sum(content_hash(self.df).cast("decimal(38,0)")).alias("h")).first()
            self._fingerprint = [[self.src[0].path, int(row["n"]), str(row["h"]), self.df.schema.json()]]
        return self._fingerprint


def _string(df: DataFrame, col: str, name: str) -> None:
    if col not in df.columns:
        raise UserError(f"{name}: the DataFrame has no column {col!r} (columns: {', '.join(df.columns)})")
    kind = df.schema[col].dataType
    if not isinstance(kind, T.StringType):
        raise UserError(f"{name}: column {col!r} is {kind.simpleString()}, expected a string column")


def check_frame(df: DataFrame, inp: InputConfig, name: str) -> None:
    """The columns the input names exist and hold what they must (no Spark job)."""
    _string(df, inp.src_col, name)
    if inp.tgt_col:
        _string(df, inp.tgt_col, name)
    if inp.id_col and inp.id_col not in df.columns:
        raise UserError(f"{name}: the DataFrame has no id column {inp.id_col!r} (columns: {', '.join(df.columns)}); "
                        f"leave id_col out to number rows by their content")


class FrameReader(Reader):
    format = "dataframe"
    has_files = False  # nothing to find on a filesystem before the run

    def candidates(self, inp: InputConfig, src_lang: str, tgt_lang: str) -> list[str]:
        return []

    def list(self, fs: FileSystem, inp: InputConfig, src_lang: str, tgt_lang: str, name: str) -> InputFiles:
        df = frame(inp.path, name)
        check_frame(df, inp, name)
        return FrameFiles(inp.path, df)

    def read(self, spark, fs: FileSystem, inp: InputConfig, src_lang: str, tgt_lang: str, name: str,
             files: InputFiles) -> RawPairs:
        df = frame(inp.path, name)
        consumed = tuple(c for c in (inp.src_col, inp.tgt_col) if c)
        extra = [c for c in check_user_columns(df.columns, tuple(c for c in ("src", "tgt") if c in consumed), inp.path,
                                               name) if c not in consumed]  # the sides come back under their names
        src = F.col(f"`{inp.src_col}`")
        tgt = F.col(f"`{inp.tgt_col}`") if inp.tgt_col else F.lit("")
        if inp.id_col:
            ident = F.col(f"`{inp.id_col}`")
            kind = df.schema[inp.id_col].dataType
            pid = ident.cast("long") if isinstance(kind, (T.IntegerType, T.LongType, T.ShortType, T.ByteType)) \
                else F.xxhash64(ident)
            checks = df.agg(F.count(F.lit(1)).alias("n"), F.count_if(ident.isNull()).alias("nulls"),
                            F.countDistinct(pid).alias("ids")).first()
            if checks["nulls"]:
                raise UserError(f"{name}: {checks['nulls']} rows have a null {inp.id_col!r}")
            if checks["ids"] != checks["n"]:
                raise UserError(f"{name}: column {inp.id_col!r} repeats {checks['n'] - checks['ids']} ids; pair ids "
                                f"must be unique (leave id_col out to number rows by their content)")
            repeated = F.lit(False)
        else:
            pid = content_hash(df)
            repeated = F.row_number().over(Window.partitionBy("pair_id").orderBy(F.lit(0))) > 1
        rows = df.select(pid.alias("pair_id"), src.alias("src"), tgt.alias("tgt"), *[F.col(f"`{c}`") for c in extra])
        reasons = [(F.col("src").isNull() | (F.col("tgt").isNull() if inp.tgt_col else F.lit(False)), NULL_PAIR),
                   (blank("src") | (blank("tgt") if inp.tgt_col else F.lit(False)), EMPTY_PAIR)]
        if not inp.id_col:
            rows = rows.withColumn("_gio_repeat", repeated)
            reasons.insert(0, (F.col("_gio_repeat"), DUPLICATE_ROW))
        out = rows.select("pair_id", "src", "tgt", *[F.col(f"`{c}`") for c in extra], skip_reason(*reasons))
        return RawPairs(out, files, "row")
