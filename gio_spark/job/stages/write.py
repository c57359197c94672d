"""Write stage: the chosen clusters joined back to their pairs, written to a temporary folder,
read back and counted on every side, then moved into ``<output>/selected``."""
from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from typing import Mapping

from pyspark.sql import functions as F

from ..stage import Context, Progress, Resources, Result, Stage
from ..uri import absolute, escape_glob, join

log = logging.getLogger(__name__)

TMP_DIR = "_tmp"  # selected pairs are written here, then moved into place
SELECTED = "selected"
# TSV as written and read back: no quoting (text is escaped instead), whitespace kept as it is
TSV_OPTIONS = {"sep": "\t", "header": "true", "quote": "", "lineSep": "\n", "emptyValue": "",
               "ignoreLeadingWhiteSpace": "false", "ignoreTrailingWhiteSpace": "false"}
ESCAPES = (("\\", "\\\\"), ("\t", "\\t"), ("\n", "\\n"), ("\r", "\\r"))


@dataclass
class WriteResult(Result):
    rows_out: int
    uri: str


def escaped(col: str):
    r"""Text for line-based output: backslash, tab, LF and CR written as the two characters
    ``\\``, ``\t``, ``\n``, ``\r``, so every pair is one line and every field one column."""
    out = F.col(col)
    for raw, esc in ESCAPES:
        out = F.replace(out, F.lit(raw), F.lit(esc))
    return out.alias(col)


class WriteStage(Stage[WriteResult]):
    name = "write"
    reads = ("pairs_train", "quantize_train", "select")
    resources = Resources("executors")
    result = WriteResult
    reusable = False  # it writes the run's own output

    def progress(self, cfg, inputs: Mapping[str, Result]) -> Progress:
        # text output writes each pair twice, once per language file
        return Progress("write", total_rows=inputs["select"].pairs_selected,
                        outputs_per_row=2 if cfg.output_format == "text" else 1)

    def run(self, ctx: Context, inputs: Mapping[str, Result]) -> WriteResult:
        cfg, spark, fs = ctx.cfg, ctx.spark, ctx.fs
        selection = inputs["select"]
        tmp_root = join(absolute(cfg.output), TMP_DIR)
        if fs.exists(tmp_root):
            log.info("removing %s, left by an earlier run that did not finish", tmp_root)
            fs.delete(tmp_root)
        tmp = join(tmp_root, f"selected-{uuid.uuid4().hex[:8]}")
        picked = spark.createDataFrame([(int(c), i) for i, c in enumerate(selection.chosen_clusters)],
                                       "cluster int, selection_rank int")
        assignments = inputs["quantize_train"].assignments.read(spark).select("pair_id", "cluster")
        pairs = inputs["pairs_train"].kept(spark)
        if "embedding" in pairs.columns:
            pairs = pairs.drop("embedding")
        df = pairs.join(assignments.join(F.broadcast(picked), "cluster"), "pair_id")
        if cfg.output_format == "parquet":
            df.write.parquet(tmp)
        elif cfg.output_format == "tsv":
            df.select("pair_id", escaped("src"), escaped("tgt")).write.options(**TSV_OPTIONS).csv(tmp)
        else:  # aligned text files, one line per pair, ordered by pair id
            one = df.select("pair_id", escaped("src"), escaped("tgt")).repartition(1).sortWithinPartitions("pair_id")
            one.select("src").write.text(join(tmp, cfg.src_lang))
            one.select("tgt").write.text(join(tmp, cfg.tgt_lang))
        rows = verify_output(spark, cfg, tmp, selection.pairs_selected)
        final = join(absolute(cfg.output), SELECTED)
        fs.move(tmp, final)
        fs.delete(tmp_root)
        return WriteResult(rows_out=rows, uri=join(cfg.output, SELECTED))


def verify_output(spark, cfg, uri: str, expected: int) -> int:
    """Read the written pairs back and count them on every side; anything but ``expected`` rows
    (distinct pair ids for Parquet and TSV, lines in both files for text) is an error."""
    if cfg.output_format == "text":
        found = {lang: spark.read.option("lineSep", "\n").text(escape_glob(join(uri, lang))).count()
                 for lang in (cfg.src_lang, cfg.tgt_lang)}
        if set(found.values()) != {expected}:
            raise RuntimeError(f"wrote {found} lines, the chosen clusters hold {expected} pairs")
        return expected
    if cfg.output_format == "tsv":
        # a fourth column catches a row with too many fields (the reader drops extra ones silently)
        back = spark.read.schema("pair_id long, src string, tgt string, _extra string").options(**TSV_OPTIONS).csv(escape_glob(uri))
        bad = F.col("pair_id").isNull() | F.col("src").isNull() | F.col("tgt").isNull() | F.col("_extra").isNotNull()
    else:
        back = spark.read.parquet(escape_glob(uri))
        bad = F.col("pair_id").isNull()
    row = back.agg(F.count("*").alias("rows"), F.countDistinct("pair_id").alias("ids"),
                   F.sum(bad.cast("int")).alias("bad")).first()
    if not row["rows"] == row["ids"] == expected or row["bad"]:
        raise RuntimeError(f"wrote {row['rows']} rows ({row['ids']} distinct pair ids, {row['bad'] or 0} "
                           f"malformed), the chosen clusters hold {expected} pairs")
    return expected
