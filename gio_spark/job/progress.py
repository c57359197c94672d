"""Progress of long Spark stages in the driver log (console progress bars are off)."""
from __future__ import annotations

import logging
import threading
import time
from contextlib import contextmanager
from typing import Iterator

log = logging.getLogger("gio_spark.progress")


@contextmanager
def spark_progress(spark, label: str, every_s: float = 30.0) -> Iterator[None]:
    """Log finished/total tasks of the active Spark stages every ``every_s`` seconds; the
    label is the description of the Spark jobs started meanwhile (Spark UI, event log)."""
    sc = spark.sparkContext
    tracker = sc.statusTracker()
    previous = sc.getLocalProperty("spark.job.description")
    sc.setJobDescription(f"gio-spark: {label}")
    stop = threading.Event()
    start = time.perf_counter()

    def poll() -> None:
        while not stop.wait(every_s):
            parts = []
            for sid in tracker.getActiveStageIds():
                info = tracker.getStageInfo(sid)
                if info is not None:
                    parts.append(f"stage {sid}: {info.numCompletedTasks}/{info.numTasks} tasks")
            log.info("%s: %.0f s%s", label, time.perf_counter() - start, (", " + "; ".join(parts)) if parts else "")

    thread = threading.Thread(target=poll, name=f"progress-{label}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        sc.setJobDescription(previous)
        stop.set()
        thread.join(timeout=1)
