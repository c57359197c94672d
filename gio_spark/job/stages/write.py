"""Write stage: the chosen clusters joined back to their pairs (the last one cut to a budget,
its pairs nearest the target first), written to a temporary folder, read back and counted on
every side, then moved into ``<output>/selected``; beside it the pool pairs the guard kept out
(``excluded``) and, when asked, every pool pair's scores (``scores``)."""
from __future__ import annotations

import dataclasses
import logging
import uuid
from dataclasses import dataclass, field
from typing import Iterator, Mapping, Optional

import numpy as np
import pandas as pd
from pyspark.sql import functions as F

from ...errors import UserError
from ..config import target_name
from ..stage import Context, Progress, Resources, Result, Stage
from ..summary import example_ranks
from ..tally import observed
from ..uri import absolute, escape_glob, join
from .guard import score_columns

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
    examples: list = field(default_factory=list)  # written pairs of the first and last chosen clusters
    targets: Optional[dict] = None  # named targets: pairs and tokens written for each, by side


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
        named = cfg.target is None  # named targets: the output says whose each pair is
        pick = picked(scores, guard, selection, cfg.selection.token_sides, cfg.target_sides(), named)
        pairs = inputs["pairs_train"].kept(spark)
        if "embedding" in pairs.columns:
            pairs = pairs.drop("embedding")
        chosen = scores.mapInPandas(pick, chosen_schema(named, pick.ratio))
        upper = sum(int(sum(selection.unit_sizes(side))) for side, _, _ in selection.claims())  # their usable pairs
        df = pairs.join(small(chosen, upper), "pair_id")
        shown = example_clusters(selection)
        df, seen = observed(df, **written_figures(df, cfg.selection.token_sides, [c for _, _, c, _ in shown],
                                                  [n for n in map(target_name, cfg.target_sides()) if named],
                                                  selection.unit))
        write_pairs(df.drop("tokens_src", "tokens_tgt", "ratio_bin"), cfg, join(tmp, SELECTED))
        figures = seen.get
        if figures["rows"] != pick.expected:
            raise RuntimeError(f"wrote {figures['rows']} pairs, the selection holds {pick.expected}")
        rows = verify_output(spark, cfg, join(tmp, SELECTED), figures)
        moves = [(SELECTED, join(out, SELECTED))]
        result = WriteResult(rows_out=rows, uri=join(cfg.output, SELECTED), tokens_out=int(figures["tokens"] or 0),
                             examples=examples(figures, shown, "bin" if selection.ratio else "cluster"))
        if named:
            result.targets = {side: {"pairs": int(figures[f"rows_{target_name(side)}"]),
                                     "tokens": int(figures[f"tokens_{target_name(side)}"] or 0)}
                              for side in cfg.target_sides()}
        if guard.active:
            dups = scores.filter(F.col("duplicate").isNotNull()).select("pair_id", "cluster", "duplicate", "max_cosine")
            texts = pairs.select("pair_id", *[c for c in ("src", "tgt") if c in pairs.columns])
            small(dups, guard.excluded).join(texts, "pair_id").write.parquet(join(tmp, EXCLUDED))
            moves.append((EXCLUDED, join(out, EXCLUDED)))
            result.excluded_uri = join(cfg.output, EXCLUDED)
        else:
            fs.delete(join(out, EXCLUDED))  # a former run's list would be wrong now
        if cfg.selection.write_scores:
            ranked = scores.mapInPandas(pick.every_row(), scores_schema(scores, named))
            ranked.write.parquet(join(tmp, SCORES))
            moves.append((SCORES, join(out, SCORES)))
            result.scores_uri = join(cfg.output, SCORES)
        else:
            fs.delete(join(out, SCORES))
        for name, final in moves:
            fs.move(join(tmp, name), final)
        fs.delete(tmp_root)
        return result


def chosen_schema(named: bool, ratio: bool = False) -> str:
    """The selected pool pairs' scores (with the target each belongs to, for named targets, and
    the density ratio score when it selected)."""
    return ("pair_id long, cluster int, " + ("target string, " if named else "")
            + "selection_rank int, target_distance double, " + ("density_ratio double, ratio_bin int, " if ratio else "")
            + "tokens_src int, tokens_tgt int")


def scores_schema(scores, named: bool) -> str:
    """Every pool pair's scores as --write-scores writes them: the guard's, with its selection."""
    kept = [f for f in scores.schema.fields if f.name not in ("tokens_src", "tokens_tgt", "cluster", "pair_id",
                                                              "ratio_bin")]
    return ", ".join(["pair_id long", "cluster int", *(["target string"] if named else []), "selection_rank int",
                      *[f"{f.name} {f.dataType.simpleString()}" for f in kept]])


BROADCAST_ROWS = 1_000_000  # a side of at most this many rows is sent to every task instead of shuffling the pool


def small(df, rows: int):
    """``df`` marked for a broadcast join when it has at most BROADCAST_ROWS rows: the pool's
    pairs are then joined where they lie, never shuffled."""
    return F.broadcast(df) if rows <= BROADCAST_ROWS else df


@dataclass
class Picked:
    """mapInPandas body over the guard's scores: the pairs of the chosen units (clusters, or
    ratio bins) with the target they went to, their selection rank in its order and their
    distance to it (a cut unit: only the pair ids kept of it)."""

    owner_of: np.ndarray  # [units] the target index each unit went to, -1 for none
    rank_of: np.ndarray  # [units] its selection rank in that target's order
    distances: list  # each target's distance column in the scores
    names: Optional[list]  # each target's name for the output's target column (None: one plain target)
    active: bool  # duplicates are kept out
    cuts: dict = field(default_factory=dict)  # cut cluster -> sorted pair ids kept of it
    expected: int = 0  # pairs selected
    all_rows: bool = False  # every pool pair, selection_rank (and target) null where not selected
    unit: str = "cluster"  # the scores' column of the unit (cluster, or ratio_bin)

    @property
    def ratio(self) -> bool:
        return self.unit == "ratio_bin"

    def every_row(self) -> "Picked":
        return dataclasses.replace(self, all_rows=True)

    def _names(self, owner: np.ndarray) -> np.ndarray:
        """The target name of each owner index (-1: none), as Python strings (object dtype)."""
        return np.asarray([*self.names, None], dtype=object)[owner]

    def __call__(self, batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for pdf in batches:
            unit = pdf[self.unit].to_numpy()
            owner, rank = self.owner_of[unit], self.rank_of[unit]
            keep = owner >= 0
            if self.active:
                keep &= pdf["duplicate"].isna().to_numpy()
            for c, ids in self.cuts.items():
                keep &= (unit != c) | np.isin(pdf["pair_id"].to_numpy(), ids)
            if self.all_rows:
                out = pdf.drop(columns=[c for c in ("tokens_src", "tokens_tgt", "ratio_bin") if c in pdf.columns])
                out.insert(2, "selection_rank", pd.array(np.where(keep, rank, 0), dtype="Int32"))
                out.loc[~keep, "selection_rank"] = pd.NA
                if self.names is not None:
                    out.insert(2, "target", np.where(keep, self._names(owner), None))
                yield out
                continue
            rows = pdf.loc[keep]
            mine = owner[keep]
            near = np.stack([rows[col].to_numpy() for col in self.distances], axis=1)
            out = pd.DataFrame({"pair_id": rows["pair_id"].to_numpy(), "cluster": rows["cluster"].to_numpy()})
            if self.names is not None:
                out["target"] = self._names(mine)  # strings even in an empty batch
            out["selection_rank"] = rank[keep].astype(np.int32)
            out["target_distance"] = near[np.arange(len(rows)), mine]
            if self.ratio:
                out["density_ratio"], out["ratio_bin"] = rows["density_ratio"].to_numpy(), rows["ratio_bin"].to_numpy()
            out["tokens_src"], out["tokens_tgt"] = rows["tokens_src"].to_numpy(), rows["tokens_tgt"].to_numpy()
            yield out


def picked(scores, guard, selection, token_sides: str, sides: list, named: bool) -> Picked:
    """Which pool pairs are selected, and for which target: every usable pair of each target's
    units (clusters, or ratio bins) but its last one's beyond its budget. That unit's pairs are
    taken nearest the target first (for a ratio bin: highest ratio first; ties by pair id): to a
    pair budget, the first ``keep``; to a token budget, each pair that still fits, in that order
    (a long pair is passed over, shorter ones after it may fit). The cut units' rows come to the
    driver together (one unit a target) to decide."""
    unit = selection.unit
    sizes = guard.bin_sizes if unit == "ratio_bin" else guard.sizes
    owner_of, rank_of = np.full(len(sizes), -1, np.int64), np.full(len(sizes), -1, np.int64)
    claims = selection.claims()
    distances = [score_columns(side)[0] for side in sides]
    order = ["density_ratio"] if unit == "ratio_bin" else distances
    cut_rows = _cut_rows(scores.filter(F.col("duplicate").isNull()) if guard.active else scores, unit,
                         [cut["id"] for _, _, cut in claims if cut], order)
    cuts, expected = {}, 0
    for index, (side, units, cut) in enumerate(claims):
        units = np.asarray(units, dtype=np.int64)
        owner_of[units], rank_of[units] = sides.index(side), np.arange(len(units))
        expected += int(sizes[units].sum())
        if not cut:
            continue
        rows = cut_rows[cut_rows[unit] == cut["id"]]
        if unit == "ratio_bin":
            rows = rows.assign(_order=-rows["density_ratio"]).sort_values(["_order", "pair_id"], kind="stable")
        else:
            rows = rows.sort_values([score_columns(side)[0], "pair_id"], kind="stable")
        if cut["unit"] == "pairs":
            size = np.ones(len(rows), np.int64)
        else:
            size = {"src": rows["tokens_src"], "tgt": rows["tokens_tgt"]}.get(
                token_sides, rows["tokens_src"] + rows["tokens_tgt"]).to_numpy()
        kept = rows["pair_id"].to_numpy()[fitting(size, cut["keep"])]
        cuts[int(cut["id"])] = np.sort(kept).astype(np.int64)
        expected += len(kept) - int(sizes[cut["id"]])
        if expected == 0 and index == len(sides) - 1:  # never an empty success
            shortest = int(size.min()) if len(rows) else 0
            raise UserError(f"selection.budget_{cut['unit']}: {cut['keep']:g} {cut['unit']} fit no pair of the "
                            f"{'score bin' if unit == 'ratio_bin' else 'cluster GIO chose'} first (its shortest pair "
                            f"has {shortest} tokens); raise the budget")
    names = [target_name(side) for side in sides] if named else None
    return Picked(owner_of, rank_of, distances, names, guard.active, cuts, expected, unit=unit)


def _cut_rows(usable, unit: str, ids: list, order: list) -> pd.DataFrame:
    """The usable rows of the cut units (clusters or ratio bins), in one job (none without a cut)."""
    columns = list(dict.fromkeys(["pair_id", unit, *order, "tokens_src", "tokens_tgt"]))
    if not ids:
        return pd.DataFrame(columns=columns)
    return usable.filter(F.col(unit).isin([int(c) for c in ids])).select(*columns).toPandas()


def fitting(sizes: np.ndarray, budget: float) -> np.ndarray:
    """Which items, taken in order, fit in ``budget``: each one that still fits is taken."""
    keep = np.zeros(len(sizes), bool)
    left = budget
    for i, size in enumerate(sizes):
        if size <= left:
            keep[i] = True
            left -= size
    return keep


def written_figures(df, token_sides: str, clusters: list, names: list, unit: str = "cluster") -> dict:
    """What the write of the selected pairs counts as it goes: rows, tokens, a hash of the pair
    ids (checked against the files read back), rows and tokens of each named target, and two
    example pairs of each given unit (cluster, or ratio bin)."""
    tokens = {"src": F.col("tokens_src"), "tgt": F.col("tokens_tgt")}.get(token_sides,
                                                                          F.col("tokens_src") + F.col("tokens_tgt"))
    out = {"rows": F.count(F.lit(1)), "tokens": F.sum(tokens), "ids": id_hash_sum()}
    for name in names:
        mine = F.col("target") == name
        out[f"rows_{name}"], out[f"tokens_{name}"] = F.count_if(mine), F.sum(F.when(mine, tokens))
    texts = [c for c in ("src", "tgt") if c in df.columns]
    order = F.xxhash64("pair_id")
    for c in dict.fromkeys(clusters):
        mine = F.when(F.col(unit) == int(c), order)
        for i, pick in enumerate((F.min_by, F.max_by)):
            for col in ("pair_id", *texts):
                out[f"example_{c}_{i}_{col}"] = pick(F.col(col), mine)
    return out


def id_hash_sum():
    """Sum of a 64-bit hash of each pair id: a different set of ids (a row lost, repeated or
    swapped) gives another sum."""
    return F.sum(F.xxhash64("pair_id").cast("decimal(38,0)"))


def example_clusters(selection) -> list[tuple[Optional[str], int, int, int]]:
    """(target name, rank, unit, its usable pairs) of the units (clusters or ratio bins) shown
    with examples: the first and last three of one target's order; the first and the last of
    each named target's."""
    out = []
    for side, units, _ in selection.claims():
        sizes = selection.unit_sizes(side)
        for r in example_ranks(len(units), ends=3 if selection.targets is None else 1):
            out.append((target_name(side), r, int(units[r]), int(sizes[r])))
    return out


def examples(figures: dict, shown: list, key: str = "cluster") -> list[dict]:
    """Two written pairs (one if that is all) of each unit ``shown`` (a cluster, or under ``key``
    "bin" a ratio bin), by pair id."""
    out = []
    for name, r, c, size in shown:
        found = {}
        for i in (0, 1):
            pid = figures.get(f"example_{c}_{i}_pair_id")
            if pid is not None:
                texts = {col: figures[f"example_{c}_{i}_{col}"] for col in ("src", "tgt")
                         if f"example_{c}_{i}_{col}" in figures}
                found[int(pid)] = {"pair_id": int(pid), **texts}
        out.append({**({"target": name} if name is not None else {}), "rank": r + 1, key: c, "pairs": size,
                    "examples": [found[p] for p in sorted(found)]})
    return out


def write_pairs(df, cfg, uri: str) -> None:
    if cfg.output_format == "parquet":
        df.write.parquet(uri)
    elif cfg.output_format == "tsv":
        df.select("pair_id", escaped("src"), escaped("tgt")).write.options(**TSV_OPTIONS).csv(uri)
    else:  # aligned text files, one line per pair, ordered by pair id
        one = df.select("pair_id", escaped("src"), escaped("tgt")).repartition(1).sortWithinPartitions("pair_id")
        one.select("src").write.text(join(uri, cfg.src_lang))
        one.select("tgt").write.text(join(uri, cfg.tgt_lang))


def verify_output(spark, cfg, uri: str, written: dict) -> int:
    """Read the written pairs back and count them on every side (one job): anything but the
    rows the write counted (and, for Parquet and TSV, the same pair ids by their hash sum and no
    malformed row; for text, that many lines in both files) is an error."""
    expected = int(written["rows"])
    if cfg.output_format == "text":
        back = spark.read.option("lineSep", "\n").text([escape_glob(join(uri, lang)) for lang in (cfg.src_lang,
                                                                                               cfg.tgt_lang)])
        path = F.col("_metadata.file_path")
        back, seen = observed(back, **{lang: F.count_if(path.contains(f"/{lang}/"))
                                       for lang in (cfg.src_lang, cfg.tgt_lang)})
        back.write.format("noop").mode("overwrite").save()
        found = seen.get
        if set(found.values()) != {expected}:
            raise RuntimeError(f"wrote {found} lines, the selection holds {expected} pairs")
        return expected
    if cfg.output_format == "tsv":
        # a fourth column catches a row with too many fields (the reader drops extra ones silently)
        back = spark.read.schema("pair_id long, src string, tgt string, _extra string").options(**TSV_OPTIONS).csv(escape_glob(uri))
        bad = F.col("pair_id").isNull() | F.col("src").isNull() | F.col("tgt").isNull() | F.col("_extra").isNotNull()
    else:
        back = spark.read.schema("pair_id long").parquet(escape_glob(uri))
        bad = F.col("pair_id").isNull()
    back, seen = observed(back, rows=F.count(F.lit(1)), ids=id_hash_sum(), bad=F.count_if(bad))
    back.write.format("noop").mode("overwrite").save()
    found = seen.get
    if found["rows"] != expected or found["ids"] != written["ids"] or found["bad"]:
        raise RuntimeError(f"read back {found['rows']} rows ({found['bad']} malformed{'' if found['ids'] == written['ids'] else ', other pair ids'}) "
                           f"of the {expected} pairs written")
    return expected
