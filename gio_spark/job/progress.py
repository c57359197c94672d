"""Progress of long stages in the driver log: every ``every_s`` seconds and at the end.

The Spark jobs of a stage get the description ``gio-spark: <label>`` (Spark UI, History
Server) and a job tag, so the status tracker tells which jobs are the stage's. Rows done
come from one of two places:
- an accumulator that the stage's tasks add to (the embedding UDF does); Spark merges a task's
  additions on the driver when the task succeeds, so the count is exact for finished tasks,
  wherever the executors run, and a failed attempt adds nothing;
- for stages that write their rows (reading, writing), the records written by the stage's
  Spark jobs, from Spark's own status store (the numbers of the UI's "Output" column: running
  tasks report theirs with each executor heartbeat).
Before any row is done, the line shows the running Spark stage's tasks and its ETA. k-means
iterations are those the executors' Lloyd reports (``lloyd_iteration``) or MLlib's
per-iteration jobs.
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
    """What one stage has done so far, from its row counter and Spark's status tracker."""

    def __init__(self, spark, label: str, total_rows: Optional[int] = None, max_iter: Optional[int] = None,
                 count_rows: bool = False, outputs_per_row: int = 0) -> None:
        self.sc = spark.sparkContext
        self.tracker = self.sc.statusTracker()
        self.label = label
        self.tag = f"gio-spark-{uuid.uuid4().hex[:12]}"
        self.started = time.perf_counter()
        self.max_iter = max_iter
        self.total_rows = None if total_rows is None else int(total_rows)
        self.counter = self.sc.accumulator(0) if count_rows else None
        self.outputs_per_row = outputs_per_row  # > 0: rows done are records written / this
        self._iteration_jobs: set[int] = set()
        self._other_jobs: set[int] = set()
        self._lloyd_iterations = 0

    def set_total(self, rows: int) -> None:
        """The stage works on ``rows`` rows (known once the input is counted)."""
        self.total_rows = int(rows)

    def job_ids(self) -> list[int]:
        """This stage's Spark jobs (by tag; on a Spark without job tags, the active jobs)."""
        try:
            return sorted(int(j) for j in self.sc._jsc.sc().statusTracker().getJobIdsForTag(self.tag))
        except Exception:
            return sorted(int(j) for j in self.tracker.getActiveJobsIds())

    def rows_done(self) -> Optional[int]:
        """Rows done so far: of the tasks that finished (row counter), or written (output
        records); None when the stage has neither."""
        if self.counter is not None:
            done = int(self.counter.value)
        elif self.outputs_per_row:
            done = self.records_written() // self.outputs_per_row
        else:
            return None
        return min(done, self.total_rows) if self.total_rows is not None else done

    def records_written(self) -> int:
        """Records written so far by this stage's Spark jobs (Spark's status store)."""
        store = self.sc._jsc.sc().statusStore()
        written = 0
        for job_id in self.job_ids():
            info = self.tracker.getJobInfo(job_id)
            for stage_id in info.stageIds if info is not None else ():
                try:
                    written += int(store.lastStageAttempt(stage_id).outputRecords())
                except Exception:  # a stage that was skipped, or not started yet
                    continue
        return written

    def lloyd_iteration(self, done: int) -> None:
        """The executors' Lloyd finished its ``done``-th iteration."""
        self._lloyd_iterations = done

    def kmeans_iterations(self) -> int:
        """k-means iterations so far: those reported, or MLlib's started (one Spark job each)."""
        if self._lloyd_iterations:
            return self._lloyd_iterations
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

    def _running_stage(self) -> str:
        """Tasks done of the running Spark stages, with the ETA of the largest."""
        done = total = 0
        largest = None
        for sid in self.tracker.getActiveStageIds():
            info = self.tracker.getStageInfo(sid)
            if info is None:
                continue
            done, total = done + info.numCompletedTasks, total + info.numTasks
            if largest is None or info.numTasks > largest.numTasks:
                largest = info
        if not total:
            return "no Spark tasks running"
        text = f"Spark tasks {done}/{total}"
        if largest is not None and 0 < largest.numCompletedTasks < largest.numTasks:
            try:
                submitted = self.sc._jsc.statusTracker().getStageInfo(largest.stageId).submissionTime() / 1000.0
            except Exception:
                submitted = 0.0
            if submitted > 0:
                spent = max(time.time() - submitted, 0.0)
                left = spent * (largest.numTasks - largest.numCompletedTasks) / largest.numCompletedTasks
                text += f", this Spark stage ETA {duration(left)}"
        return text

    def describe(self, final: bool = False) -> str:
        """One line: elapsed time; rows done / total with rate and ETA (or the row total and
        the running tasks); the k-means iteration."""
        spent = time.perf_counter() - self.started
        parts = [f"{self.label}: {'done in ' if final else ''}{duration(spent)}"]
        done = self.rows_done()
        total = self.total_rows
        if final and total is not None:
            done = total
        if done is not None and total is not None:
            parts.append(f"{done:,} / {total:,} rows ({100 * done // max(total, 1)}%)")
        elif total is not None:
            parts.append(f"{total:,} rows")
        if done:
            rate = done / max(spent, 1e-3)
            parts.append(f"{rate:,.0f} rows/s" if rate >= 10 else f"{rate:.2g} rows/s")
            if total is not None and done < total:
                parts.append(f"ETA {duration((total - done) / rate)}")
        if self.max_iter is not None:
            i = self.kmeans_iterations()
            if final:
                parts.append(f"{i} / {self.max_iter} k-means iterations")
            elif i:
                parts.append(f"k-means iteration {i} / {self.max_iter}")
            else:
                parts.append("k-means initialisation")
        if not final and not done:
            parts.append(self._running_stage())
        return ", ".join(parts)


@contextmanager
def job_tag(spark) -> Iterator[str]:
    """Tag every Spark job started inside (in this thread) with a fresh tag; yields the tag."""
    sc = spark.sparkContext
    tag = f"gio-spark-{uuid.uuid4().hex[:12]}"
    sc.addJobTag(tag)
    try:
        yield tag
    finally:
        sc.removeJobTag(tag)


def jobs_by_tag(spark, tags: dict[str, str]) -> dict[str, int]:
    """How many Spark jobs carried each tag (``{name: tag}``), once Spark's status store has
    taken in every event posted so far."""
    jsc = spark.sparkContext._jsc.sc()
    try:
        jsc.listenerBus().waitUntilEmpty(10_000)
    except Exception as exc:  # an internal API: without it the latest job may be missing
        log.debug("Spark's listener bus could not be drained: %s", exc)
    tracker = jsc.statusTracker()
    return {name: len(tracker.getJobIdsForTag(tag)) for name, tag in tags.items()}


@contextmanager
def spark_progress(
    spark, label: str, every_s: float = 30.0, total_rows: Optional[int] = None, max_iter: Optional[int] = None,
    count_rows: bool = False, outputs_per_row: int = 0,
) -> Iterator[StageProgress]:
    """Log the stage's progress every ``every_s`` seconds and once at its end; the label is
    the description of the Spark jobs started meanwhile (Spark UI, event log). With
    ``count_rows``, ``progress.counter`` is an accumulator for the tasks to add their rows to; with
    ``outputs_per_row``, rows done are the records the stage's jobs wrote, divided by it."""
    progress = StageProgress(spark, label, total_rows=total_rows, max_iter=max_iter, count_rows=count_rows,
                             outputs_per_row=outputs_per_row)
    sc = progress.sc
    previous = sc.getLocalProperty("spark.job.description")
    sc.setJobDescription(f"gio-spark: {label}")
    tagged = hasattr(sc, "addJobTag")
    if tagged:
        sc.addJobTag(progress.tag)
    stop = threading.Event()

    def report(final: bool = False) -> None:
        try:
            log.info(progress.describe(final=final))
        except Exception as exc:  # the context may be stopping; progress is best effort
            log.debug("progress of %s unavailable: %s", label, exc)

    def poll() -> None:
        while not stop.wait(every_s):
            report()

    thread = threading.Thread(target=poll, name=f"progress-{label}", daemon=True)
    thread.start()
    try:
        yield progress
        stop.set()
        thread.join(timeout=5)
        report(final=True)
    finally:
        stop.set()
        thread.join(timeout=5)
        if tagged:
            sc.removeJobTag(progress.tag)
        sc.setJobDescription(previous)
