"""Parquet files: ``src_col``/``tgt_col`` columns (``parquet``), or the Hugging Face WMT14 layout,
a struct column ``translation`` with one field per language (``hf``). A folder is read with
everything below it; Hive-style partition folders (``domain=EMEA/``) become columns."""
from __future__ import annotations

from typing import Optional

from pyspark.sql import functions as F
from pyspark.sql import types as T

from ...errors import UserError
from ..config import InputConfig
from ..fs import FileInfo, FileSystem
from ..uri import has_glob, shown, static_prefix
from .base import (EMPTY_PAIR, NULL_PAIR, UNMATCHED_FILE, InputFiles, RawPairs, Reader, blank, check_user_columns, glob_hint, pair_id,
                   resolve, skip_reason, spark_paths)

PARQUET_SUFFIXES = (".parquet", ".parq", ".pq")
MAGIC = b"PAR1"


def list_parquet(fs: FileSystem, inp: InputConfig, name: str) -> InputFiles:
    """The Parquet files of an input, each checked for Parquet's magic number unless its name
    says Parquet, and the folder to read partition columns from (when laid out so)."""
    files = resolve(fs, inp.path, name)
    if not files:
        raise UserError(f"{name}: no input files match {shown(inp.path)}{glob_hint(inp.path)}")
    for f in files:
        if not f.path.lower().endswith(PARQUET_SUFFIXES) and fs.ends(f, 4) != (MAGIC, MAGIC):
            raise UserError(f"{name}: {shown(f.path)} is not a Parquet file; remove it from the input or point at the "
                            f"Parquet files alone (e.g. {shown(inp.path.rstrip('/'))}/*.parquet)")
    return InputFiles(files, files, base=_partition_base(fs, inp.path, files, name))


def _partition_base(fs: FileSystem, path: str, files: list[FileInfo], name: str) -> Optional[str]:
    """The folder whose ``key=value`` subfolders hold the files, when they all lie in such
    subfolders with the same keys; None for files without partition folders. A mix (a file
    beside the partition folders, or other keys) is refused: it cannot be read whole."""
    root_uri = static_prefix(path) if has_glob(path) else path
    if not fs.is_dir(root_uri):
        return None
    root = fs.info(root_uri).path.rstrip("/") + "/"
    layouts: dict[tuple, str] = {}
    for f in files:
        if not f.path.startswith(root):
            return None
        dirs = f.path[len(root):].split("/")[:-1]
        keys = tuple(d.split("=", 1)[0] for d in dirs) if all("=" in d for d in dirs) else None
        layouts.setdefault(keys, f.path)
    partitioned = [k for k in layouts if k]
    if not partitioned:
        return None
    if len(layouts) > 1:
        (a, pa), (b, pb) = list(layouts.items())[:2]
        raise UserError(
            f"{name}: {shown(root_uri)} mixes partition folders and other files ({shown(pa)} and {shown(pb)}); "
            f"Spark cannot read them as one table: move every file into the key=value folders, or point at one part"
        )
    return root.rstrip("/")


def text_type(kind: T.DataType, what: str, inp: InputConfig, name: str) -> None:
    """Text columns must hold strings: anything else (a struct, a number, an array) would be
    cast to some text and embedded without a word."""
    if not isinstance(kind, T.StringType):
        raise UserError(f"{name}: {what} of {shown(inp.path)} is {kind.simpleString()}, expected a string column")


class ParquetReader(Reader):
    format = "parquet"

    def list(self, fs: FileSystem, inp: InputConfig, src_lang: str, tgt_lang: str, name: str) -> InputFiles:
        return list_parquet(fs, inp, name)

    def columns(self, df, inp: InputConfig, src_lang: str, tgt_lang: str, name: str):
        """(src, tgt) columns of the rows, and the columns they consume."""
        for c in (inp.src_col, inp.tgt_col):
            if c not in df.columns:
                raise UserError(f"{name}: no column {c!r} in {shown(inp.path)} (columns: {', '.join(df.columns)})")
            text_type(df.schema[c].dataType, f"column {c!r}", inp, name)
        return F.col(inp.src_col), F.col(inp.tgt_col), (inp.src_col, inp.tgt_col)

    def read(self, spark, fs: FileSystem, inp: InputConfig, src_lang: str, tgt_lang: str, name: str,
             files: InputFiles) -> RawPairs:
        reader = spark.read.option("basePath", files.base) if files.base else spark.read
        raw = reader.parquet(*spark_paths(files.src_paths))
        src, tgt, consumed = self.columns(raw, inp, src_lang, tgt_lang, name)
        # src_col "src" is the job's src itself; any other column of a job column's name collides
        extra = check_user_columns(raw.columns, tuple(c for c in ("src", "tgt") if c in consumed), shown(inp.path), name)
        mapping = spark.createDataFrame([(fs.uri_form(f), i) for i, f in enumerate(files.src_paths)],
                                        "_gio_file string, _gio_ordinal int")
        spark_file = F.regexp_replace(F.col("_metadata.file_path"), "^file:///", "file:/")
        df = raw.select("*", spark_file.alias("_gio_file"), F.col("_metadata.row_index").alias("_gio_row"))
        df = df.join(F.broadcast(mapping), "_gio_file", "left")
        df = df.select(
            pair_id("_gio_ordinal", "_gio_row"), src.alias("src"), tgt.alias("tgt"),
            *[F.col(f"`{c}`") for c in extra],
            skip_reason(
                (F.col("_gio_ordinal").isNull(), UNMATCHED_FILE),
                (src.isNull() | tgt.isNull(), NULL_PAIR),
                (blank(src) | blank(tgt), EMPTY_PAIR),
            ),
        )
        return RawPairs(df, files, "row", rows=raw.count())  # from file footers


class HFReader(ParquetReader):
    format = "hf"

    def columns(self, df, inp: InputConfig, src_lang: str, tgt_lang: str, name: str):
        col = inp.translation_col
        if col not in df.columns:
            raise UserError(f"{name}: no column {col!r} in {shown(inp.path)} (columns: {', '.join(df.columns)})")
        field_type = df.schema[col].dataType
        if not isinstance(field_type, T.StructType):
            raise UserError(f"{name}: column {col!r} is {field_type.simpleString()}, expected a struct with one field "
                            f"per language")
        fields = field_type.fieldNames()
        for lang in (src_lang, tgt_lang):
            if lang not in fields:
                raise UserError(f"{name}: {col!r} has no field {lang!r} (fields: {', '.join(fields)})")
            text_type(field_type[lang].dataType, f"field {col}.{lang}", inp, name)
        return F.col(f"`{col}`.`{src_lang}`"), F.col(f"`{col}`.`{tgt_lang}`"), ()
