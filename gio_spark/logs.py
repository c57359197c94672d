"""Logging for the command line: the package's lines stand out, other libraries' noise is
quieted where it starts (their loggers, warnings, progress bars), warnings stay visible."""
from __future__ import annotations

import logging
import os
import sys
import warnings

# Python loggers whose INFO lines are not for users of this package
QUIET_LOGGERS = ("py4j", "jax", "absl", "urllib3", "botocore", "boto3", "s3transfer", "filelock", "fsspec", "werkzeug")
HANDLER_NAME = "gio-spark"
PANDAS_WARNING = "PySpark does not yet fully support pandas"
# read by Python workers that start after this (local mode inherits the driver's environment)
WORKER_ENV = {
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "TOKENIZERS_PARALLELISM": "false",
}


class _StderrHandler(logging.StreamHandler):
    """A handler that writes to whatever ``sys.stderr`` is when a record comes (it may have
    been replaced since, e.g. by a test's capture)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


class _Formatter(logging.Formatter):
    """``12:00:01 gio-spark: message`` for the package, ``12:00:01 [logger] LEVEL message`` else."""

    def format(self, record: logging.LogRecord) -> str:
        when = self.formatTime(record, "%H:%M:%S")
        text = record.getMessage()
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        if record.name.startswith("gio_spark"):
            level = "" if record.levelno == logging.INFO else f"{record.levelname}: "
            return f"{when} gio-spark: {level}{text}"
        return f"{when} [{record.name}] {record.levelname} {text}"


_VERBOSE = False


def verbose() -> bool:
    """Whether the command line asked for everything (``--verbose``): Spark then logs as it
    does by default, stack traces on the console included."""
    return _VERBOSE


def configure(verbose: bool = False) -> None:
    """Set up logging for a command-line run (also quiets third-party Python noise)."""
    global _VERBOSE
    _VERBOSE = verbose
    handler = _StderrHandler()
    handler.setFormatter(_Formatter())
    handler.set_name(HANDLER_NAME)
    root = logging.getLogger()
    root.handlers[:] = [h for h in root.handlers if h.get_name() != HANDLER_NAME] + [handler]
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    if not verbose:
        for name in QUIET_LOGGERS:
            logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=PANDAS_WARNING, category=FutureWarning)
    for key, value in WORKER_ENV.items():
        os.environ.setdefault(key, value)
    worker_filter = f"ignore:{PANDAS_WARNING}:FutureWarning"
    current = os.environ.get("PYTHONWARNINGS")
    if worker_filter not in (current or ""):
        os.environ["PYTHONWARNINGS"] = f"{current},{worker_filter}" if current else worker_filter
