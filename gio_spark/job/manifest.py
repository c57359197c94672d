"""Package versions recorded in the manifest."""
from __future__ import annotations

from importlib import metadata

PACKAGES = ("gio-spark", "pyspark", "jax", "jaxlib", "numpy", "torch", "sentence-transformers", "transformers")


def package_versions() -> dict[str, str]:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out
