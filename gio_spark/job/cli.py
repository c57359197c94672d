"""``gio-spark run``: the Spark job from the command line (also used by jobs/gio_select.py)."""
from __future__ import annotations

import argparse
import json
import logging
from typing import Any

from . import storage
from .config import JobConfig, apply_override, config_from_dict, parse_config_text

log = logging.getLogger(__name__)

# flag -> dotted config key
FLAG_KEYS = {
    "train": "train.path",
    "target": "target.path",
    "train_format": "train.format",
    "target_format": "target.format",
    "src_lang": "src_lang",
    "tgt_lang": "tgt_lang",
    "output": "output",
    "output_format": "output_format",
    "if_exists": "if_exists",
    "k": "quantize.k",
    "model": "embedding.model",
    "master": "spark_master",
}


def add_run_parser(sub) -> None:
    p = sub.add_parser(
        "run",
        help="select training pairs with GIO on Spark",
        description="Read pairs, embed, quantize with k-means, select clusters with GIO, write the chosen pairs.",
    )
    p.add_argument("--config", help="YAML or JSON config (local path or s3://)")
    p.add_argument("--train", help="pool: a prefix PREFIX with files PREFIX.<lang> (text), or a file/folder/glob")
    p.add_argument("--target", help="target sample, same forms as --train")
    p.add_argument("--train-format", choices=["text", "tsv", "parquet", "hf", "vectors"])
    p.add_argument("--target-format", choices=["text", "tsv", "parquet", "hf", "vectors"])
    p.add_argument("--src-lang", help="source language code (the side embedded by default)")
    p.add_argument("--tgt-lang", help="target language code")
    p.add_argument("--output", help="output folder or URI")
    p.add_argument("--output-format", choices=["parquet", "tsv", "text"])
    p.add_argument("--if-exists", choices=["fail", "skip", "overwrite"], help="when the output holds a complete run")
    p.add_argument("--force-unlock", action="store_true",
                   help="take over the output's _LOCK when it is stale (older than lock_stale_hours, or its process is gone)")
    p.add_argument("--k", type=int, help="k-means clusters per side (default 1500)")
    p.add_argument("--model", help="embedding model: folder, installed model package, or hub name")
    p.add_argument("--master", help="Spark master when no session is active (default local[*])")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="any config key, e.g. gio.max_iter=300 or quantize.enabled=false (repeatable)")
    p.add_argument("--demo", action="store_true",
                   help="run on a small generated German-English corpus (output ./gio-output/demo unless --output)")
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    p.set_defaults(func=cmd_run)


def resolve_config(args: argparse.Namespace) -> JobConfig:
    data: dict[str, Any] = {}
    if args.config:
        data = parse_config_text(storage.read_text(args.config), args.config)
    if getattr(args, "demo", False):
        from ..demo import demo_config

        for key, value in demo_config(args.output or "gio-output/demo").items():
            apply_override(data, key, value)
    for flag, key in FLAG_KEYS.items():
        value = getattr(args, flag, None)
        if value is not None:
            apply_override(data, key, value)
    for item in args.set:
        if "=" not in item:
            raise ValueError(f"--set expects KEY=VALUE, got {item!r}")
        key, value = item.split("=", 1)
        apply_override(data, key.strip(), value)
    return config_from_dict(data).validate()


def cmd_run(args: argparse.Namespace) -> int:
    cfg = resolve_config(args)
    if args.print_config:
        print(json.dumps(cfg.to_dict(), indent=1))
        return 0
    if getattr(args, "demo", False):
        from ..demo import write_demo_corpus

        write_demo_corpus(storage.join(cfg.output, "_demo_data"))
    from .pipeline import run_job

    manifest = run_job(cfg, force_unlock=getattr(args, "force_unlock", False))
    print(f"selected pairs: {manifest['output']} ({manifest['rows']['selected']} of {manifest['rows']['train_kept']})")
    print(f"manifest:       {storage.join(cfg.output, 'manifest.json')}")
    print(f"report:         {storage.join(cfg.output, 'report.png')}")
    return 0
