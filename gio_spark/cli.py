"""The ``gio-spark`` command line: ``select-vectors`` (the GIO core on .npy files) and ``run``
(the Spark job)."""
from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from .errors import UserError


def _kebab(name: str) -> str:
    return name.replace("_", "-")


def _parse_bool(text: str) -> bool:
    low = text.lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _parse_scale(text: str) -> Any:
    return text if text == "auto" else float(text)


def add_gio_options(parser: argparse.ArgumentParser, prefix: str = "") -> None:
    """One ``--kebab-case`` option per GIOConfig field; unset options keep the defaults."""
    from .gio.config import GIOConfig

    group = parser.add_argument_group("GIO options (as in GIOKL.fit)")
    for f in dataclasses.fields(GIOConfig):
        kind: Any
        if f.name == "scale_factor":
            kind = _parse_scale
        elif f.type in ("bool", bool):
            kind = _parse_bool
        elif f.type in ("int", int):
            kind = int
        elif f.type in ("float", float):
            kind = float
        else:
            kind = str
        group.add_argument(
            f"--{prefix}{_kebab(f.name)}", dest=f"gio_{f.name}", type=kind, default=None,
            metavar=f.name.upper(), help=f"default: {f.default!r}",
        )


def gio_overrides(args: argparse.Namespace) -> dict[str, Any]:
    return {k[4:]: v for k, v in vars(args).items() if k.startswith("gio_") and v is not None}


def _load_matrix(path: str, what: str) -> np.ndarray:
    p = Path(path)
    if not p.exists():
        raise UserError(f"{what} file not found: {path}")
    try:
        arr = np.load(p, allow_pickle=False)
    except Exception as exc:  # numpy raises several types for bad files
        raise UserError(f"{what} file {path} is not a readable .npy array: {exc}") from exc
    return arr


def cmd_select_vectors(args: argparse.Namespace) -> int:
    from .gio import GIOConfig, knn_kl, select

    cfg = GIOConfig.from_dict(gio_overrides(args))
    train = _load_matrix(args.train, "--train")
    target = _load_matrix(args.target, "--target")
    init = _load_matrix(args.init, "--init") if args.init else None
    result = select(train, target, init=init, config=cfg)
    out = result.to_dict()
    chosen = result.chosen_indices
    if len(chosen) >= cfg.k:
        out["knn_kl_selected"] = knn_kl(target, np.asarray(train)[chosen], k=cfg.k)
    text = json.dumps(out, indent=1)
    if args.out == "-":
        print(text)
    else:
        Path(args.out).write_text(text)
        print(
            f"selected {len(result.selected_indices)} of {len(train)} rows "
            f"(stop: {result.stop_reason}, KL {result.initial_kl:.4f} -> {result.final_kl:.4f}); wrote {args.out}",
            file=sys.stderr,
        )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gio-spark", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    sv = sub.add_parser("select-vectors", help="run GIO on precomputed vectors (.npy)")
    sv.add_argument("--train", required=True, help="pool G, .npy of shape [N, d]")
    sv.add_argument("--target", required=True, help="target X, .npy of shape [n, d]")
    sv.add_argument("--init", help="initial set D, .npy of shape [m, d] (default: uniform start)")
    sv.add_argument("--out", required=True, help="result JSON path, or - for stdout")
    add_gio_options(sv)
    sv.set_defaults(func=cmd_select_vectors)

    from .job.cli import add_run_parser

    add_run_parser(sub)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.func(args) or 0)
    except (UserError, ValueError) as exc:
        print(f"gio-spark: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
