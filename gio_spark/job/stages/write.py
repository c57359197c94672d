"""Write stage: the chosen clusters joined back to their pairs (the last one cut to a budget,
its pairs nearest the target first), written to a temporary folder, read back and counted on
every side, then moved into ``<output>/selected``; beside it the pool pairs the guard kept out
(``excluded``) and, when asked, every pool pair's scores (``scores``)."""
from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from typing import Mapping, Optional

from pyspark.sql import Window
from pyspark.sql import functions as F

from ..stage import Context, Progress, Resources, Result, Stage
from ..uri import absolute, escape_glob, join

log = logging.getLogger(__name__)

TMP_DIR = "_tmp"  # selected pairs are written here, then moved into place
SELECTED = "selected"
EXCLUDED = "excluded"
SCORES = "scores"
# TSV as written and read back: no quoting (text is escaped instead), whitespace kept as it is
TSV_OPTIONS = {"sep": "\t", "header": "true", "quote": "", "lineSep": "\n", "emptyValue": "",
               "ignoreLeadingWhiteSpace": "false", "ignoreTrailingWhiteSpace": "false"}
ESCAPES = (("\\", "\\\\"), ("\t", "\\t"), ("\n", "\\n"), ("\r", "\\r"))


@dataclass
class WriteResult(Result):
    rows_out: int
    uri: str
    tokens_out: int = 0  # white-space tokens of the written pairs (token_sides)
    excluded_uri: Optional[str] = None
    scores_uri: Optional[str] = None


def escaped(col: str):
    r"""Text for line-based output: backslash, tab, LF and CR written as the two characters
    ``\\``, ``\t``, ``\n``, ``\r``, so every pair is one line and every field one column."""
    out = F.col(col)
    for raw, esc in ESCAPES:
        out = F.replace(out, F.lit(raw), F.lit(esc))
    return out.alias(col)


class WriteStage(Stage[WriteResult]):
    name = "write"
    reads = ("pairs_train", "guard", "select")
    resources = Resources("executors")
    result = WriteResult
    reusable = False  # it writes the run's own output

    def progress(self, cfg, inputs: Mapping[str, Result]) -> Progress:
        # text output writes each pair twice, once per language file
        return Progress("write", total_rows=inputs["select"].pairs_selected,
                        outputs_per_row=2 if cfg.output_format == "text" else 1)

    def run(self, ctx: Context, inputs: Mapping[str, Result]) -> WriteResult:
        cfg, spark, fs = ctx.cfg, ctx.spark, ctx.fs
        selection, guard = inputs["select"], inputs["guard"]
        out = absolute(cfg.output)
        tmp_root = join(out, TMP_DIR)
        if fs.exists(tmp_root):
            log.info("removing %s, left by an earlier run that did not finish", tmp_root)
            fs.delete(tmp_root)
        tmp = join(tmp_root, f"run-{uuid.uuid4().hex[:8]}")
        scores = guard.scores.read(spark)
        chosen, expected = chosen_pairs(spark, scores, guard, selection, cfg.selection.token_sides)
        pairs = inputs["pairs_train"].kept(spark)
        if "embedding" in pairs.columns:
            pairs = pairs.drop("embedding")
        df = pairs.join(chosen.select("pair_id", "cluster", "selection_rank", "target_distance"), "pair_id")
        write_pairs(df, cfg, join(tmp, SELECTED))
        rows = verify_output(spark, cfg, join(tmp, SELECTED), expected)
        tokens = 0
        if "tokens_src" in chosen.columns:
            sides = {"src": "tokens_src", "tgt": "tokens_tgt"}.get(cfg.selection.token_sides)
            measure = F.col(sides) if sides else F.col("tokens_src") + F.col("tokens_tgt")
            tokens = int(chosen.agg(F.sum(measure)).first()[0] or 0)
        moves = [(SELECTED, join(out, SELECTED))]
        result = WriteResult(rows_out=rows, uri=join(cfg.output, SELECTED), tokens_out=tokens)
        if guard.active:
            dups = scores.filter(F.col("duplicate").isNotNull()).select("pair_id", "cluster", "duplicate", "max_cosine")
            dups.join(pairs.select("pair_id", *[c for c in ("src", "tgt") if c in pairs.columns]), "pair_id", "left") \
                .write.parquet(join(tmp, EXCLUDED))
            moves.append((EXCLUDED, join(out, EXCLUDED)))
            result.excluded_uri = join(cfg.output, EXCLUDED)
        else:
            fs.delete(join(out, EXCLUDED))  # a former run's list would be wrong now
        if cfg.selection.write_scores:
            ranks = chosen.select("pair_id", "selection_rank")
            scores.join(ranks, "pair_id", "left").select(
                "pair_id", "cluster", "selection_rank", "target_distance", "max_cosine", "duplicate") \
                .write.parquet(join(tmp, SCORES))
            moves.append((SCORES, join(out, SCORES)))
            result.scores_uri = join(cfg.output, SCORES)
        else:
            fs.delete(join(out, SCORES))
        for name, final in moves:
            fs.move(join(tmp, name), final)
        fs.delete(tmp_root)
        return result


def chosen_pairs(spark, scores, guard, selection, token_sides: str):
    """The selected pool pairs [pair_id, cluster, selection_rank, target_distance, tokens_*] and
    how many they are: every usable pair of the chosen clusters but the last one's beyond the
    budget (its pairs nearest the target first, ties by pair id)."""
    picked = spark.createDataFrame([(int(c), i) for i, c in enumerate(selection.chosen_clusters)],
                                   "cluster int, selection_rank int")
    usable = scores.filter(F.col("duplicate").isNull()) if guard.active else scores
    chosen = usable.join(F.broadcast(picked), "cluster")
    cut = selection.cut
    if not cut:
        return chosen, int(sum(selection.chosen_cluster_sizes))
    nearest = Window.partitionBy("cluster").orderBy("target_distance", "pair_id")
    if cut["unit"] == "pairs":
        measure = F.row_number().over(nearest)
    else:
        sides = {"src": F.col("tokens_src"), "tgt": F.col("tokens_tgt")}.get(token_sides,
                                                                             F.col("tokens_src") + F.col("tokens_tgt"))
        measure = F.sum(sides).over(nearest.rowsBetween(Window.unboundedPreceding, Window.currentRow))
    last = chosen.filter(F.col("cluster") == cut["cluster"]).withColumn("_upto", measure) \
        .filter(F.col("_upto") <= cut["keep"]).drop("_upto")
    kept_last = last.count()
    full = sum(selection.chosen_cluster_sizes[:-1])
    return chosen.filter(F.col("cluster") != cut["cluster"]).unionByName(last), int(full + kept_last)


def write_pairs(df, cfg, uri: str) -> None:
    if cfg.output_format == "parquet":
        df.write.parquet(uri)
    elif cfg.output_format == "tsv":
        df.select("pair_id", escaped("src"), escaped("tgt")).write.options(**TSV_OPTIONS).csv(uri)
    else:  # aligned text files, one line per pair, ordered by pair id
        one = df.select("pair_id", escaped("src"), escaped("tgt")).repartition(1).sortWithinPartitions("pair_id")
        one.select("src").write.text(join(uri, cfg.src_lang))
        one.select("tgt").write.text(join(uri, cfg.tgt_lang))


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
