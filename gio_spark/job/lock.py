"""One owner per output folder: the marker ``<output>/_LOCK``.

A run creates the marker atomically where the storage allows it (see fs.create_exclusive),
renews its heartbeat while it runs, and removes it when it ends, also on failure. A second
run on the same output refuses with one line naming the owner. A marker is stale when its
heartbeat is older than ``stale_after_s`` (its run stopped renewing it, on whatever host) or
its process is gone on this same host; ``force=True`` (``--force-unlock``) takes a stale marker
over, never a live one.
"""
from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone
from typing import Optional

from ..errors import UserError
from . import failures
from .fs import FileSystem
from .session import in_new_thread
from .uri import join, redact, shown

log = logging.getLogger(__name__)

LOCK_NAME = "_LOCK"
DEFAULT_STALE_MINUTES = 10.0
HEARTBEAT_S = 60.0
RELEASE_S = 60.0  # how long releasing the lock may take (an unreachable object store retries for minutes)


@dataclass(frozen=True)
class LockInfo:
    owner: str
    host: str
    pid: int
    started: str  # ISO 8601, UTC
    started_epoch: float
    heartbeat_epoch: float

    @classmethod
    def mine(cls) -> "LockInfo":
        now = time.time()
        started = datetime.fromtimestamp(now, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        return cls(uuid.uuid4().hex[:12], socket.gethostname(), os.getpid(), started, now, now)

    @classmethod
    def parse(cls, text: str) -> Optional["LockInfo"]:
        try:
            data = json.loads(text)
            return cls(str(data["owner"]), str(data["host"]), int(data["pid"]), str(data["started"]),
                       float(data["started_epoch"]), float(data.get("heartbeat_epoch", data["started_epoch"])))
        except (ValueError, KeyError, TypeError):
            return None

    @property
    def unreadable(self) -> bool:
        return self.pid < 0

    def describe(self) -> str:
        if self.unreadable:
            return "an unreadable lock"
        return f"run {self.owner} (host {self.host}, pid {self.pid}, started {self.started})"


UNREADABLE = LockInfo("", "", -1, "", 0.0, 0.0)
_HELD: set[str] = set()  # owners of the locks this process holds now (a notebook runs many jobs in one process)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return True


def stale_reason(info: LockInfo, stale_after_s: float, now: Optional[float] = None) -> Optional[str]:
    """Why a lock can be taken over, or None while its owner may still be running."""
    if info.unreadable:
        return "its content is not a lock"
    quiet = (now if now is not None else time.time()) - info.heartbeat_epoch
    if quiet > stale_after_s:
        return f"its heartbeat stopped {quiet / 60:.0f} min ago"
    if info.host == socket.gethostname():
        if info.pid == os.getpid():
            return None if info.owner in _HELD else "its run in this process has ended"
        if not _pid_alive(info.pid):
            return f"process {info.pid} is gone on this host"
    return None


class OutputLock:
    """``with OutputLock(fs, output): ...`` holds the output for one run."""

    def __init__(self, fs: FileSystem, output: str, stale_after_s: float = DEFAULT_STALE_MINUTES * 60,
                 force: bool = False, heartbeat_s: float = HEARTBEAT_S) -> None:
        self.fs = fs
        self.output = output
        self.uri = join(output, LOCK_NAME)
        self.stale_after_s = stale_after_s
        self.force = force
        self.heartbeat_s = heartbeat_s
        self.info = LockInfo.mine()
        self.held = False
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def _read(self) -> Optional[LockInfo]:
        if not self.fs.exists(self.uri):
            return None
        try:
            text = self.fs.read_text(self.uri)
        except UserError:  # removed in between, or not text
            return None if not self.fs.exists(self.uri) else UNREADABLE
        return LockInfo.parse(text) or UNREADABLE  # not a lock this package wrote: stale, --force-unlock clears it

    def _mine(self, other: Optional[LockInfo]) -> bool:
        return other is not None and other.owner == self.info.owner and other.pid == self.info.pid

    def acquire(self) -> None:
        for _ in range(3):
            if self.fs.create_exclusive(self.uri, json.dumps(asdict(self.info)).encode()):
                if self._mine(self._read()):  # on storage without atomic create: the last writer wins
                    self.held = True
                    _HELD.add(self.info.owner)
                    log.info("locked %s as %s", self.output, self.info.describe())
                    self._start_heartbeat()
                    return
                continue
            other = self._read()
            if other is None:
                continue  # released between our attempt and the read: try again
            why = stale_reason(other, self.stale_after_s)
            if why is None:
                raise UserError(f"output {self.output} is in use by {other.describe()}; wait for it to finish "
                                f"or use another output")
            if not self.force:
                raise UserError(f"output {self.output} is locked by {other.describe()}, which looks stale "
                                f"({why}); rerun with --force-unlock to take it over")
            log.warning("taking over the stale lock of %s (%s)", other.describe(), why)
            if self._read() == other:
                self.fs.delete(self.uri)
        raise UserError(f"output {self.output}: could not take the lock {self.uri}; another run is starting there")

    def _start_heartbeat(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._beat, name="gio-spark-lock-heartbeat", daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        while not self._stop.wait(self.heartbeat_s):
            try:
                if not self._mine(self._read()):
                    log.warning("lock of %s is no longer this run's; heartbeat stopped", self.output)
                    return
                self.info = replace(self.info, heartbeat_epoch=time.time())
                self.fs.write_text(self.uri, json.dumps(asdict(self.info)))
            except Exception as exc:  # the session may be stopping; the next beat tries again
                log.debug("lock heartbeat failed: %s", exc)

    def check(self) -> None:
        """Raise unless this run still holds the lock (before declaring the output complete)."""
        current = self._read()
        if not self._mine(current):
            who = current.describe() if current else "nobody"
            raise RuntimeError(f"lost the lock on {self.output} (now held by {who}); not marking it complete")

    def release(self) -> None:
        """Remove the lock if it is still this run's (in a thread of its own: after Ctrl-C the
        interrupted thread's connection to the JVM is unusable)."""
        if self.held:
            done = in_new_thread(self._release, timeout_s=RELEASE_S)
            if not done:
                raise TimeoutError(f"its filesystem did not answer in {RELEASE_S:.0f} s")

    def _release(self) -> bool:
        self.held = False
        _HELD.discard(self.info.owner)
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        current = self._read()
        if self._mine(current):
            self.fs.delete(self.uri)
        else:
            log.warning("lock of %s was taken over by %s; leaving it", self.output,
                        current.describe() if current else "nobody")
        return True

    def __enter__(self) -> "OutputLock":
        self.acquire()
        return self

    def __exit__(self, kind, error, trace) -> None:
        try:
            self.release()
        except Exception as exc:
            if kind is None:
                raise
            found = failures.kind(exc)
            why = "its filesystem cannot be reached" if found and found[0] == "unreachable" else str(exc).splitlines()[0]
            note = (f"; its lock {redact(shown(self.uri))} stays ({why}): once that answers again, rerun with "
                    f"--force-unlock")
            if isinstance(error, UserError):  # the run's own one line, with what became of its lock
                raise UserError(f"{error}{note}") from error
            log.error("could not release the lock%s", note)
