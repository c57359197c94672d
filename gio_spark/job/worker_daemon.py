"""PySpark's worker daemon with the embedding libraries imported once, before it forks.

Spark starts one daemon per executor (``python -m <spark.python.daemon.module>``) and forks a
Python worker from it for each task slot, again after a worker sat idle for a minute. Imported
here, sentence-transformers and torch (seconds of CPU per import) come with every fork for free
instead of being imported again by each worker that embeds. Only imports happen here: no model
is loaded, no thread or CUDA context is started (each worker still loads its model once, on the
device of its task). The imported objects are then frozen out of the garbage collector: a
reused worker runs a full collection after every task, which over the half a million objects of
sentence-transformers and torch costs about 0.25 s of CPU each time (and touches, so copies, the
pages the fork shares).

Sessions the package starts set ``spark.python.daemon.module`` to this module; a cluster whose
nodes have the package installed can set it too (README, spark-submit).
"""
from __future__ import annotations

import gc
import importlib
import os

from ..logs import WORKER_ENV

# what a worker imports: PySpark's worker, the modules of the functions the job's tasks run
# (embedding, scoring, k-means' steps, readers, writers), and the libraries they use
PRELOAD = ("pyspark.worker", "pandas", "pyarrow", "tokenizers", "sentence_transformers", "gio_spark.job.embed",
           "gio_spark.static_embedding", "gio_spark.job.tally", "gio_spark.job.quantize", "gio_spark.job.duplicates",
           "gio_spark.job.readers", "gio_spark.job.stages.guard", "gio_spark.job.stages.write",
           "gio_spark.job.stages.static", "gio_spark.job.stages.embed")


def preload(modules: tuple[str, ...] = PRELOAD) -> list[str]:
    """Import ``modules``; those that are missing or fail are left to the worker that needs them
    (it reports the error with the task). The names imported."""
    # what the libraries read at import (no progress bars in executor logs, no tokenizer threads)
    for key, value in WORKER_ENV.items():
        os.environ.setdefault(key, value)
    done = []
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - the worker that needs it raises it with the task
            continue
        done.append(name)
    return done


if __name__ == "__main__":
    from pyspark.daemon import manager

    PRELOADED = preload()  # each forked worker finds it on its __main__ module
    gc.collect()
    gc.freeze()
    manager()
