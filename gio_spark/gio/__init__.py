"""GIO selection core: numpy in, numpy out, JAX inside. Never imports pyspark."""
from .config import GIOConfig
from .estimators import knn_kl, relaxed_kl
from .result import SelectionResult
from .select import select

__all__ = ["GIOConfig", "SelectionResult", "knn_kl", "relaxed_kl", "select"]
