"""What every reader shares: stable pair ids, skip reasons, numbered lines, input listing.

A pair id is ``file_ordinal * 2**40 + row``: the file's position among the input's files in
sorted order and the 0-based line (or Parquet row) in that file, so ids survive reruns.
Every input row is accounted for: kept, or counted as skipped with a reason, or an error
that names the file and row.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Optional, Sequence
from urllib.parse import unquote

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from ...errors import UserError
from ..config import InputConfig
from ..fs import FileInfo, FileSystem
from ..uri import canonical_file_uri, escape_glob, has_glob, shown

log = logging.getLogger(__name__)

FILE_SHIFT = 40
REPLACEMENT = "\ufffd"  # what decoding puts for bytes that are not UTF-8
UNDECODABLE = "undecodable"
BAD_COLUMNS = "bad_columns"
UNMATCHED_FILE = "unmatched_file"  # never expected: a row whose file could not be numbered
UNNUMBERED = "unnumbered"  # never kept: a line whose input split changed between the read's two passes
EMPTY_PAIR = "empty_pair"
EMPTY_LINE = "empty_line"
NULL_PAIR = "null_pair"
DUPLICATE_ROW = "duplicate_row"  # a DataFrame's row identical to another, numbered by its content
# every reason a row is not used; the read stage counts each (and refuses a run with an error reason)
SKIP_REASONS = (UNDECODABLE, BAD_COLUMNS, UNMATCHED_FILE, UNNUMBERED, EMPTY_PAIR, EMPTY_LINE, NULL_PAIR, DUPLICATE_ROW)
INTERNAL_COLUMNS = ("_skip", "_cols", "_tokens_src", "_tokens_tgt")
# columns the job itself writes next to the user's: an input column of the same name is refused
JOB_COLUMNS = ("pair_id", "src", "tgt", "cluster", "selection_rank", "target_distance", "density_ratio", "embedding")
INTERNAL_PREFIX = "_gio_"


@dataclass
class InputFiles:
    """The files of one input, listed once: ``src[i]``/``tgt[i]`` are file ordinal i (the same
    file for one-file formats); ``base`` is the folder partition columns are read from."""

    src: list[FileInfo]
    tgt: list[FileInfo]
    base: Optional[str] = None

    @property
    def src_paths(self) -> list[str]:
        return [f.path for f in self.src]

    @property
    def tgt_paths(self) -> list[str]:
        return [f.path for f in self.tgt]

    def fingerprint(self, fs: FileSystem) -> list[list]:
        """Path, size and content hash (S3 ETag, the filesystem's checksum, or a SHA-256 of the
        bytes) of every file: what a stage key needs to notice an input replaced in place, also
        with the same size and time. Not the time: the same bytes written again keep the key."""
        files = {f.path: f for f in (*self.src, *self.tgt)}
        return [[f.path, f.size, fs.content_hash(f)] for _, f in sorted(files.items())]


@dataclass
class RawPairs:
    """Every input row as DataFrame[pair_id, src, tgt, (user columns), _skip]: ``_skip`` is
    null for a kept pair, else the reason it is not used (vectors: [pair_id, embedding, ...])."""

    df: DataFrame
    files: InputFiles
    unit: str  # what a row number counts in error messages: "line" or "row"
    tsv_width: int = 0
    rows: Optional[int] = None  # input rows, when known before the pass that writes them
    dim: Optional[int] = None  # vectors only


class Reader:
    """One input format. ``candidates`` and ``missing`` serve the check before any Spark job
    (the paths that must match something, and a hint when none does), ``list`` lists the files
    once, ``read`` gives every row as RawPairs; ``embedded``: the rows carry their own vectors."""

    format: str
    embedded = False
    has_files = True  # the input is files, checked and listed on a filesystem (not an in-memory DataFrame)

    def candidates(self, inp: InputConfig, src_lang: str, tgt_lang: str) -> list[str]:
        return [inp.path]

    def missing(self, inp: InputConfig, src_lang: str, tgt_lang: str, name: str) -> str:
        return glob_hint(inp.path)

    def list(self, fs: FileSystem, inp: InputConfig, src_lang: str, tgt_lang: str, name: str) -> InputFiles:
        files = resolve(fs, inp.path, name)
        if not files:
            raise UserError(f"{name}: no input files match {shown(inp.path)}{glob_hint(inp.path)}")
        return InputFiles(files, files)

    def read(self, spark, fs: FileSystem, inp: InputConfig, src_lang: str, tgt_lang: str, name: str,
             files: InputFiles) -> RawPairs:
        raise TypeError(f"{type(self).__name__} does not define read()")


def spark_paths(paths: Sequence[str]) -> list[str]:
    """Listed files as Spark's readers must get them: escaped, since they glob every path."""
    return [escape_glob(p) if has_glob(p) else p for p in paths]


def resolve(fs: FileSystem, path: str, name: str) -> list[FileInfo]:
    """The files a path means: the file or folder itself when it exists (a folder: every file
    below it, hidden ones left out), else the files and folders its glob pattern matches."""
    if fs.exists(path):
        return [fs.info(path)] if not fs.is_dir(path) else _folder_files(fs, path, name)
    if not has_glob(path):
        return []
    found = list(fs.glob(path))
    for folder in fs.glob_dirs(path):
        found += _folder_files(fs, folder, name)
    return sorted({f.path: f for f in found}.values(), key=lambda f: f.path)


def _folder_files(fs: FileSystem, folder: str, name: str) -> list[FileInfo]:
    files = fs.files_under(folder)
    if not files:
        raise UserError(f"{name}: folder {shown(folder)} holds no input files (hidden files, starting with _ or ., "
                        f"are left out)")
    return files


def glob_hint(path: str) -> str:
    """What to say when a path with glob characters matched nothing."""
    if not has_glob(path):
        return ""
    return (f" ({shown(path)} is read as a glob pattern: *, ?, [, ], {{ and }} are special; put a backslash "
            f"before each one that is part of a file name)")


@dataclass
class Lines:
    """The lines of text files: ``df`` is DataFrame[file_ordinal int, line long, value string],
    the line counted from 0 within its file (both null for a line whose split the first pass did
    not see: see UNNUMBERED); ``counts`` and ``heads`` (when asked) are each file's number of
    lines and first line."""

    df: DataFrame
    counts: list[int]
    heads: list[Optional[str]]


def numbered_lines(spark: SparkSession, fs: FileSystem, files: list[str], heads: bool = False) -> Lines:
    """Every line of the text files (gzip too), numbered within its file without a global sort:
    a first pass counts the lines of each input split (one small aggregation), the second numbers
    each line from its split's offset. Splits are keyed by file, start, length and partition, so
    a line whose split differs between the passes (Spark sizes splits by the cores present, which
    can change between two jobs) is left unnumbered, never numbered wrong.

    Only LF ends a line (a lone CR stays inside it) and a CR right before the LF is removed,
    so Unix and Windows line ends give the same lines."""
    ordinal = {fs.uri_form(f): i for i, f in enumerate(files)}
    split = ["_file", "_start", "_len", "_part"]
    scan = spark.read.option("lineSep", "\n").text(spark_paths(files)).select(
        _without_final_cr("value"), F.col("_metadata.file_path").alias("_file"),
        F.col("_metadata.file_block_start").alias("_start"), F.col("_metadata.file_block_length").alias("_len"),
        F.spark_partition_id().alias("_part"), F.monotonically_increasing_id().alias("_mid"))
    firsts = [F.min_by("value", "_mid").alias("head")] if heads else []
    blocks = scan.groupBy(*split).agg(F.count("*").alias("n"), F.min("_mid").alias("first"), *firsts).collect()
    counts, first_lines = [0] * len(files), [None] * len(files)
    offsets = []
    for row in sorted(blocks, key=lambda r: (r["_file"], r["_start"])):
        i = ordinal.get(canonical_file_uri(row["_file"]))
        if i is None:
            raise RuntimeError(f"Spark read {unquote(row['_file'])}, which is not one of the listed input files")
        if heads and row["_start"] == 0:
            first_lines[i] = row["head"]
        offsets.append((row["_file"], row["_start"], row["_len"], row["_part"], i, counts[i] - row["first"]))
        counts[i] += row["n"]
    table = spark.createDataFrame(offsets, "_file string, _start long, _len long, _part int, file_ordinal int, "
                                           "_shift long")
    out = scan.join(F.broadcast(table), split, "left").select(
        "file_ordinal", (F.col("_mid") + F.col("_shift")).alias("line"), "value")
    return Lines(out, counts, first_lines)


def _without_final_cr(col: str) -> Column:
    """The text without one trailing CR, cut as bytes so that bytes which are not UTF-8 stay as
    they are (a string function would replace them and hide them from the UTF-8 check)."""
    return F.expr(
        f"CASE WHEN substring(cast({col} AS binary), -1, 1) = X'0D' "
        f"THEN cast(substring(cast({col} AS binary), 1, octet_length({col}) - 1) AS string) ELSE {col} END"
    ).alias(col)


def invalid_utf8(col: str) -> Column:
    """True where the text's bytes are not valid UTF-8 (Spark's text reader keeps raw bytes)."""
    if hasattr(F, "is_valid_utf8"):  # Spark 4
        return ~F.is_valid_utf8(col)
    # Spark 3.5: decoding replaces malformed bytes with U+FFFD
    return F.decode(F.col(col).cast("binary"), "UTF-8").contains(REPLACEMENT)


def blank(col) -> Column:
    """Null, empty, or nothing but whitespace (any Unicode white space: tabs, no-break spaces...)."""
    c = F.col(col) if isinstance(col, str) else col
    return F.coalesce(c.rlike(r"(?U)^\s*$"), F.lit(True))


def tokens(col: str) -> Column:
    """White-space tokens of a text (runs of anything but Unicode white space); 0 for null."""
    return F.coalesce(F.size(F.filter(F.split(F.col(col), r"(?U)\s+"), lambda x: x != "")), F.lit(0))


def skip_reason(*checks: tuple[Column, str]) -> Column:
    """The first reason that applies, else null (the pair is kept)."""
    expr = None
    for cond, reason in reversed(checks):
        expr = F.when(cond, F.lit(reason)).otherwise(expr if expr is not None else F.lit(None).cast("string"))
    return expr.alias("_skip")


def pair_id(ordinal_col: str, row_col: str) -> Column:
    return (F.col(ordinal_col).cast("long") * F.lit(1 << FILE_SHIFT) + F.col(row_col)).alias("pair_id")


def check_user_columns(columns: Sequence[str], allowed: Sequence[str], where: str, name: str) -> list[str]:
    """The input's own columns that travel to the output (all but ``allowed``, the job's
    columns read under their own names); one that would collide with a column the job
    writes (or uses inside) is refused, before any work."""
    keep = []
    for col in columns:
        if col in allowed:
            continue
        if col in JOB_COLUMNS or col in INTERNAL_COLUMNS or col.startswith(INTERNAL_PREFIX):
            raise UserError(
                f"{name}: column {col!r} of {where} has the name of a column the job writes "
                f"({', '.join(JOB_COLUMNS + INTERNAL_COLUMNS)} and {INTERNAL_PREFIX}*); rename it in the input"
            )
        keep.append(col)
    return keep


_ESCAPED_BACKSLASH = r"(?<!\\)((?:\\\\)*)"


def unescaped(col: Column) -> Column:
    r"""Text with the escapes of the job's text and TSV output undone: ``\t``, ``\n``, ``\r``
    and ``\\`` (an escape is a backslash preceded by an even number of backslashes)."""
    out = col
    for letter, char in (("t", "\t"), ("n", "\n"), ("r", "\r")):
        out = F.regexp_replace(out, _ESCAPED_BACKSLASH + r"\\" + letter, "$1" + char)
    return F.replace(out, F.lit("\\\\"), F.lit("\\"))
