"""Progress of long stages in the driver log: every ``every_s`` seconds and at the end.

The Spark jobs of a stage get the description ``gio-spark: <label>`` (Spark UI, History
Server) and a job tag, so the status tracker tells which jobs are the stage's. Rows done come
from the finished tasks of the stage's row job (the first job started once the row total is
known), whose partitions hold about equal shares of the rows; k-means iterations are MLlib's
per-iteration jobs. Only the driver's status tracker is read, so this works the same with
executors in other processes or on other machines.
"""
from __future__ import annotations

import logging
import threading
import time
import uuid
from contextlib import contextmanager
from typing import Iterator, Optional

log = logging.getLogger("gio_spark.progress")

# the call site of the one job per Lloyd iteration in MLlib's KMeans (Spark 3.x and 4.x)
KMEANS_ITERATION_STAGE = "collectAsMap at KMeans.scala"


def duration(seconds: float) -> str:
    """``42 s``, ``3 min 05 s``, ``1 h 02 min``."""
    s = int(round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


class StageProgress:
    """What one stage has done so far, read from Spark's status tracker."""

    def __init__(self, spark, label: str, total_rows: Optional[int] = None, max_iter: Optional[int] = None) -> None:
        self.sc = spark.sparkContext
        self.tracker = self.sc.statusTracker()
        self.label = label
        self.tag = f"gio-spark-{uuid.uuid4().hex[:12]}"
        self.started = time.perf_counter()
        self.max_iter = max_iter
        self.total_rows: Optional[int] = None
        self._rows_since = time.time()
        self._rows_after_job = -1
        self._iteration_jobs: set[int] = set()
        self._other_jobs: set[int] = set()
        if total_rows is not None:
            self.set_total(total_rows)

    def set_total(self, rows: int) -> None:
        """The next Spark job of this stage processes ``rows`` rows."""
        jobs = self.job_ids()
        self.total_rows = int(rows)
        self._rows_after_job = max(jobs) if jobs else -1
        self._rows_since = time.time()

    def job_ids(self) -> list[int]:
        """This stage's Spark jobs (by tag; on a Spark without job tags, the active jobs)."""
        try:
            return sorted(int(j) for j in self.sc._jsc.sc().statusTracker().getJobIdsForTag(self.tag))
        except Exception:
            return sorted(int(j) for j in self.tracker.getActiveJobsIds())

    def _result_stage(self, job_id: int):
        info = self.tracker.getJobInfo(job_id)
        if info is None or not list(info.stageIds):
            return None, None
        return info, self.tracker.getStageInfo(max(info.stageIds))

    def rows_done(self) -> Optional[tuple[int, int]]:
        """(rows done, total) from the row job's finished tasks, or None before it starts."""
        if self.total_rows is None:
            return None
        later = [j for j in self.job_ids() if j > self._rows_after_job]
        if not later:
            return None
        job, stage = self._result_stage(later[0])
        if stage is not None:
            self._note_start(stage.stageId)
        if job is not None and job.status == "SUCCEEDED":
            return self.total_rows, self.total_rows
        if stage is None or stage.numTasks == 0:
            return 0, self.total_rows
        return self.total_rows * stage.numCompletedTasks // stage.numTasks, self.total_rows

    def _note_start(self, stage_id: int) -> None:
        """Rates count from the submission of the row job's last stage (where rows are done)."""
        try:
            submitted = self.sc._jsc.statusTracker().getStageInfo(stage_id).submissionTime() / 1000.0
        except Exception:
            return
        if submitted > 0:
            self._rows_since = max(self._rows_since, submitted)

    def kmeans_iterations(self) -> int:
        """MLlib k-means iterations started so far (one Spark job each)."""
        for job_id in self.job_ids():
            if job_id in self._iteration_jobs or job_id in self._other_jobs:
                continue
            info = self.tracker.getJobInfo(job_id)
            if info is None:
                continue
            names = [getattr(self.tracker.getStageInfo(s), "name", "") or "" for s in info.stageIds]
            if any(n.startswith(KMEANS_ITERATION_STAGE) for n in names):
                self._iteration_jobs.add(job_id)
            elif info.status in ("SUCCEEDED", "FAILED"):
                self._other_jobs.add(job_id)
        return len(self._iteration_jobs)

    def _tasks(self) -> str:
        done = total = 0
        for sid in self.tracker.getActiveStageIds():
            info = self.tracker.getStageInfo(sid)
            if info is not None:
                done, total = done + info.numCompletedTasks, total + info.numTasks
        return f"{done}/{total} tasks" if total else "no Spark tasks running"

    def describe(self, final: bool = False) -> str:
        """One line: elapsed time, rows done / total with rate and ETA, or the k-means
        iteration, or the running tasks."""
        parts = [f"{self.label}: {'done in ' if final else ''}{duration(time.perf_counter() - self.started)}"]
        rows = self.rows_done()
        if final and self.total_rows is not None:
            rows = (self.total_rows, self.total_rows)
        if rows is not None:
            done, total = rows
            parts.append(f"{done:,} / {total:,} rows ({100 * done // max(total, 1)}%)")
            if done:
                rate = done / max(time.time() - self._rows_since, 1e-3)
                parts.append(f"{rate:,.0f} rows/s" if rate >= 10 else f"{rate:.2g} rows/s")
                if done < total:
                    parts.append(f"ETA {duration((total - done) / rate)}")
        if self.max_iter is not None:
            i = self.kmeans_iterations()
            if i or final:
                parts.append(f"k-means iteration {i} / {self.max_iter}" if not final else
                             f"{i} / {self.max_iter} k-means iterations")
            else:
                parts.append(f"k-means initialisation ({self._tasks()})")
        if (rows is None or rows[0] == 0) and self.max_iter is None and not final:
            parts.append(self._tasks())
        return ", ".join(parts)


@contextmanager
def spark_progress(
    spark, label: str, every_s: float = 30.0, total_rows: Optional[int] = None, max_iter: Optional[int] = None
) -> Iterator[StageProgress]:
    """Log the stage's progress every ``every_s`` seconds and once at its end; the label is
    the description of the Spark jobs started meanwhile (Spark UI, event log)."""
    progress = StageProgress(spark, label, total_rows=total_rows, max_iter=max_iter)
    sc = progress.sc
    previous = sc.getLocalProperty("spark.job.description")
    sc.setJobDescription(f"gio-spark: {label}")
    tagged = hasattr(sc, "addJobTag")
    if tagged:
        sc.addJobTag(progress.tag)
    stop = threading.Event()

    def poll() -> None:
        while not stop.wait(every_s):
            try:
                log.info(progress.describe())
            except Exception as exc:  # the context may be stopping; progress is best effort
                log.debug("progress of %s unavailable: %s", label, exc)

    thread = threading.Thread(target=poll, name=f"progress-{label}", daemon=True)
    thread.start()
    try:
        yield progress
        stop.set()
        thread.join(timeout=5)
        log.info(progress.describe(final=True))
    finally:
        stop.set()
        thread.join(timeout=5)
        if tagged:
            sc.removeJobTag(progress.tag)
        sc.setJobDescription(previous)
