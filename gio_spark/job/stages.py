"""Stage outputs with success markers, so a rerun skips what is done.

Each stage keeps its output under ``<output>/_stages/<name>/`` and, last, a marker
``_stage.json`` holding the hash of everything that produced it (its config section and the
hashes of the stages it read). A rerun with the same hash reuses the output; a different
hash clears it and recomputes.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import time
from typing import Any, Callable

from . import storage
from .storage import HadoopFS

log = logging.getLogger(__name__)


def _plain(value: Any) -> Any:
    return dataclasses.asdict(value) if dataclasses.is_dataclass(value) else str(value)


def digest(*parts: Any) -> str:
    """A short stable hash of JSON-able values and config dataclasses."""
    blob = json.dumps(parts, sort_keys=True, default=_plain).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


class StageStore:
    def __init__(self, spark, output: str) -> None:
        self.root = storage.join(output, "_stages")
        self.fs = HadoopFS(spark)
        self.timings: dict[str, float] = {}
        self.reused: list[str] = []

    def dir(self, name: str) -> str:
        return storage.join(self.root, name)

    def data(self, name: str) -> str:
        return storage.spark_uri(storage.join(self.root, name, "data"))

    def _marker(self, name: str) -> str:
        return storage.join(self.root, name, "_stage.json")

    def run(self, name: str, key: str, compute: Callable[[], dict]) -> dict:
        """The stage's stats: from its marker when ``key`` matches, else from ``compute()``."""
        marker = self._marker(name)
        if storage.exists(marker):
            saved = json.loads(storage.read_text(marker))
            if saved.get("hash") == key:
                log.info("stage %s: done before (hash %s), reusing", name, key)
                self.reused.append(name)
                self.timings[name] = 0.0
                return saved["stats"]
            log.info("stage %s: config changed, recomputing", name)
        self.fs.delete(self.dir(name))
        log.info("stage %s: running", name)
        start = time.perf_counter()
        stats = compute()
        seconds = time.perf_counter() - start
        self.timings[name] = seconds
        storage.write_text(marker, json.dumps({"hash": key, "stats": stats, "seconds": seconds}))
        log.info("stage %s: done in %.1f s", name, seconds)
        return stats

    def write_npy(self, name: str, filename: str, array) -> None:
        import io

        import numpy as np

        buf = io.BytesIO()
        np.save(buf, array)
        storage.write_bytes(storage.join(self.root, name, filename), buf.getvalue())

    def read_npy(self, name: str, filename: str):
        import io

        import numpy as np

        return np.load(io.BytesIO(storage.read_bytes(storage.join(self.root, name, filename))))
