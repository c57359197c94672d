"""Precomputed embeddings in Parquet: an id column and an array<float> vector column. These
rows skip the embedding stage."""
from __future__ import annotations

from pyspark.sql import functions as F
from pyspark.sql import types as T

from ...errors import UserError
from ..config import InputConfig
from ..fs import FileSystem
from ..uri import shown
from .base import InputFiles, RawPairs, Reader, check_user_columns, spark_paths
from .parquet import list_parquet


def _nonfinite(x):
    return x.isNull() | F.isnan(x) | (F.abs(x) == float("inf"))


class VectorsReader(Reader):
    format = "vectors"
    embedded = True  # rows carry their vectors: no embedding stage

    def list(self, fs: FileSystem, inp: InputConfig, src_lang: str, tgt_lang: str, name: str) -> InputFiles:
        return list_parquet(fs, inp, name)

    def read(self, spark, fs: FileSystem, inp: InputConfig, src_lang: str, tgt_lang: str, name: str,
             files: InputFiles) -> RawPairs:
        """DataFrame[pair_id long, embedding array<float>, user columns, _skip]; every row is
        checked (ids, dimensions, finite values) in one pass first."""
        where = shown(inp.path)
        reader = spark.read.option("basePath", files.base) if files.base else spark.read
        df = reader.parquet(*spark_paths(files.src_paths))
        for c in (inp.id_col, inp.vector_col):
            if c not in df.columns:
                raise UserError(f"{name}: no column {c!r} in {where} (columns: {', '.join(df.columns)})")
        vtype = df.schema[inp.vector_col].dataType
        if not (isinstance(vtype, T.ArrayType) and isinstance(vtype.elementType, (T.FloatType, T.DoubleType))):
            raise UserError(f"{name}: column {inp.vector_col!r} is {vtype.simpleString()}, expected array<float> or "
                            f"array<double>")
        extra = check_user_columns([c for c in df.columns if c not in (inp.id_col, inp.vector_col)], (), where, name)
        df = df.select(F.col(f"`{inp.id_col}`").cast("long").alias("pair_id"),
                       F.col(f"`{inp.vector_col}`").cast("array<float>").alias("embedding"),
                       *[F.col(f"`{c}`") for c in extra])
        checks = df.agg(
            F.count("*").alias("n"),
            F.sum(F.col("pair_id").isNull().cast("int")).alias("null_ids"),
            F.sum(F.col("embedding").isNull().cast("int")).alias("null_vecs"),
            F.min(F.size("embedding")).alias("dmin"),
            F.max(F.size("embedding")).alias("dmax"),
            F.sum(F.exists("embedding", _nonfinite).cast("int")).alias("nonfinite"),
            F.countDistinct("pair_id").alias("distinct_ids"),
        ).first()
        if checks["n"] == 0:
            raise UserError(f"{name}: no rows in {where}")
        if checks["null_ids"] or checks["null_vecs"]:
            raise UserError(f"{name}: {checks['null_ids']} null ids and {checks['null_vecs']} null vectors in {where}")
        if checks["dmin"] != checks["dmax"]:
            bad = df.filter(F.size("embedding") != checks["dmax"]).select("pair_id").first()
            raise UserError(f"{name}: vectors of different dimensions ({checks['dmin']} to {checks['dmax']}) in {where}, "
                            f"e.g. id {bad[0]}")
        if checks["nonfinite"]:
            bad = df.filter(F.exists("embedding", _nonfinite)).select("pair_id").first()
            raise UserError(f"{name}: {checks['nonfinite']} vectors with NaN, infinite or null values in {where}, "
                            f"e.g. id {bad[0]}")
        if checks["distinct_ids"] != checks["n"]:
            raise UserError(f"{name}: {checks['n'] - checks['distinct_ids']} duplicated ids in column {inp.id_col!r} "
                            f"of {where}")
        df = df.withColumn("_skip", F.lit(None).cast("string"))
        return RawPairs(df, files, "row", rows=int(checks["n"]), dim=int(checks["dmax"]))
