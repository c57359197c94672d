"""Read stage: every input row, kept or with the reason it is not used, written once; the
counts come from what was written, so nothing is dropped unseen."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Mapping, Optional

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from ...errors import UserError
from .. import failures
from ..readers import FILE_SHIFT, InputFiles, RawPairs, reader_for
from ..readers.base import (BAD_COLUMNS, INTERNAL_COLUMNS, SKIP_REASONS, UNDECODABLE, UNMATCHED_FILE, UNNUMBERED,
                            invalid_utf8, tokens)
from ..stage import Context, Progress, Resources, Result, Stage, Table
from ..tally import observed
from ..uri import shown

log = logging.getLogger(__name__)


@dataclass
class ReadResult(Result):
    rows_in: int
    rows_kept: int
    skipped: dict = field(default_factory=dict)
    files: list = field(default_factory=list)
    dim: Optional[int] = None  # vectors only
    tokens_src: int = 0  # white-space tokens of the kept pairs, per side
    tokens_tgt: int = 0
    shortest: dict = field(default_factory=dict)  # tokens of the kept pair with fewest, by token sides
    pairs: Optional[Table] = None  # every row: [pair_id, src, tgt | embedding, user columns, internal columns]

    def kept(self, spark) -> DataFrame:
        """The used rows, without the internal columns."""
        df = self.pairs.read(spark)
        return df.filter(F.col("_skip").isNull()).drop(*[c for c in INTERNAL_COLUMNS if c in df.columns])

    def vectors(self) -> tuple[Table, int]:
        """Precomputed vectors (format vectors): the table holding them, and its row count."""
        return self.pairs, self.rows_kept

    def tokens(self, sides: str) -> int:
        """Tokens of the kept pairs on ``sides`` (both, src or tgt)."""
        return {"src": self.tokens_src, "tgt": self.tokens_tgt}.get(sides, self.tokens_src + self.tokens_tgt)

    def stats(self) -> dict:
        out = {"rows_in": self.rows_in, "rows_kept": self.rows_kept, "skipped": dict(self.skipped),
               "files": list(self.files)}
        if self.dim is not None:
            out["dim"] = self.dim
        else:
            out["tokens"] = {"src": self.tokens_src, "tgt": self.tokens_tgt}
        return out


class ReadStage(Stage[ReadResult]):
    """One input (``train``, the pool, or ``target``) as a table of pairs with stable ids."""

    result = ReadResult
    resources = Resources("executors")

    def __init__(self, side: str) -> None:
        self.side = side
        self.name = f"pairs_{side}"
        self._files: Optional[InputFiles] = None

    def config(self, cfg):
        return (self.side, cfg.inputs()[self.side], cfg.src_lang, cfg.tgt_lang, cfg.allow_undecodable)

    def files(self, ctx: Context) -> InputFiles:
        """The input's files, listed once per run."""
        if self._files is None:
            inp = ctx.cfg.inputs()[self.side]
            self._files = reader_for(inp.format).list(ctx.fs, inp, ctx.cfg.src_lang, ctx.cfg.tgt_lang, self.side)
        return self._files

    def fingerprint(self, ctx: Context):
        # a file replaced in place, even with the same size and time, makes this and every later stage stale
        return self.files(ctx).fingerprint(ctx.fs)

    def progress(self, cfg, inputs: Mapping[str, Result]) -> Progress:
        return Progress(f"read {self.side}", outputs_per_row=1)

    def explain(self, exc: BaseException) -> Optional[UserError]:
        return failures.read_failure(exc, self.side)

    def run(self, ctx: Context, inputs: Mapping[str, Result]) -> ReadResult:
        cfg = ctx.cfg
        inp = cfg.inputs()[self.side]
        raw = reader_for(inp.format).read(ctx.spark, ctx.fs, inp, cfg.src_lang, cfg.tgt_lang, self.side, self.files(ctx))
        if raw.rows is not None:
            ctx.progress.set_total(raw.rows)
        df = raw.df
        if "src" in df.columns:  # white-space tokens per side, for token budgets
            df = df.withColumn("_tokens_src", tokens("src")).withColumn("_tokens_tgt", tokens("tgt"))
        df, seen = observed(df, **figures(df))
        table = ctx.write_table(df, "data")
        return summarize(table, raw, seen.get, cfg.allow_undecodable, self.side)


def figures(df: DataFrame) -> dict[str, Column]:
    """What the read stage counts while it writes: rows, rows by skip reason with the first pair
    id of each, and the kept pairs' tokens per side."""
    skip = F.col("_skip")
    out = {"rows": F.count(F.lit(1)), "kept": F.count_if(skip.isNull())}
    for reason in SKIP_REASONS:
        out[f"n_{reason}"] = F.count_if(skip == reason)
        out[f"first_{reason}"] = F.min(F.when(skip == reason, F.col("pair_id")))
    if "_tokens_src" in df.columns:
        sides = {"src": F.col("_tokens_src"), "tgt": F.col("_tokens_tgt")}
        sides["both"] = sides["src"] + sides["tgt"]
        for side, col in sides.items():
            if side != "both":
                out[f"tokens_{side}"] = F.sum(F.when(skip.isNull(), col))
            out[f"shortest_{side}"] = F.min(F.when(skip.isNull(), col))
    return out


def summarize(table: Table, raw: RawPairs, seen: dict, allow_undecodable: bool, name: str) -> ReadResult:
    """Counts by skip reason of the written rows (as the write observed them), or the error that
    names the first bad file and row."""
    counts = {reason: int(seen[f"n_{reason}"]) for reason in SKIP_REASONS if seen[f"n_{reason}"]}
    if sum(counts.values()) + seen["kept"] != seen["rows"]:
        raise RuntimeError(f"{name}: {seen['rows']} rows read, but {seen['kept']} kept and {counts} skipped")
    files = sorted(set(raw.files.src_paths) | set(raw.files.tgt_paths))
    result = ReadResult(rows_in=int(seen["rows"]), rows_kept=int(seen["kept"]), skipped=dict(sorted(counts.items())),
                        files=files, dim=raw.dim, pairs=table, tokens_src=int(seen.get("tokens_src") or 0),
                        tokens_tgt=int(seen.get("tokens_tgt") or 0),
                        shortest={side: int(seen[f"shortest_{side}"]) for side in ("src", "tgt", "both")
                                  if seen.get(f"shortest_{side}") is not None})

    def first(reason: str, *cols):
        """The first row skipped for ``reason`` (one small job, on the way to an error)."""
        row = table.read(raw.df.sparkSession).filter(F.col("pair_id") == seen[f"first_{reason}"]) \
            .select("pair_id", *cols).first()
        ordinal, index = divmod(row["pair_id"], 1 << FILE_SHIFT)
        return row, ordinal, index + 1

    if UNMATCHED_FILE in counts:
        raise RuntimeError(f"{name}: {counts[UNMATCHED_FILE]} rows came from files Spark names differently from "
                           f"the listing of {', '.join(files)}; refusing to number them")
    if UNNUMBERED in counts or (raw.rows is not None and raw.unit == "line" and result.rows_in != raw.rows):
        raise UserError(f"{name}: Spark split the input files differently in the read's two passes (executors "
                        f"joined or left between them), so {counts.get(UNNUMBERED, 0)} lines could not be numbered; "
                        f"run the job again")
    if BAD_COLUMNS in counts:
        row, ordinal, number = first(BAD_COLUMNS, "_cols")
        raise UserError(f"{name}: {shown(raw.files.src_paths[ordinal])} line {number} has {row['_cols']} "
                        f"tab-separated columns, expected {raw.tsv_width}")
    if UNDECODABLE in counts:
        if not allow_undecodable:
            row, ordinal, number = first(UNDECODABLE, invalid_utf8("src").alias("bad_src"))
            path = raw.files.src_paths[ordinal] if row["bad_src"] else raw.files.tgt_paths[ordinal]
            raise UserError(f"{name}: {shown(path)} {raw.unit} {number} is not valid UTF-8 "
                            f"(set allow_undecodable: true to skip and count such rows)")
        log.warning("%s: skipped %d rows that are not valid UTF-8", name, counts[UNDECODABLE])
    if result.rows_in == 0:
        raise UserError(f"{name}: no rows in the input")
    if result.rows_kept == 0:
        raise UserError(f"{name}: no usable pairs (skipped: {result.skipped})")
    return result
