"""The ``gio-spark`` command line: ``select-vectors`` (the GIO core on .npy files) and ``run``
(the Spark job)."""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any, NoReturn, Optional, Sequence

import numpy as np

from . import __version__
from .errors import UserError

DESCRIPTION = (
    "Select, from a large pool of training pairs, the subset that best matches a target sample, "
    "with Gradient Information Optimization (GIO). 'run' is the Spark job (read, embed, k-means, "
    "select, write); 'select-vectors' runs GIO on precomputed vectors in .npy files."
)
SELECT_VECTORS_EPILOG = (
    "Defaults are those of the reference GIOKL.fit (v_init mean, max_iter 100). The Spark job "
    "(gio-spark run) defaults to v_init prev_opt and max_iter 1500 instead."
)


class OneLineParser(argparse.ArgumentParser):
    """Usage errors as one line, ``gio-spark: error: ...``, exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"gio-spark: error: {message} (see {self.prog} --help)\n")


def _kebab(name: str) -> str:
    return name.replace("_", "-")


def add_gio_options(parser: argparse.ArgumentParser) -> None:
    """One ``--kebab-case`` option per GIOConfig field, taken as text and converted by the
    field's type; unset options keep the defaults."""
    from .gio.config import GIOConfig
    from .validation import choices, field_types

    group = parser.add_argument_group("GIO options (as in GIOKL.fit)")
    types = field_types(GIOConfig)
    for f in dataclasses.fields(GIOConfig):
        allowed = choices(types[f.name])
        if allowed and f.name != "scale_factor":
            metavar, text = "{" + ",".join(allowed) + "}", ""
        else:
            metavar, text = f.name.upper(), ("'auto' or a number > 0; " if f.name == "scale_factor" else "")
        group.add_argument(
            f"--{_kebab(f.name)}", dest=f"gio_{f.name}", default=None, metavar=metavar,
            help=f"{text}default: {f.default}",
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


def _gio_config(args: argparse.Namespace):
    from pydantic import ValidationError

    from .gio import GIOConfig
    from .validation import describe

    try:
        return GIOConfig(**gio_overrides(args))
    except ValidationError as exc:
        raise UserError(describe(exc, GIOConfig, name=lambda path: "--" + _kebab(path[-1]))) from None


def cmd_select_vectors(args: argparse.Namespace) -> int:
    from .gio import knn_kl, select

    cfg = _gio_config(args)
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
            f"(stop: {result.stop_reason}, relaxed KL estimate {result.initial_kl:.4f} -> {result.final_kl:.4f}); "
            f"wrote {args.out}",
            file=sys.stderr,
        )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="gio-spark", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"gio-spark {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging, other libraries' too")
    sub = parser.add_subparsers(dest="command", required=True, metavar="{run,select-vectors}")

    sv = sub.add_parser(
        "select-vectors", help="run GIO on precomputed vectors (.npy)",
        description="Run GIO on a pool G and a target X given as .npy matrices; write the selected row "
        "indices, the KL curve and the stop reason as JSON.",
        epilog=SELECT_VECTORS_EPILOG,
    )
    sv.add_argument("--train", required=True, help="pool G, .npy of shape [N, d]")
    sv.add_argument("--target", required=True, help="target X, .npy of shape [n, d]")
    sv.add_argument("--init", help="initial set D, .npy of shape [m, d] (default: a uniform start)")
    sv.add_argument("--out", required=True, help="result JSON path, or - for stdout")
    add_gio_options(sv)
    sv.set_defaults(func=cmd_select_vectors)

    from .job.cli import add_run_parser

    add_run_parser(sub)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    import signal

    from .job.session import Stopped, spark_log_note, spark_log_size
    from .logs import configure

    parser = build_parser()
    args = parser.parse_args(argv)
    configure(verbose=args.verbose)
    logged = spark_log_size()
    try:
        return int(args.func(args) or 0)
    except (UserError, ValueError) as exc:
        message = " ".join(str(exc).split("\n"))
        print(f"gio-spark: error: {message}{spark_log_note(logged)}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, Stopped) as exc:
        term = isinstance(exc, Stopped) and exc.signum == signal.SIGTERM
        what, code = ("terminated (SIGTERM)", 143) if term else ("interrupted", 130)
        print(f"gio-spark: error: {what}; Spark jobs cancelled and the output's lock released; rerun to resume "
              f"from the finished stages", file=sys.stderr)
        return code


if __name__ == "__main__":
    sys.exit(main())
