"""One owner per output folder: the _LOCK marker, locally and on a local S3 server."""
import json
import os
import socket
import subprocess
import sys
import time

import pytest

from gio_spark.errors import UserError
from gio_spark.job.fs import FileSystem
from gio_spark.job.lock import LOCK_NAME, LockInfo, OutputLock

pytestmark = pytest.mark.spark


@pytest.fixture()
def fs(spark):
    return FileSystem(spark)


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def plant(output, host=None, pid=None, age_s=0.0, owner="other0run"):
    """A lock as another run would have left it, its heartbeat last renewed ``age_s`` ago."""
    started = time.time() - age_s
    info = {"owner": owner, "host": host or socket.gethostname(), "pid": os.getpid() if pid is None else pid,
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)), "started_epoch": started,
            "heartbeat_epoch": started}
    output.mkdir(parents=True, exist_ok=True)
    (output / LOCK_NAME).write_text(json.dumps(info))
    return info


def test_a_second_owner_is_refused_with_owner_host_and_start(fs, tmp_path):
    first = OutputLock(fs, str(tmp_path / "out"))
    first.acquire()
    with pytest.raises(UserError) as err:
        OutputLock(fs, str(tmp_path / "out"), force=True).acquire()
    message = str(err.value)
    assert "in use by" in message and first.info.owner in message
    assert socket.gethostname() in message and first.info.started in message and "\n" not in message
    first.release()
    assert not (tmp_path / "out" / LOCK_NAME).exists()
    with OutputLock(fs, str(tmp_path / "out")) as second:
        assert LockInfo.parse((tmp_path / "out" / LOCK_NAME).read_text()) == second.info


def test_a_lock_whose_process_is_gone_is_taken_over_only_with_force(fs, tmp_path):
    gone = dead_pid()
    plant(tmp_path, pid=gone)
    with pytest.raises(UserError, match=rf"looks stale \(process {gone} is gone on this host\); rerun with --force-unlock"):
        OutputLock(fs, str(tmp_path)).acquire()
    lock = OutputLock(fs, str(tmp_path), force=True)
    lock.acquire()
    assert LockInfo.parse((tmp_path / LOCK_NAME).read_text()) == lock.info
    lock.release()
    assert not (tmp_path / LOCK_NAME).exists()


def test_heartbeat_decides_for_a_lock_of_another_host(fs, tmp_path):
    plant(tmp_path, host="elsewhere.example", pid=1, age_s=60)
    with pytest.raises(UserError, match=r"in use by run other0run \(host elsewhere\.example, pid 1"):
        OutputLock(fs, str(tmp_path), force=True).acquire()  # young and not ours to check: never forced
    plant(tmp_path, host="elsewhere.example", pid=1, age_s=15 * 60)  # a retried attempt on another host
    with pytest.raises(UserError, match=r"looks stale \(its heartbeat stopped 15 min ago\)"):
        OutputLock(fs, str(tmp_path)).acquire()
    with OutputLock(fs, str(tmp_path), force=True) as lock:
        assert LockInfo.parse((tmp_path / LOCK_NAME).read_text()).owner == lock.info.owner


def test_a_running_owner_renews_its_heartbeat(fs, tmp_path):
    with OutputLock(fs, str(tmp_path), heartbeat_s=0.2) as lock:
        deadline = time.monotonic() + 30  # a loaded machine may run the heartbeat late: wait for it, not a fixed time
        while True:
            seen = LockInfo.parse((tmp_path / LOCK_NAME).read_text())
            if seen.heartbeat_epoch > seen.started_epoch + 0.5 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert seen.owner == lock.info.owner and seen.heartbeat_epoch > seen.started_epoch + 0.5
        with pytest.raises(UserError, match="is in use by"):  # alive: never stale, even when forced
            OutputLock(fs, str(tmp_path), stale_after_s=0.9, force=True).acquire()
    assert not (tmp_path / LOCK_NAME).exists()


def test_released_on_failure_but_never_someone_elses(fs, tmp_path):
    with pytest.raises(RuntimeError, match="boom"):
        with OutputLock(fs, str(tmp_path)):
            raise RuntimeError("boom")
    assert not (tmp_path / LOCK_NAME).exists()
    lock = OutputLock(fs, str(tmp_path))
    lock.acquire()
    other = plant(tmp_path, owner="taker0ver")  # taken over while we ran
    with pytest.raises(RuntimeError, match="lost the lock .* run taker0ver"):
        lock.check()
    lock.release()
    assert json.loads((tmp_path / LOCK_NAME).read_text()) == other


def test_an_unreadable_lock_counts_as_stale(fs, tmp_path):
    (tmp_path / LOCK_NAME).write_text("{half a lock")
    with pytest.raises(UserError, match=r"locked by an unreadable lock, which looks stale \(its content is not a lock\)"):
        OutputLock(fs, str(tmp_path)).acquire()
    with OutputLock(fs, str(tmp_path), force=True):
        pass
