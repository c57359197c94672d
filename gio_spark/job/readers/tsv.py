"""Tab-separated files: a header naming ``src_col``/``tgt_col`` (or 0-based column numbers
without one). Fields are taken as they are (no quoting); the escapes of the job's own TSV
output are undone when ``unescape`` is on (by default: for files with its header)."""
from __future__ import annotations

from pyspark.sql import functions as F

from ...errors import UserError
from ..config import InputConfig
from ..fs import FileSystem
from ..uri import shown
from .base import (BAD_COLUMNS, EMPTY_LINE, EMPTY_PAIR, UNDECODABLE, UNNUMBERED, InputFiles, RawPairs, Reader, blank,
                   invalid_utf8, numbered_lines, pair_id, skip_reason, unescaped)

# the header of the job's own TSV output (see stages/write.py)
OUTPUT_HEADER = ["pair_id", "src", "tgt"]


class TsvReader(Reader):
    format = "tsv"

    def read(self, spark, fs: FileSystem, inp: InputConfig, src_lang: str, tgt_lang: str, name: str,
             files: InputFiles) -> RawPairs:
        paths = files.src_paths
        numbered = numbered_lines(spark, fs, paths, heads=inp.header)
        for f, n in zip(paths, numbered.counts):
            if n == 0:
                raise UserError(f"{name}: input file {shown(f)} is empty")
        lines = numbered.df.withColumn("_parts", F.split(F.col("value"), "\t", -1))
        names = None
        if inp.header:
            headers = dict(enumerate(numbered.heads))
            names = headers[0].split("\t")
            for i, h in headers.items():
                if h.split("\t") != names:
                    raise UserError(f"{name}: {shown(paths[i])} has header {h.split(chr(9))}, {shown(paths[0])} has {names}")
            for col in (inp.src_col, inp.tgt_col):
                if col not in names:
                    raise UserError(f"{name}: column {col!r} not in the TSV header {names} of {shown(paths[0])}")
            src_i, tgt_i, width = names.index(inp.src_col), names.index(inp.tgt_col), len(names)
            body = lines.filter(F.col("line").isNull() | (F.col("line") > 0))
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
        if inp.unescape or (inp.unescape is None and names == OUTPUT_HEADER):
            src, tgt = unescaped(src), unescaped(tgt)
        df = body.select(
            pair_id("file_ordinal", "line"), src.alias("src"), tgt.alias("tgt"), cols.alias("_cols"),
            skip_reason(
                (F.col("line").isNull(), UNNUMBERED),
                (F.col("value") == "", EMPTY_LINE),  # e.g. the blank line many editors leave at the end
                (bad_width, BAD_COLUMNS),
                (invalid_utf8("value"), UNDECODABLE),
                (blank(src) | blank(tgt), EMPTY_PAIR),
            ),
        )
        rows = sum(numbered.counts) - (len(paths) if inp.header else 0)
        return RawPairs(df, files, "line", tsv_width=width, rows=rows)
