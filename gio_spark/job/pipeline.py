"""The job end to end: the stages in order, ``if_exists``, the output lock and ``_SUCCESS``.

    pairs_train, pairs_target   read every input row with a stable pair id  (stages/read.py)
    static_model                token vectors fitted to the model (static)  (stages/static.py)
    embed_train, embed_target   one vector per pair, in executor tasks      (stages/embed.py)
    quantize_train, _target     k-means centroids, sizes, assignments       (stages/quantize.py)
    density_ratio               target/pool density ratio model (one target) (stages/ratio.py)
    guard                       pool pairs scored, target duplicates out    (stages/guard.py)
    select                      GIO on the centroids, on the driver         (stages/select.py)
    write                       the chosen pairs into <output>/selected     (stages/write.py)
    report                      the summary and report.png                  (stages/report.py)
"""
from __future__ import annotations

import json
import logging
import time
from typing import Any

from ..errors import UserError
from .checks import check_counts, check_inputs_exist, check_locations, check_writable
from .config import JobConfig, config_changes, language_warning
from .embed import check_embedding
from .fs import FileSystem
from .lock import OutputLock
from .manifest import build_manifest
from .readers import reader_for
from .session import get_spark, session_info, warn_local_paths
from .stage import Context, Runner, Stage, StageStore
from .stages.embed import EmbedStage
from .stages.guard import GuardStage
from .stages.quantize import QuantizeStage
from .stages.ratio import DensityRatioStage
from .stages.read import ReadStage
from .stages.report import ReportStage
from .stages.select import SelectStage
from .stages.static import StaticModelStage
from .stages.write import WriteStage
from .uri import join

log = logging.getLogger(__name__)

SUCCESS = "_SUCCESS"
MANIFEST = "manifest.json"


def later_stages(cfg: JobConfig) -> list[Stage]:
    """Every stage after the read stages, in order; precomputed vectors need no embedding.
    The pool (``train``) and each target are embedded and quantized once."""
    embedded = reader_for(cfg.train.format).embedded
    static = cfg.embedding.method == "static"
    gpus = cfg.embedding.gpus_per_task
    sides, targets = list(cfg.inputs()), cfg.target_sides()
    embeds = [] if embedded else [
        *([StaticModelStage(gpus)] if static else []), *[EmbedStage(side, gpus, static) for side in sides]]
    quantize = [QuantizeStage(side, f"pairs_{side}" if embedded else f"embed_{side}") for side in sides]
    ratio = [DensityRatioStage("pairs" if embedded else "embed")] if cfg.by_ratio else []
    return [*embeds, *quantize, *ratio, GuardStage(embedded, targets, ratio=cfg.by_ratio), SelectStage(targets),
            WriteStage(), ReportStage(targets)]


def run_job(cfg: JobConfig, spark=None, force_unlock: bool = False) -> dict[str, Any]:
    """Run the whole job; returns the manifest (also written to ``<output>/manifest.json``).
    The output is locked for the whole run; ``force_unlock`` takes over a stale lock."""
    warning = language_warning(cfg)
    if warning:
        log.warning(warning)
    if not reader_for(cfg.train.format).embedded:
        check_embedding(cfg.embedding)
    if spark is None:
        spark = get_spark(cfg.spark_master)
    fs = FileSystem(spark)
    warn_local_paths(spark, [*(inp.path for inp in cfg.inputs().values()), cfg.output])
    check_locations(fs, cfg)
    if cfg.stages_dir is not None:
        check_writable(fs, cfg.stages_dir)
    runner = Runner(Context(spark, fs, cfg), store(fs, cfg))
    if fs.exists(join(cfg.output, SUCCESS)) and cfg.if_exists != "overwrite":
        return complete_run(runner)
    check_inputs_exist(fs, cfg)
    with OutputLock(fs, cfg.output, stale_after_s=cfg.lock_stale_minutes * 60, force=force_unlock) as lock:
        return _run_locked(runner, lock)


def store(fs: FileSystem, cfg: JobConfig) -> StageStore:
    return StageStore(fs, cfg.stages_dir or join(cfg.output, "_stages"), shared=cfg.stages_dir is not None)


def complete_run(runner: Runner) -> dict[str, Any]:
    """``if_exists`` fail or skip on an output that holds a complete run: skip returns it when
    it was made with this config from these very input files."""
    cfg, fs = runner.ctx.cfg, runner.ctx.fs
    if cfg.if_exists == "fail":
        raise UserError(f"{cfg.output} already holds a complete run; pass --if-exists skip or overwrite")
    path = join(cfg.output, MANIFEST)
    try:
        manifest = json.loads(fs.read_text(path))
        saved_keys = {side: manifest["stages"][f"pairs_{side}"]["key"] for side in cfg.inputs()}
    except (ValueError, KeyError, TypeError) as exc:
        why = "records no input fingerprint" if isinstance(exc, KeyError) else f"is unreadable ({exc})"
        raise UserError(f"{path} {why}; pass --if-exists overwrite to compute the run again (finished stages "
                        f"are reused)") from None
    changes = config_changes(manifest.get("config", {}), cfg)
    what = "another config"
    if not changes:  # the same config: are they the same files, byte for byte?
        what = "other input files"
        changes = [f"the {side} files changed since" for side in cfg.inputs()
                   if runner.key(ReadStage(side)) != saved_keys[side]]
    if changes:
        raise UserError(
            f"{cfg.output} holds a complete run made with {what} ({'; '.join(changes)}); pass --if-exists overwrite "
            "to recompute what changed (finished stages are reused) or another --output"
        )
    log.info("%s already holds a complete run with this config and input; skipping (if_exists=skip)", cfg.output)
    return manifest


def _run_locked(runner: Runner, lock: OutputLock) -> dict[str, Any]:
    started = time.perf_counter()
    cfg, fs = runner.ctx.cfg, runner.ctx.fs
    done = join(cfg.output, SUCCESS)
    if fs.exists(done):
        if cfg.if_exists != "overwrite":  # another run completed it meanwhile
            return complete_run(runner)
        fs.delete(done)  # overwrite: never look complete while rewriting
    for side in cfg.inputs():
        runner.run(ReadStage(side))
    check_counts(cfg, {side: runner.results[f"pairs_{side}"] for side in cfg.inputs()})
    for stage in later_stages(cfg):
        runner.run(stage)
    manifest = build_manifest(cfg, runner, session_info(runner.ctx.spark), time.perf_counter() - started)
    fs.write_text(join(cfg.output, MANIFEST), json.dumps(manifest, indent=1))
    lock.check()  # never mark complete an output another run has taken over
    fs.write_text(done, json.dumps({"rows": manifest["rows"]["selected"]}))
    log.info("wrote %d selected pairs to %s (manifest %s, report %s)", manifest["rows"]["selected"],
             manifest["output"], join(cfg.output, MANIFEST), join(cfg.output, "report.png"))
    return manifest
