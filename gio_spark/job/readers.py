"""Read raw sentence pairs (or precomputed vectors) into DataFrames with stable pair ids.

A pair id is ``file_ordinal * 2**40 + row``: the file's position among the input's files in
sorted order and the 0-based line (or Parquet row) in that file, so ids survive reruns.
Every input row is accounted for: kept, or counted as skipped with a reason, or an error
that names the file and row.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from ..errors import UserError
from .config import InputConfig
from .storage import HadoopFS, spark_uri

log = logging.getLogger(__name__)

FILE_SHIFT = 40
REPLACEMENT = "\ufffd"  # what decoding puts for bytes that are not UTF-8


@dataclass
class ReadStats:
    rows_in: int = 0
    rows_kept: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"rows_in": self.rows_in, "rows_kept": self.rows_kept, "skipped": dict(self.skipped), "files": list(self.files)}


def _files(spark: SparkSession, pattern: str, what: str) -> list[str]:
    fs = HadoopFS(spark)
    found = fs.glob(pattern)
    if not found and fs.exists(pattern):  # a folder: everything in it but hidden files
        found = [f for f in fs.glob(pattern.rstrip("/") + "/*") if not f.rsplit("/", 1)[-1].startswith(("_", "."))]
    if not found:
        raise UserError(f"{what}: no input files match {pattern}")
    return found


def numbered_lines(spark: SparkSession, files: list[str]) -> DataFrame:
    """DataFrame[file_ordinal int, line long, value string] for text files (gzip too), the line
    number counted from 0 within each file, computed without a global sort."""
    ordinal = {f: i for i, f in enumerate(files)}
    raw = (
        spark.read.text(files)
        .select("value", F.col("_metadata.file_path").alias("_file"))
        .withColumn("_mid", F.monotonically_increasing_id())
        .withColumn("_part", F.spark_partition_id())
    )
    blocks = raw.groupBy("_file", "_part").agg(F.count("*").alias("n"), F.min("_mid").alias("first")).collect()
    offsets, running = [], {}
    for row in sorted(blocks, key=lambda r: (r["_file"], r["first"])):
        start = running.get(row["_file"], 0)
        offsets.append((row["_file"], row["_part"], row["first"], start))
        running[row["_file"]] = start + row["n"]
    norm = {spark_uri_file(f): i for f, i in ordinal.items()}
    table = spark.createDataFrame(
        [(f, p, first, start, norm.get(spark_uri_file(f), -1)) for f, p, first, start in offsets],
        "_file string, _part int, first long, start long, file_ordinal int",
    )
    out = raw.join(F.broadcast(table), ["_file", "_part"]).select(
        "file_ordinal", (F.col("start") + F.col("_mid") - F.col("first")).alias("line"), "value", "_file"
    )
    return out


def spark_uri_file(path: str) -> str:
    """Spark reports local files as file:/x while Hadoop globs give file:/x too; normalise."""
    return path.replace("file:///", "file:/")


def _line_counts(lines: DataFrame) -> dict[int, int]:
    return {r["file_ordinal"]: r["n"] for r in lines.groupBy("file_ordinal").agg(F.count("*").alias("n")).collect()}


def _invalid_utf8(col: str):
    """True where the text's bytes are not valid UTF-8 (Spark's text reader keeps raw bytes)."""
    if hasattr(F, "is_valid_utf8"):  # Spark 4
        return ~F.is_valid_utf8(col)
    # Spark 3.5: decoding replaces malformed bytes with U+FFFD
    return F.decode(F.col(col).cast("binary"), "UTF-8").contains(REPLACEMENT)


def _check_utf8(df: DataFrame, cols: list[tuple[str, str]], allow: bool, stats: ReadStats, name: str) -> DataFrame:
    """Stop at the first (file, line) whose text is not UTF-8, or with ``allow`` drop and count
    such rows. ``cols`` pairs each text column with the column naming its file."""
    bad = F.lit(False)
    for text, _ in cols:
        bad = bad | _invalid_utf8(text)
    if allow:
        n = df.filter(bad).count()
        if n:
            stats.skipped["undecodable"] = n
            log.warning("%s: skipped %d rows that are not valid UTF-8", name, n)
        return df.filter(~bad)
    for text, file_col in cols:
        first = df.filter(_invalid_utf8(text)).select(file_col, "line").orderBy("file_ordinal", "line").limit(1).collect()
        if first:
            raise UserError(
                f"{name}: {first[0][file_col]} line {first[0]['line'] + 1} is not valid UTF-8 "
                f"(set allow_undecodable: true to skip and count such rows)"
            )
    return df


def _drop_empty(df: DataFrame, stats: ReadStats) -> DataFrame:
    empty = F.coalesce(F.length(F.trim(F.col("src"))), F.lit(0)).eqNullSafe(0) | F.coalesce(
        F.length(F.trim(F.col("tgt"))), F.lit(0)
    ).eqNullSafe(0)
    n = df.filter(empty).count()
    if n:
        stats.skipped["empty_pair"] = stats.skipped.get("empty_pair", 0) + n
    return df.filter(~empty)


def _pair_id(ordinal_col: str, row_col: str):
    return (F.col(ordinal_col).cast("long") * F.lit(1 << FILE_SHIFT) + F.col(row_col)).alias("pair_id")


def read_text_pairs(spark, inp: InputConfig, src_lang: str, tgt_lang: str, allow_undecodable: bool, name: str):
    stats = ReadStats()
    prefix = spark_uri(inp.path)
    src_files = _files_for_lang(spark, prefix, src_lang, name)
    tgt_files = []
    for f in src_files:
        stem, gz = _stem(f, src_lang)
        partner = _partner(spark, stem, tgt_lang)
        if partner is None:
            raise UserError(f"{name}: {f} has no aligned file {stem}.{tgt_lang}[.gz]")
        tgt_files.append(partner)
    stats.files = src_files + tgt_files
    src = numbered_lines(spark, src_files).withColumnRenamed("value", "src")
    tgt = numbered_lines(spark, tgt_files).withColumnRenamed("value", "tgt").withColumnRenamed("_file", "_tgt_file")
    src_counts, tgt_counts = _line_counts(src), _line_counts(tgt)
    for i, (sf, tf) in enumerate(zip(src_files, tgt_files)):
        a, b = src_counts.get(i, 0), tgt_counts.get(i, 0)
        if a != b:
            raise UserError(f"{name}: aligned files differ in length: {sf} has {a} lines, {tf} has {b}")
        if a == 0:
            raise UserError(f"{name}: input file {sf} is empty")
    stats.rows_in = sum(src_counts.values())
    df = src.join(tgt.select("file_ordinal", "line", "tgt", "_tgt_file"), ["file_ordinal", "line"])
    df = _check_utf8(df, [("src", "_file"), ("tgt", "_tgt_file")], allow_undecodable, stats, name)
    df = df.select(_pair_id("file_ordinal", "line"), "src", "tgt")
    df = _drop_empty(df, stats)
    return df, stats


def _files_for_lang(spark, prefix: str, lang: str, name: str) -> list[str]:
    fs = HadoopFS(spark)
    found = fs.glob(f"{prefix}.{lang}") + fs.glob(f"{prefix}.{lang}.gz")
    if not found:
        raise UserError(f"{name}: no file matches {prefix}.{lang} or {prefix}.{lang}.gz")
    return sorted(found)


def _stem(path: str, lang: str) -> tuple[str, bool]:
    if path.endswith(f".{lang}.gz"):
        return path[: -len(f".{lang}.gz")], True
    return path[: -len(f".{lang}")], False


def _partner(spark, stem: str, lang: str):
    fs = HadoopFS(spark)
    for candidate in (f"{stem}.{lang}", f"{stem}.{lang}.gz"):
        if fs.exists(candidate):
            return candidate
    return None


def read_tsv_pairs(spark, inp: InputConfig, allow_undecodable: bool, name: str):
    stats = ReadStats()
    files = _files(spark, spark_uri(inp.path), name)
    stats.files = files
    lines = numbered_lines(spark, files)
    parts = F.split(F.col("value"), "\t", -1)
    lines = lines.withColumn("_parts", parts).withColumn("_n", F.size("_parts"))
    if inp.header:
        headers = {r["file_ordinal"]: r["value"] for r in lines.filter(F.col("line") == 0).select("file_ordinal", "value").collect()}
        first = headers.get(0)
        if first is None:
            raise UserError(f"{name}: {files[0]} is empty")
        names = first.split("\t")
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
        width = int(lines.select(F.max("_n")).first()[0] or 0)
        body = lines
    wrong = body.filter(F.col("_n") != width).select("_file", "line", "_n").orderBy("file_ordinal", "line").limit(1).collect()
    if wrong:
        w = wrong[0]
        raise UserError(f"{name}: {w['_file']} line {w['line'] + 1} has {w['_n']} tab-separated columns, expected {width}")
    stats.rows_in = body.count()
    if stats.rows_in == 0:
        raise UserError(f"{name}: no rows in {inp.path}")
    df = body.select("file_ordinal", "line", "_file", F.col("_parts")[src_i].alias("src"), F.col("_parts")[tgt_i].alias("tgt"))
    df = _check_utf8(df, [("src", "_file"), ("tgt", "_file")], allow_undecodable, stats, name)
    df = df.select(_pair_id("file_ordinal", "line"), "src", "tgt")
    return _drop_empty(df, stats), stats


def _parquet_with_rows(spark, inp: InputConfig, name: str):
    files = _files(spark, spark_uri(inp.path), name)
    ordinal = {spark_uri_file(f): i for i, f in enumerate(files)}
    df = spark.read.parquet(*files)
    mapping = spark.createDataFrame([(f, i) for f, i in ordinal.items()], "_file string, file_ordinal int")
    df = df.select("*", F.col("_metadata.file_path").alias("_file"), F.col("_metadata.row_index").alias("_row"))
    df = df.join(F.broadcast(mapping), "_file")
    return df, files


def read_parquet_pairs(spark, inp: InputConfig, src_lang: str, tgt_lang: str, name: str):
    stats = ReadStats()
    df, stats.files = _parquet_with_rows(spark, inp, name)
    if inp.format == "hf":
        col = inp.translation_col
        if col not in df.columns:
            raise UserError(f"{name}: no column {col!r} in {inp.path} (columns: {', '.join(c for c in df.columns if not c.startswith('_'))})")
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
            if c not in df.columns:
                raise UserError(f"{name}: no column {c!r} in {inp.path} (columns: {', '.join(x for x in df.columns if not x.startswith('_'))})")
        src, tgt = F.col(inp.src_col), F.col(inp.tgt_col)
    extra = [c for c in df.columns if not c.startswith("_") and c not in ("file_ordinal", "src", "tgt", "pair_id")]
    df = df.select(_pair_id("file_ordinal", "_row"), src.cast("string").alias("src"), tgt.cast("string").alias("tgt"), *extra)
    stats.rows_in = df.count()
    if stats.rows_in == 0:
        raise UserError(f"{name}: no rows in {inp.path}")
    nulls = df.filter(F.col("src").isNull() | F.col("tgt").isNull()).count()
    if nulls:
        stats.skipped["null_pair"] = nulls
        df = df.filter(F.col("src").isNotNull() & F.col("tgt").isNotNull())
    return _drop_empty(df, stats), stats


def read_vectors(spark, inp: InputConfig, name: str):
    """Precomputed embeddings: DataFrame[pair_id long, embedding array<float>, other columns]."""
    stats = ReadStats()
    files = _files(spark, spark_uri(inp.path), name)
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
    return df, stats


def read_pairs(spark, inp: InputConfig, src_lang: str, tgt_lang: str, allow_undecodable: bool, name: str):
    """DataFrame[pair_id, src, tgt, (source columns)] and its ReadStats."""
    if inp.format == "text":
        df, stats = read_text_pairs(spark, inp, src_lang, tgt_lang, allow_undecodable, name)
    elif inp.format == "tsv":
        df, stats = read_tsv_pairs(spark, inp, allow_undecodable, name)
    elif inp.format in ("parquet", "hf"):
        df, stats = read_parquet_pairs(spark, inp, src_lang, tgt_lang, name)
    else:
        raise UserError(f"{name}: format {inp.format!r} holds no sentence pairs")
    stats.rows_kept = stats.rows_in - sum(stats.skipped.values())
    if stats.rows_kept == 0:
        raise UserError(f"{name}: no usable pairs in {inp.path} (skipped: {stats.skipped})")
    return df, stats
