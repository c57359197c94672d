"""What the job checks before any embedding work, each failure one line: where the output may go, that the inputs exist, and what the read counts already rule out."""
from __future__ import annotations

import uuid
from typing import Mapping

from ..errors import UserError
from .config import JobConfig
from .fs import FileSystem
from .quantize import check_direct_rows
from .readers import reader_for
from .uri import ancestors, is_local, is_within, join, parent, same, shown, static_prefix

# everything a run writes under its output folder (other entries, e.g. the demo's data, are left alone)
OUTPUT_ENTRIES = ("selected", "excluded", "scores", "_stages", "_tmp", "manifest.json", "report.png", "_SUCCESS",
                  "_LOCK")


def input_folder(fs: FileSystem, path: str, fmt: str) -> str:
    """The folder that holds an input's files: a glob's static folder, a text prefix's or a
    file's parent, or the folder itself."""
    root = static_prefix(path)
    if root != path or (fmt != "text" and fs.is_dir(path)):
        return root
    return parent(path)


def check_locations(fs: FileSystem, cfg: JobConfig) -> None:
    """An output that can be a folder, and inputs and output apart: an output inside an input
    would be read back as input, and an output in the inputs' own folder would mix the run's
    files with the user's data."""
    check_output_location(fs, cfg.output)
    for side, inp in cfg.inputs().items():
        if not reader_for(inp.format).has_files:
            continue
        root = static_prefix(inp.path)
        if is_within(cfg.output, root):
            raise UserError(f"output {cfg.output} is inside the {side} input {root}; choose an output outside the inputs")
        for entry in OUTPUT_ENTRIES:
            if is_within(root, join(cfg.output, entry)):
                raise UserError(f"{side} input {root} lies in {join(cfg.output, entry)}, which this run "
                                f"rewrites; choose another output")
        if same(cfg.output, input_folder(fs, inp.path, inp.format)):
            raise UserError(f"output {cfg.output} is the folder that holds the {side} input {inp.path}; the run would "
                            f"write selected/, _stages/ and its reports among the data: choose another output")


def check_output_location(fs: FileSystem, uri: str) -> None:
    """Refuse an output that is, or lies under, an existing file (Spark would fail late)."""
    for n, candidate in enumerate(ancestors(uri)):
        if fs.exists(candidate):
            if not fs.is_dir(candidate):
                where = "is" if n == 0 else f"lies under {shown(candidate)}, which is"
                raise UserError(f"output {uri} {where} an existing file, not a folder")
            return


def check_writable(fs: FileSystem, uri: str) -> None:
    """A folder the run must write to (a shared stages dir) takes a file, or one line says why."""
    probe = join(uri, f"_probe-{uuid.uuid4().hex[:8]}")
    try:
        fs.write_bytes(probe, b"")
        fs.delete(probe)
    except UserError as exc:
        raise UserError(f"stages_dir {shown(uri)} is not writable ({exc})") from None


def check_inputs_exist(fs: FileSystem, cfg: JobConfig) -> None:
    """Fail before any Spark job when an input path matches nothing."""
    for side, inp in cfg.inputs().items():
        reader = reader_for(inp.format)
        if not reader.has_files:
            continue
        candidates = reader.candidates(inp, cfg.src_lang, cfg.tgt_lang)
        if not any(fs.exists(c) or fs.glob(c) for c in candidates):
            relative = " (relative paths are resolved against the working directory)" if (
                is_local(inp.path) and not inp.path.startswith(("/", "file:"))) else ""
            raise UserError(f"{side}: no file matches {' or '.join(candidates)}"
                            f"{reader.missing(inp, cfg.src_lang, cfg.tgt_lang, side)}{relative}")


def check_counts(cfg: JobConfig, reads: Mapping[str, object]) -> None:
    """What the read counts already rule out, refused before embedding and k-means."""
    train = reads["train"].rows_kept
    need = cfg.gio.k + 1
    for side in cfg.target_sides():
        if reads[side].rows_kept < need:
            raise UserError(f"{side} has {reads[side].rows_kept} usable pairs; GIO's k-NN estimator with "
                            f"k={cfg.gio.k} needs at least {need} (add target pairs or lower gio.k)")
    if not cfg.quantize.enabled:
        check_direct_rows(train, cfg.quantize.max_direct_rows, "train")
    budget = cfg.selection.budget
    if budget and budget[0] == "pairs" and budget[1] > train:
        raise UserError(f"selection.budget_pairs={budget[1]} is more than the pool's {train} usable pairs")
    if budget and budget[0] == "tokens":
        have = reads["train"].tokens(cfg.selection.token_sides)
        if budget[1] > have:
            raise UserError(f"selection.budget_tokens={budget[1]} is more than the pool's {have} tokens "
                            f"({cfg.selection.token_sides} sides of its usable pairs)")
        shortest = reads["train"].shortest.get(cfg.selection.token_sides)
        if shortest is not None and budget[1] < shortest:
            raise UserError(f"selection.budget_tokens={budget[1]} is less than the shortest usable pool pair "
                            f"({shortest} tokens, {cfg.selection.token_sides} sides): no pair fits")
    for side in cfg.target_sides():
        dims = {"train": reads["train"].dim, "target": reads[side].dim}
        if None not in dims.values() and dims["train"] != dims["target"]:
            raise UserError(f"train vectors have dimension {dims['train']} but {side} vectors {dims['target']}")
