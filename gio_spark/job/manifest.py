"""manifest.json: what a run read, computed, reused and wrote, built from the stages' typed results."""
from __future__ import annotations

from importlib import metadata
from typing import Any

from .config import JobConfig
from .stage import Runner

PACKAGES = ("gio-spark", "pyspark", "jax", "jaxlib", "numpy", "torch", "sentence-transformers", "transformers")


def package_versions() -> dict[str, str]:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def build_manifest(cfg: JobConfig, runner: Runner, spark: dict, seconds: float) -> dict[str, Any]:
    r = runner.results
    sides = list(cfg.inputs())  # train, then target or each target_<name>
    reads = {side: r[f"pairs_{side}"] for side in sides}
    rows = {}
    for side, read in reads.items():
        rows[f"{side}_in"], rows[f"{side}_kept"] = read.rows_in, read.rows_kept
    manifest = {
        "output": r["write"].uri,
        "summary": r["report"].summary,
        "output_format": cfg.output_format,
        "config": cfg.to_dict(),
        "versions": package_versions(),
        "rows": {**rows, "selected": r["write"].rows_out},
        "skipped": {side: dict(read.skipped) for side, read in reads.items()},
        "inputs": {side: read.stats() for side, read in reads.items()},
        "quantize": {side: r[f"quantize_{side}"].stats for side in sides},
        "selection": r["select"].to_dict(),
        "target_duplicates": r["guard"].stats(),
        "stages_reused": runner.reused,
        "stages": {name: {"key": rec.key, "reused": rec.reused, "resources": rec.resources, "path": rec.path}
                   for name, rec in runner.records.items()},
        "seconds": {**{name: round(rec.seconds, 3) for name, rec in runner.records.items()}, "total": round(seconds, 3)},
        "spark": {**spark, "jobs": runner.spark_jobs()},
    }
    for side, written in (r["write"].targets or {}).items():  # what was written of each named target, beside its pairs
        manifest["selection"]["targets"][side]["tokens"] = written["tokens"]
    if "density_ratio" in r:
        manifest["density_ratio"] = r["density_ratio"].stats()
    for key, uri in (("excluded", r["write"].excluded_uri), ("scores", r["write"].scores_uri)):
        if uri:
            manifest[key] = uri
    embeds = {side: r[f"embed_{side}"].stats() for side in sides if f"embed_{side}" in r}
    if "static_model" in r:
        embeds["static_model"] = r["static_model"].stats()
    if embeds:
        manifest["embedding"] = embeds
    return manifest
