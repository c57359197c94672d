"""Read raw sentence pairs (or precomputed vectors) into DataFrames with stable pair ids.

A pair id is ``file_ordinal * 2**40 + row``: the file's position among the input's files in
sorted order and the 0-based line (or Parquet row) in that file, so ids survive reruns.
Every input row is accounted for: kept, or counted as skipped with a reason, or an error
that names the file and row.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Optional
from urllib.parse import unquote

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from ..errors import UserError
from .config import InputConfig
from .storage import FileInfo, HadoopFS, canonical_file_uri, spark_uri

log = logging.getLogger(__name__)

FILE_SHIFT = 40
REPLACEMENT = "\ufffd"  # what decoding puts for bytes that are not UTF-8
UNDECODABLE = "undecodable"
BAD_COLUMNS = "bad_columns"
UNMATCHED_FILE = "unmatched_file"  # never expected: a row whose file could not be numbered
INTERNAL_COLUMNS = ("_skip", "_cols")


@dataclass
class ReadStats:
    rows_in: int = 0
    rows_kept: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)
    dim: Optional[int] = None  # vectors only

    def to_dict(self) -> dict:
        out = {"rows_in": self.rows_in, "rows_kept": self.rows_kept, "skipped": dict(self.skipped), "files": list(self.files)}
        if self.dim is not None:
            out["dim"] = self.dim
        return out


@dataclass
class RawPairs:
    """Every input row as DataFrame[pair_id, src, tgt, (source columns), _skip]: ``_skip`` is
    null for a kept pair, else the reason it is not used. ``src_files[i]``/``tgt_files[i]`` are
    the files of file ordinal i (the same file for one-file formats)."""

    df: DataFrame
    src_files: list[str]
    tgt_files: list[str]
    unit: str  # what a row number counts in error messages: "line" or "row"
    tsv_width: int = 0
    rows: Optional[int] = None  # input rows, when known before the pass that writes them


@dataclass
class InputFiles:
    """The files of one input, listed once: ``src[i]``/``tgt[i]`` are file ordinal i (the same
    file for one-file formats)."""

    src: list[FileInfo]
    tgt: list[FileInfo]

    @property
    def src_paths(self) -> list[str]:
        return [f.path for f in self.src]

    @property
    def tgt_paths(self) -> list[str]:
        return [f.path for f in self.tgt]

    def fingerprint(self) -> list[list]:
        """Path, size, modification time and ETag of every file: what a stage key needs to
        notice an input replaced in place."""
        files = {f.path: f for f in (*self.src, *self.tgt)}
        return [[f.path, f.size, f.mtime, f.etag] for _, f in sorted(files.items())]


def _hidden(path: str) -> bool:
    return path.rsplit("/", 1)[-1].startswith(("_", "."))


def _files(spark: SparkSession, pattern: str, what: str) -> list[FileInfo]:
    fs = HadoopFS(spark)
    found = fs.glob_info(pattern)
    if not found and fs.exists(pattern):  # a folder: everything in it but hidden files
        found = [f for f in fs.glob_info(pattern.rstrip("/") + "/*") if not _hidden(f.path)]
    if not found:
        raise UserError(f"{what}: no input files match {pattern}")
    return found


def list_input(spark: SparkSession, inp: InputConfig, src_lang: str, tgt_lang: str, name: str) -> InputFiles:
    """The input's files in ordinal order; for text, each PREFIX.<src> with its PREFIX.<tgt>."""
    if inp.format != "text":
        files = _files(spark, spark_uri(inp.path), name)
        return InputFiles(files, files)
    fs = HadoopFS(spark)
    src_files = _files_for_lang(spark, spark_uri(inp.path), src_lang, name)
    tgt_files = []
    for f in src_files:
        stem = _stem(f.path, src_lang)
        partner = _partner(spark, stem, tgt_lang)
        if partner is None:
            raise UserError(f"{name}: {f.path} has no aligned file {stem}.{tgt_lang}[.gz]")
        tgt_files.append(fs.info(partner))
    return InputFiles(src_files, tgt_files)


def numbered_lines(spark: SparkSession, files: list[str]) -> tuple[DataFrame, list[int]]:
    """DataFrame[file_ordinal int, line long, value string, _file string] for text files (gzip
    too), the line number counted from 0 within each file, computed without a global sort; and
    the number of lines of each file.

    Only LF ends a line (a lone CR stays inside it) and a CR right before the LF is removed,
    so Unix and Windows line ends give the same lines."""
    fs = HadoopFS(spark)
    ordinal = {fs.uri_form(f): i for i, f in enumerate(files)}
    raw = (
        spark.read.option("lineSep", "\n").text(files)
        .select(_without_final_cr("value"), F.col("_metadata.file_path").alias("_file"))
        .withColumn("_mid", F.monotonically_increasing_id())
        .withColumn("_part", F.spark_partition_id())
    )
    blocks = raw.groupBy("_file", "_part").agg(F.count("*").alias("n"), F.min("_mid").alias("first")).collect()
    counts = [0] * len(files)
    offsets = []
    for row in sorted(blocks, key=lambda r: (r["_file"], r["first"])):
        i = ordinal.get(canonical_file_uri(row["_file"]))
        if i is None:
            raise RuntimeError(f"Spark read {unquote(row['_file'])}, which is not one of the listed input files")
        offsets.append((row["_file"], row["_part"], row["first"], counts[i], i))
        counts[i] += row["n"]
    table = spark.createDataFrame(offsets, "_file string, _part int, first long, start long, file_ordinal int")
    out = raw.join(F.broadcast(table), ["_file", "_part"]).select(
        "file_ordinal", (F.col("start") + F.col("_mid") - F.col("first")).alias("line"), "value", "_file"
    )
    return out, counts


def _without_final_cr(col: str) -> Column:
    """The text without one trailing CR, cut as bytes so that bytes which are not UTF-8 stay as
    they are (a string function would replace them and hide them from the UTF-8 check)."""
    return F.expr(
        f"CASE WHEN substring(cast({col} AS binary), -1, 1) = X'0D' "
        f"THEN cast(substring(cast({col} AS binary), 1, octet_length({col}) - 1) AS string) ELSE {col} END"
    ).alias(col)


def _invalid_utf8(col: str):
    """True where the text's bytes are not valid UTF-8 (Spark's text reader keeps raw bytes)."""
    if hasattr(F, "is_valid_utf8"):  # Spark 4
        return ~F.is_valid_utf8(col)
    # Spark 3.5: decoding replaces malformed bytes with U+FFFD
    return F.decode(F.col(col).cast("binary"), "UTF-8").contains(REPLACEMENT)


def _blank(col) -> Column:
    c = F.col(col) if isinstance(col, str) else col
    return F.coalesce(F.length(F.trim(c)), F.lit(0)) == 0


def _skip_reason(*checks: tuple[Column, str]) -> Column:
    """The first reason that applies, else null (the pair is kept)."""
    expr = None
    for cond, reason in reversed(checks):
        expr = F.when(cond, F.lit(reason)).otherwise(expr if expr is not None else F.lit(None).cast("string"))
    return expr.alias("_skip")


def _pair_id(ordinal_col: str, row_col: str):
    return (F.col(ordinal_col).cast("long") * F.lit(1 << FILE_SHIFT) + F.col(row_col)).alias("pair_id")


def read_text_pairs(spark, inp: InputConfig, src_lang: str, tgt_lang: str, name: str,
                    files: Optional[InputFiles] = None) -> RawPairs:
    files = files or list_input(spark, inp, src_lang, tgt_lang, name)
    src_files, tgt_files = files.src_paths, files.tgt_paths
    src, src_counts = numbered_lines(spark, src_files)
    tgt, tgt_counts = numbered_lines(spark, tgt_files)
    for sf, tf, a, b in zip(src_files, tgt_files, src_counts, tgt_counts):
        if a != b:
            raise UserError(f"{name}: aligned files differ in length: {sf} has {a} lines, {tf} has {b}")
        if a == 0:
            raise UserError(f"{name}: input file {sf} is empty")
    df = src.withColumnRenamed("value", "src").join(
        tgt.select("file_ordinal", "line", F.col("value").alias("tgt")), ["file_ordinal", "line"]
    )
    df = df.select(
        _pair_id("file_ordinal", "line"), "src", "tgt",
        _skip_reason((_invalid_utf8("src") | _invalid_utf8("tgt"), UNDECODABLE), (_blank("src") | _blank("tgt"), "empty_pair")),
    )
    return RawPairs(df, src_files, tgt_files, "line", rows=sum(src_counts))


def _files_for_lang(spark, prefix: str, lang: str, name: str) -> list[FileInfo]:
    fs = HadoopFS(spark)
    found = fs.glob_info(f"{prefix}.{lang}") + fs.glob_info(f"{prefix}.{lang}.gz")
    if not found:
        raise UserError(f"{name}: no file matches {prefix}.{lang} or {prefix}.{lang}.gz")
    return sorted(found, key=lambda f: f.path)


def _stem(path: str, lang: str) -> str:
    """PREFIX of PREFIX.<lang> or PREFIX.<lang>.gz."""
    suffix = f".{lang}.gz" if path.endswith(f".{lang}.gz") else f".{lang}"
    return path[: -len(suffix)]


def _partner(spark, stem: str, lang: str):
    fs = HadoopFS(spark)
    for candidate in (f"{stem}.{lang}", f"{stem}.{lang}.gz"):
        if fs.exists(candidate):
            return candidate
    return None


def read_tsv_pairs(spark, inp: InputConfig, name: str, listed: Optional[InputFiles] = None) -> RawPairs:
    files = (listed or list_input(spark, inp, "", "", name)).src_paths
    lines, counts = numbered_lines(spark, files)
    for f, n in zip(files, counts):
        if n == 0:
            raise UserError(f"{name}: input file {f} is empty")
    lines = lines.withColumn("_parts", F.split(F.col("value"), "\t", -1))
    if inp.header:
        headers = {r["file_ordinal"]: r["value"] for r in lines.filter(F.col("line") == 0).select("file_ordinal", "value").collect()}
        names = headers[0].split("\t")
        for i, h in headers.items():
            if h.split("\t") != names:
                raise UserError(f"{name}: {files[i]} has header {h.split(chr(9))}, {files[0]} has {names}")
        for col in (inp.src_col, inp.tgt_col):
            if col not in names:
                raise UserError(f"{name}: column {col!r} not in the TSV header {names} of {files[0]}")
        src_i, tgt_i, width = names.index(inp.src_col), names.index(inp.tgt_col), len(names)
        body = lines.filter(F.col("line") > 0)
    else:
        try:
            src_i, tgt_i = int(inp.src_col), int(inp.tgt_col)
        except ValueError as exc:
            raise UserError(f"{name}: without a header, src_col and tgt_col are 0-based column numbers") from exc
        width = max(src_i, tgt_i) + 1
        body = lines
    cols = F.size("_parts")
    bad_width = (cols != width) if inp.header else (cols < width)
    src, tgt = F.get("_parts", src_i), F.get("_parts", tgt_i)  # null, not an error, when short
    df = body.select(
        _pair_id("file_ordinal", "line"), src.alias("src"), tgt.alias("tgt"), cols.alias("_cols"),
        _skip_reason(
            (F.col("value") == "", "empty_line"),  # e.g. the blank line many editors leave at the end
            (bad_width, BAD_COLUMNS),
            (_invalid_utf8("value"), UNDECODABLE),
            (_blank(src) | _blank(tgt), "empty_pair"),
        ),
    )
    rows = sum(counts) - (len(files) if inp.header else 0)
    return RawPairs(df, files, files, "line", tsv_width=width, rows=rows)


def _parquet_with_rows(spark, files: list[str]) -> tuple[DataFrame, list[str]]:
    """The files' rows with ``_gio_ordinal`` (null only if Spark reports a file path that is not
    listed: counted and refused, never dropped) and ``_gio_row``; and the files' own columns."""
    fs = HadoopFS(spark)
    raw = spark.read.parquet(*files)
    mapping = spark.createDataFrame([(fs.uri_form(f), i) for i, f in enumerate(files)],
                                    "_gio_file string, _gio_ordinal int")
    spark_file = F.regexp_replace(F.col("_metadata.file_path"), "^file:///", "file:/")
    df = raw.select("*", spark_file.alias("_gio_file"), F.col("_metadata.row_index").alias("_gio_row"))
    return df.join(F.broadcast(mapping), "_gio_file", "left"), raw.columns


def read_parquet_pairs(spark, inp: InputConfig, src_lang: str, tgt_lang: str, name: str,
                       listed: Optional[InputFiles] = None) -> RawPairs:
    files = (listed or list_input(spark, inp, src_lang, tgt_lang, name)).src_paths
    df, columns = _parquet_with_rows(spark, files)
    if inp.format == "hf":
        col = inp.translation_col
        if col not in columns:
            raise UserError(f"{name}: no column {col!r} in {inp.path} (columns: {', '.join(columns)})")
        field_type = df.schema[col].dataType
        if not isinstance(field_type, T.StructType):
            raise UserError(f"{name}: column {col!r} is {field_type.simpleString()}, expected a struct with one field per language")
        fields = field_type.fieldNames()
        for lang in (src_lang, tgt_lang):
            if lang not in fields:
                raise UserError(f"{name}: {col!r} has no field {lang!r} (fields: {', '.join(fields)})")
        src, tgt = F.col(f"{col}.{src_lang}"), F.col(f"{col}.{tgt_lang}")
    else:
        for c in (inp.src_col, inp.tgt_col):
            if c not in columns:
                raise UserError(f"{name}: no column {c!r} in {inp.path} (columns: {', '.join(columns)})")
        src, tgt = F.col(inp.src_col), F.col(inp.tgt_col)
    extra = [c for c in columns if c not in ("src", "tgt", "pair_id", *INTERNAL_COLUMNS)]
    df = df.select(
        _pair_id("_gio_ordinal", "_gio_row"), src.cast("string").alias("src"), tgt.cast("string").alias("tgt"),
        *extra,
        _skip_reason(
            (F.col("_gio_ordinal").isNull(), UNMATCHED_FILE),
            (src.isNull() | tgt.isNull(), "null_pair"),
            (_blank(src.cast("string")) | _blank(tgt.cast("string")), "empty_pair"),
        ),
    )
    return RawPairs(df, files, files, "row", rows=spark.read.parquet(*files).count())  # from file footers


def read_vectors(spark, inp: InputConfig, name: str, listed: Optional[InputFiles] = None):
    """Precomputed embeddings: DataFrame[pair_id long, embedding array<float>, other columns]."""
    stats = ReadStats()
    files = (listed or list_input(spark, inp, "", "", name)).src_paths
    stats.files = files
    df = spark.read.parquet(*files)
    for c in (inp.id_col, inp.vector_col):
        if c not in df.columns:
            raise UserError(f"{name}: no column {c!r} in {inp.path} (columns: {', '.join(df.columns)})")
    vtype = df.schema[inp.vector_col].dataType
    if not (isinstance(vtype, T.ArrayType) and isinstance(vtype.elementType, (T.FloatType, T.DoubleType))):
        raise UserError(f"{name}: column {inp.vector_col!r} is {vtype.simpleString()}, expected array<float> or array<double>")
    vec = F.col(inp.vector_col).cast("array<float>")

    def nonfinite(x):
        return x.isNull() | F.isnan(x) | (F.abs(x) == float("inf"))

    extra = [c for c in df.columns if c not in (inp.id_col, inp.vector_col, "pair_id", "embedding")]
    df = df.select(F.col(inp.id_col).cast("long").alias("pair_id"), vec.alias("embedding"), *extra)
    checks = df.agg(
        F.count("*").alias("n"),
        F.sum(F.col("pair_id").isNull().cast("int")).alias("null_ids"),
        F.sum(F.col("embedding").isNull().cast("int")).alias("null_vecs"),
        F.min(F.size("embedding")).alias("dmin"),
        F.max(F.size("embedding")).alias("dmax"),
        F.sum(F.exists("embedding", nonfinite).cast("int")).alias("nonfinite"),
        F.countDistinct("pair_id").alias("distinct_ids"),
    ).first()
    if checks["n"] == 0:
        raise UserError(f"{name}: no rows in {inp.path}")
    if checks["null_ids"] or checks["null_vecs"]:
        raise UserError(f"{name}: {checks['null_ids']} null ids and {checks['null_vecs']} null vectors in {inp.path}")
    if checks["dmin"] != checks["dmax"]:
        bad = df.filter(F.size("embedding") != checks["dmax"]).select("pair_id").first()
        raise UserError(f"{name}: vectors of different dimensions ({checks['dmin']} to {checks['dmax']}) in {inp.path}, e.g. id {bad[0]}")
    if checks["nonfinite"]:
        bad = df.filter(F.exists("embedding", nonfinite)).select("pair_id").first()
        raise UserError(f"{name}: {checks['nonfinite']} vectors with NaN, infinite or null values in {inp.path}, e.g. id {bad[0]}")
    if checks["distinct_ids"] != checks["n"]:
        raise UserError(f"{name}: {checks['n'] - checks['distinct_ids']} duplicated ids in column {inp.id_col!r} of {inp.path}")
    stats.rows_in = stats.rows_kept = checks["n"]
    stats.dim = int(checks["dmax"])
    return df, stats


def read_pairs(spark, inp: InputConfig, src_lang: str, tgt_lang: str, name: str,
               files: Optional[InputFiles] = None) -> RawPairs:
    """Every row of a pair input, with the reason when a row is not used (see RawPairs);
    ``files`` as list_input() gave them (listed here when not given)."""
    if inp.format == "text":
        return read_text_pairs(spark, inp, src_lang, tgt_lang, name, files)
    if inp.format == "tsv":
        return read_tsv_pairs(spark, inp, name, files)
    if inp.format in ("parquet", "hf"):
        return read_parquet_pairs(spark, inp, src_lang, tgt_lang, name, files)
    raise UserError(f"{name}: format {inp.format!r} holds no sentence pairs")


def summarize(written: DataFrame, raw: RawPairs, allow_undecodable: bool, name: str) -> ReadStats:
    """Counts by skip reason of the written rows (one pass over one column), or the error
    that names the first bad file and row."""
    counts = {r["_skip"]: r["count"] for r in written.groupBy("_skip").count().collect()}
    stats = ReadStats(files=sorted(set(raw.src_files) | set(raw.tgt_files)))
    stats.rows_in = sum(counts.values())
    stats.skipped = dict(sorted((k, v) for k, v in counts.items() if k is not None))
    stats.rows_kept = counts.get(None, 0)

    def first(reason: str, *cols):
        row = written.filter(F.col("_skip") == reason).orderBy("pair_id").select("pair_id", *cols).first()
        ordinal, index = divmod(row["pair_id"], 1 << FILE_SHIFT)
        return row, ordinal, index + 1

    if UNMATCHED_FILE in counts:
        raise RuntimeError(f"{name}: {counts[UNMATCHED_FILE]} rows came from files Spark names differently from "
                           f"the listing of {', '.join(stats.files)}; refusing to number them")
    if BAD_COLUMNS in counts:
        row, ordinal, number = first(BAD_COLUMNS, "_cols")
        raise UserError(f"{name}: {raw.src_files[ordinal]} line {number} has {row['_cols']} tab-separated "
                        f"columns, expected {raw.tsv_width}")
    if UNDECODABLE in counts:
        if not allow_undecodable:
            row, ordinal, number = first(UNDECODABLE, _invalid_utf8("src").alias("bad_src"))
            path = raw.src_files[ordinal] if row["bad_src"] else raw.tgt_files[ordinal]
            raise UserError(f"{name}: {path} {raw.unit} {number} is not valid UTF-8 "
                            f"(set allow_undecodable: true to skip and count such rows)")
        log.warning("%s: skipped %d rows that are not valid UTF-8", name, counts[UNDECODABLE])
    if stats.rows_in == 0:
        raise UserError(f"{name}: no rows in the input")
    if stats.rows_kept == 0:
        raise UserError(f"{name}: no usable pairs (skipped: {stats.skipped})")
    return stats


def kept_pairs(df: DataFrame) -> DataFrame:
    """The used pairs of a written pairs stage, without the internal columns."""
    if "_skip" not in df.columns:
        return df
    return df.filter(F.col("_skip").isNull()).drop(*[c for c in INTERNAL_COLUMNS if c in df.columns])


_READ_FAILED = re.compile(r"FAILED_READ_FILE|[Ee]ncountered error while reading file|[Ee]rror while reading file")
_FILE_IN_MESSAGE = re.compile(r"reading file (\S+?)\.?(?:\s|$)")


def _root_cause(exc: BaseException) -> Optional[str]:
    """``Class: message`` of the innermost Java cause of a Py4J/Spark error, when there is one."""
    cause = getattr(exc, "java_exception", None)
    last = None
    try:
        while cause is not None:
            last = cause
            cause = cause.getCause()
        if last is not None:
            message = str(last.getMessage() or "").strip().splitlines()
            return f"{last.getClass().getSimpleName()}: {message[0] if message else ''}".rstrip(": ")
    except Exception:  # the JVM is gone or the object is not a Java exception
        pass
    found = re.findall(r"Caused by: ([\w.$]+)(?::\s*([^\n]*))?", str(exc))
    if found:
        cls, message = found[-1]
        return f"{cls.rsplit('.', 1)[-1]}: {message.strip()}".rstrip(": ")
    return None


def read_failure(exc: BaseException, name: str) -> Optional[UserError]:
    """A one-line UserError for Spark's failure to read an input file (e.g. a corrupt or
    truncated .gz), naming the file when the message does; None for other errors."""
    text = str(exc)
    if not _READ_FAILED.search(text):
        return None
    match = _FILE_IN_MESSAGE.search(text)
    path = "an input file"
    if match:
        path = canonical_file_uri(unquote(match.group(1)))
        path = path[len("file:"):] if path.startswith("file:/") else path
    cause = _root_cause(exc)
    detail = f" ({cause})" if cause else ""
    return UserError(f"{name}: cannot read {path}{detail}; is the file corrupt or truncated?")
