"""Figures that ride on a pass the job makes anyway, instead of Spark jobs of their own.

- ``observed``: aggregate expressions (counts, sums, minima) that Spark computes while an action
  runs over the DataFrame (``DataFrame.observe``): put them on the DataFrame a stage writes and
  its figures come with the write.
- ``Tally``: an accumulator of named numpy arrays (and the first few rows by a key) that a
  ``mapInPandas`` body adds to: per-cluster figures, which no single aggregate expression gives.

Both must ride on the last Spark stage of a job (the one that writes, after every shuffle):
Spark merges a result task's figures exactly once, whatever its retries, but a map task's on
each successful attempt.
"""
from __future__ import annotations

import heapq
from typing import Optional

import numpy as np
from pyspark import AccumulatorParam
from pyspark.sql import Column, DataFrame, Observation


def observed(df: DataFrame, **figures: Column) -> tuple[DataFrame, Observation]:
    """``df`` with ``figures`` (name -> aggregate expression) observed: after the first action on
    the returned DataFrame has finished, ``observation.get`` holds them by name."""
    seen = Observation()
    return df.observe(seen, *[expr.alias(name) for name, expr in figures.items()]), seen


class Tally:
    """Sums of named arrays, element-wise minima of others, and the ``keep`` smallest rows
    (tuples, compared as tuples)."""

    def __init__(self, keep: int = 0) -> None:
        self.keep = keep
        self.sums: dict[str, np.ndarray] = {}
        self.minima: dict[str, np.ndarray] = {}
        self.rows: list[tuple] = []

    def add(self, name: str, values) -> None:
        values = np.asarray(values)
        self.sums[name] = self.sums[name] + values if name in self.sums else values.copy()

    def least(self, name: str, values) -> None:
        """Keep the element-wise minimum of ``values`` and what was seen under ``name``."""
        values = np.asarray(values)
        self.minima[name] = np.minimum(self.minima[name], values) if name in self.minima else values.copy()

    def note(self, rows) -> None:
        """Keep the smallest of the rows seen so far and ``rows``."""
        if self.keep:
            self.rows = heapq.nsmallest(self.keep, [*self.rows, *rows])

    def merge(self, other: "Tally") -> "Tally":
        for name, values in other.sums.items():
            self.add(name, values)
        for name, values in other.minima.items():
            self.least(name, values)
        self.note(other.rows)
        return self

    def get(self, name: str, default: Optional[np.ndarray] = None) -> Optional[np.ndarray]:
        return self.sums.get(name, self.minima.get(name, default))


class _TallyParam(AccumulatorParam):
    def zero(self, value: Tally) -> Tally:
        return Tally(value.keep)

    def addInPlace(self, value1: Tally, value2: Tally) -> Tally:
        return value1.merge(value2)


def tally(spark, keep: int = 0):
    """A Spark accumulator of a :class:`Tally`: tasks ``add`` theirs, the driver reads ``.value``."""
    return spark.sparkContext.accumulator(Tally(keep), _TallyParam())
