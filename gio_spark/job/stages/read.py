"""Read stage: every input row, kept or with the reason it is not used, written once; the
counts come from what was written, so nothing is dropped unseen."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Mapping, Optional

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from ...errors import UserError
from .. import failures
from ..readers import FILE_SHIFT, InputFiles, RawPairs, reader_for
from ..readers.base import BAD_COLUMNS, INTERNAL_COLUMNS, UNDECODABLE, UNMATCHED_FILE, invalid_utf8, tokens
from ..stage import Context, Progress, Resources, Result, Stage, Table
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
        return (self.side, getattr(cfg, self.side), cfg.src_lang, cfg.tgt_lang, cfg.allow_undecodable)

    def files(self, ctx: Context) -> InputFiles:
        """The input's files, listed once per run."""
        if self._files is None:
            inp = getattr(ctx.cfg, self.side)
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
        inp = getattr(cfg, self.side)
        raw = reader_for(inp.format).read(ctx.spark, ctx.fs, inp, cfg.src_lang, cfg.tgt_lang, self.side, self.files(ctx))
        if raw.rows is not None:
            ctx.progress.set_total(raw.rows)
        table = ctx.table("data")
        df = raw.df
        if "src" in df.columns:  # white-space tokens per side, for token budgets
            df = df.withColumn("_tokens_src", tokens("src")).withColumn("_tokens_tgt", tokens("tgt"))
        df.write.parquet(table.uri)
        return summarize(table, raw, cfg.allow_undecodable, self.side)


def summarize(table: Table, raw: RawPairs, allow_undecodable: bool, name: str) -> ReadResult:
    """Counts by skip reason of the written rows (one pass over one column), or the error
    that names the first bad file and row."""
    written = table.read(raw.df.sparkSession)
    texts = "_tokens_src" in written.columns
    sums = [F.sum(c).alias(c) for c in ("_tokens_src", "_tokens_tgt")] if texts else []
    groups = {r["_skip"]: r for r in written.groupBy("_skip").agg(F.count("*").alias("count"), *sums).collect()}
    counts = {k: r["count"] for k, r in groups.items()}
    files = sorted(set(raw.files.src_paths) | set(raw.files.tgt_paths))
    kept = groups.get(None)
    result = ReadResult(rows_in=sum(counts.values()), rows_kept=counts.get(None, 0),
                        skipped=dict(sorted((k, v) for k, v in counts.items() if k is not None)),
                        files=files, dim=raw.dim, pairs=table,
                        tokens_src=int(kept["_tokens_src"] or 0) if texts and kept else 0,
                        tokens_tgt=int(kept["_tokens_tgt"] or 0) if texts and kept else 0)

    def first(reason: str, *cols):
        row = written.filter(F.col("_skip") == reason).orderBy("pair_id").select("pair_id", *cols).first()
        ordinal, index = divmod(row["pair_id"], 1 << FILE_SHIFT)
        return row, ordinal, index + 1

    if UNMATCHED_FILE in counts:
        raise RuntimeError(f"{name}: {counts[UNMATCHED_FILE]} rows came from files Spark names differently from "
                           f"the listing of {', '.join(files)}; refusing to number them")
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
