"""Input formats, one module each, in one registry: a new format is a reader class with
``candidates``/``missing`` (the checks before Spark reads), ``list`` (the files, listed once) and
``read`` (every row as RawPairs), registered here."""
from __future__ import annotations

from .base import FILE_SHIFT, InputFiles, RawPairs, numbered_lines
from .frame import FrameReader
from .parquet import HFReader, ParquetReader
from .text import TextReader
from .tsv import TsvReader
from .vectors import VectorsReader

READERS = {r.format: r for r in (TextReader(), TsvReader(), ParquetReader(), HFReader(), VectorsReader(),
                                 FrameReader())}


def reader_for(fmt: str):
    return READERS[fmt]


__all__ = ["FILE_SHIFT", "READERS", "InputFiles", "RawPairs", "numbered_lines", "reader_for"]
