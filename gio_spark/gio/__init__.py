"""GIO selection core: numpy in, numpy out, JAX inside. Never imports pyspark.

The names below are imported on first use, so that the options (``gio_spark.gio.config``), which
the job's config and every Spark task read, do not load JAX into executors' Python workers."""
from importlib import import_module
from typing import Any

__all__ = ["GIOConfig", "SelectionResult", "knn_kl", "relaxed_kl", "select"]
_HOME = {"GIOConfig": "config", "SelectionResult": "result", "knn_kl": "estimators", "relaxed_kl": "estimators",
         "select": "select"}


def __getattr__(name: str) -> Any:
    if name in _HOME:
        value = getattr(import_module(f".{_HOME[name]}", __name__), name)
        globals()[name] = value  # also replaces the submodule ``select`` that importing it bound here
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
