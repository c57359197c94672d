"""gio-spark: Gradient Information Optimization data selection as a Spark job.

``from gio_spark import select_pairs`` runs the job on DataFrames (gio_spark/api.py); the GIO
core alone is ``gio_spark.gio`` (no Spark needed)."""
__version__ = "0.4.0"
__all__ = ["Selection", "select_pairs", "__version__"]


def __getattr__(name: str):
    """``select_pairs`` and ``Selection`` are imported on first use: the GIO core must not need Spark."""
    if name in ("select_pairs", "Selection"):
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'gio_spark' has no attribute {name!r}")
