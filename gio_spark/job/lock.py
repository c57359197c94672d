"""One owner per output folder: the marker ``<output>/_LOCK``.

A run creates the marker atomically where the storage allows it (local: O_CREAT|O_EXCL; S3:
a conditional put) and removes it when it ends, also on failure. A second run on the same
output refuses with one line naming the owner. A marker left by a killed run is stale when it
is older than ``stale_after_s`` or when its process is gone on this same host; ``force=True``
(``--force-unlock``) takes a stale marker over, never a live one.
"""
from __future__ import annotations

import json
import logging
import os
import socket
import time
import uuid
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Optional

from ..errors import UserError
from . import storage

log = logging.getLogger(__name__)

LOCK_NAME = "_LOCK"
DEFAULT_STALE_HOURS = 24.0


@dataclass(frozen=True)
class LockInfo:
    owner: str
    host: str
    pid: int
    started: str  # ISO 8601, UTC
    started_epoch: float

    @classmethod
    def mine(cls) -> "LockInfo":
        now = time.time()
        started = datetime.fromtimestamp(now, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        return cls(uuid.uuid4().hex[:12], socket.gethostname(), os.getpid(), started, now)

    @classmethod
    def parse(cls, text: str) -> Optional["LockInfo"]:
        try:
            data = json.loads(text)
            return cls(str(data["owner"]), str(data["host"]), int(data["pid"]), str(data["started"]),
                       float(data["started_epoch"]))
        except (ValueError, KeyError, TypeError):
            return None

    @property
    def unreadable(self) -> bool:
        return self.pid < 0

    def describe(self) -> str:
        if self.unreadable:
            return "an unreadable lock"
        return f"run {self.owner} (host {self.host}, pid {self.pid}, started {self.started})"


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
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
    age = (now if now is not None else time.time()) - info.started_epoch
    if age > stale_after_s:
        return f"older than {stale_after_s / 3600:g} h"
    if info.host == socket.gethostname() and not _pid_alive(info.pid):
        return f"process {info.pid} is gone on this host"
    return None


class OutputLock:
    """``with OutputLock(output): ...`` holds the output for one run."""

    def __init__(self, output: str, stale_after_s: float = DEFAULT_STALE_HOURS * 3600, force: bool = False) -> None:
        self.output = output
        self.uri = storage.join(output, LOCK_NAME)
        self.stale_after_s = stale_after_s
        self.force = force
        self.info = LockInfo.mine()
        self.held = False

    def _read(self) -> Optional[LockInfo]:
        try:
            text = storage.read_text(self.uri)
        except UserError:  # removed in between
            return None
        info = LockInfo.parse(text)
        if info is None:  # not a lock this package wrote: stale, so --force-unlock can clear it
            return LockInfo("", "", -1, "", 0.0)
        return info

    def acquire(self) -> None:
        payload = json.dumps(asdict(self.info)).encode()
        for _ in range(3):
            if storage.create_exclusive(self.uri, payload):
                if self._read() == self.info:  # on storage without atomic create: the last writer wins
                    self.held = True
                    log.info("locked %s as %s", self.output, self.info.describe())
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
                storage.delete(self.uri)
        raise UserError(f"output {self.output}: could not take the lock {self.uri}; another run is starting there")

    def check(self) -> None:
        """Raise unless this run still holds the lock (before declaring the output complete)."""
        current = self._read()
        if current != self.info:
            who = current.describe() if current else "nobody"
            raise RuntimeError(f"lost the lock on {self.output} (now held by {who}); not marking it complete")

    def release(self) -> None:
        if not self.held:
            return
        self.held = False
        current = self._read()
        if current == self.info:
            storage.delete(self.uri)
        else:
            log.warning("lock of %s was taken over by %s; leaving it", self.output,
                        current.describe() if current else "nobody")

    def __enter__(self) -> "OutputLock":
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()
