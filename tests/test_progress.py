"""Stage progress from Spark's status tracker: rows done of the row job, k-means iterations,
the stage's name as the job description."""
import logging
import re

import numpy as np
import pytest

from gio_spark.job.progress import duration, spark_progress

pytestmark = [pytest.mark.spark, pytest.mark.spark35]


def test_duration_words():
    assert duration(4.4) == "4 s" and duration(185) == "3 min 05 s" and duration(3720) == "1 h 02 min"


def test_rows_done_rate_and_job_description(spark, caplog):
    from pyspark.sql import functions as F
    from pyspark.sql.functions import udf

    with caplog.at_level(logging.INFO, logger="gio_spark.progress"):
        with spark_progress(spark, "test rows", every_s=0.2, total_rows=8, count_rows=True) as progress:
            counter = progress.counter

            @udf("string")
            def slow_description(x):
                import time

                from pyspark import TaskContext

                time.sleep(0.5)
                counter.add(1)
                return TaskContext.get().getLocalProperty("spark.job.description")

            df = spark.range(0, 8, numPartitions=8)
            seen = df.select(slow_description(F.col("id")).alias("d")).collect()
        assert progress.rows_done() == 8
    assert {r["d"] for r in seen} == {"gio-spark: test rows"}
    assert spark.sparkContext.getLocalProperty("spark.job.description") is None
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("test rows:")]
    done = [int(m.group(1)) for m in (re.search(r"(\d+) / 8 rows", line) for line in lines) if m]
    assert done == sorted(done) and done[-1] == 8
    assert any(0 < d < 8 for d in done), lines  # seen part-way, with a rate and an ETA
    assert any("rows/s, ETA" in line for line in lines), lines
    assert any("Spark tasks" in line for line in lines), lines  # before the first task finished
    assert re.match(r"test rows: done in \d+ s, 8 / 8 rows \(100%\), [\d.,]+ rows/s$", lines[-1]), lines[-1]


def test_a_stage_without_a_counter_shows_its_total(spark, caplog):
    with caplog.at_level(logging.INFO, logger="gio_spark.progress"):
        with spark_progress(spark, "reading", every_s=60) as progress:
            spark.range(0, 100, numPartitions=4).count()  # e.g. counting lines first
            # the status store learns that the job's stage ended from Spark's listener bus, which
            # can lag behind count() returning (seen on Spark 3.5): let it catch up first
            spark.sparkContext._jsc.sc().listenerBus().waitUntilEmpty(10_000)
            progress.set_total(50)
            assert progress.rows_done() is None
            assert re.match(r"reading: \d+ s, 50 rows, no Spark tasks running$", progress.describe())
    assert re.match(r"reading: done in \d+ s, 50 / 50 rows \(100%\), [\d.,]+ rows/s$", caplog.records[-1].getMessage())


def test_rows_written_are_the_rows_done_of_a_writing_stage(spark, tmp_path, caplog):
    import time

    from pyspark.sql import functions as F
    from pyspark.sql.functions import udf

    @udf("long")
    def slow(x):
        time.sleep(0.25)
        return x

    with caplog.at_level(logging.INFO, logger="gio_spark.progress"):
        with spark_progress(spark, "test write", every_s=0.2, total_rows=16, outputs_per_row=1) as progress:
            spark.range(0, 16, numPartitions=8).select(slow(F.col("id")).alias("id")).write.parquet(str(tmp_path / "o"))
            deadline = time.time() + 10
            while progress.rows_done() < 16 and time.time() < deadline:  # the status store trails a little
                time.sleep(0.1)
            assert progress.rows_done() == 16
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("test write:")]
    done = [int(m.group(1)) for m in (re.search(r"(\d+) / 16 rows", line) for line in lines) if m]
    assert done == sorted(done) and any(0 < d < 16 for d in done), lines  # seen part-way
    assert any("rows/s, ETA" in line for line in lines), lines


@pytest.mark.parametrize("lloyd", ["executors", "mllib"])
def test_kmeans_iterations_are_counted(spark, caplog, lloyd):
    from gio_spark.job.config import QuantizeConfig
    from gio_spark.job.quantize import quantize

    rng = np.random.default_rng(0)
    centers = rng.normal(size=(6, 8))
    data = centers[rng.integers(0, 6, 300)] + rng.normal(scale=0.5, size=(300, 8))
    emb = spark.createDataFrame([(i, row.tolist()) for i, row in enumerate(data)], "pair_id long, embedding array<float>")
    with caplog.at_level(logging.INFO, logger="gio_spark.progress"):
        with spark_progress(spark, "quantize test", every_s=60, max_iter=4) as progress:
            quantize(emb, QuantizeConfig(k=6, max_iter=4, seed=1, tol=1e-12, lloyd=lloyd), 300, "test", 0, None,
                     on_iteration=progress.lloyd_iteration)
        iterations = progress.kmeans_iterations()
        assert 1 <= iterations <= 4
    assert f"{iterations} / 4 k-means iterations" in caplog.records[-1].getMessage()
