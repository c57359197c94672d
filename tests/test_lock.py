"""One owner per output folder: the _LOCK marker, locally and on a local S3 server."""
import json
import os
import socket
import subprocess
import sys
import time

import pytest

from gio_spark.errors import UserError
from gio_spark.job import storage
from gio_spark.job.lock import LOCK_NAME, LockInfo, OutputLock


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def plant(output, host=None, pid=None, age_s=0.0, owner="other0run"):
    """A lock as another run would have left it."""
    started = time.time() - age_s
    info = {"owner": owner, "host": host or socket.gethostname(), "pid": os.getpid() if pid is None else pid,
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)), "started_epoch": started}
    storage.write_text(storage.join(str(output), LOCK_NAME), json.dumps(info))
    return info


def test_a_second_owner_is_refused_with_owner_host_and_start(tmp_path):
    first = OutputLock(str(tmp_path / "out"))
    first.acquire()
    with pytest.raises(UserError) as err:
        OutputLock(str(tmp_path / "out"), force=True).acquire()
    message = str(err.value)
    assert "in use by" in message and first.info.owner in message
    assert socket.gethostname() in message and first.info.started in message and "\n" not in message
    first.release()
    assert not (tmp_path / "out" / LOCK_NAME).exists()
    with OutputLock(str(tmp_path / "out")) as second:
        assert LockInfo.parse((tmp_path / "out" / LOCK_NAME).read_text()) == second.info


def test_a_lock_whose_process_is_gone_is_taken_over_only_with_force(tmp_path):
    gone = dead_pid()
    plant(tmp_path, pid=gone)
    with pytest.raises(UserError, match=rf"looks stale \(process {gone} is gone on this host\); rerun with --force-unlock"):
        OutputLock(str(tmp_path)).acquire()
    lock = OutputLock(str(tmp_path), force=True)
    lock.acquire()
    assert LockInfo.parse((tmp_path / LOCK_NAME).read_text()) == lock.info
    lock.release()
    assert not (tmp_path / LOCK_NAME).exists()


def test_age_decides_for_a_lock_of_another_host(tmp_path):
    plant(tmp_path, host="elsewhere.example", pid=1, age_s=60)
    with pytest.raises(UserError, match=r"in use by run other0run \(host elsewhere\.example, pid 1"):
        OutputLock(str(tmp_path), force=True).acquire()  # young and not ours to check: never forced
    plant(tmp_path, host="elsewhere.example", pid=1, age_s=3 * 3600)
    with pytest.raises(UserError, match=r"looks stale \(older than 2 h\)"):
        OutputLock(str(tmp_path), stale_after_s=2 * 3600).acquire()
    with OutputLock(str(tmp_path), stale_after_s=2 * 3600, force=True) as lock:
        assert LockInfo.parse((tmp_path / LOCK_NAME).read_text()).owner == lock.info.owner


def test_released_on_failure_but_never_someone_elses(tmp_path):
    with pytest.raises(RuntimeError, match="boom"):
        with OutputLock(str(tmp_path)):
            raise RuntimeError("boom")
    assert not (tmp_path / LOCK_NAME).exists()
    lock = OutputLock(str(tmp_path))
    lock.acquire()
    other = plant(tmp_path, owner="taker0ver")  # taken over while we ran
    with pytest.raises(RuntimeError, match="lost the lock .* run taker0ver"):
        lock.check()
    lock.release()
    assert json.loads((tmp_path / LOCK_NAME).read_text()) == other


def test_an_unreadable_lock_counts_as_stale(tmp_path):
    (tmp_path / LOCK_NAME).write_text("{half a lock")
    with pytest.raises(UserError, match=r"locked by an unreadable lock, which looks stale \(its content is not a lock\)"):
        OutputLock(str(tmp_path)).acquire()
    with OutputLock(str(tmp_path), force=True):
        pass


@pytest.fixture()
def s3(monkeypatch):
    pytest.importorskip("moto")
    import boto3
    from moto.server import ThreadedMotoServer

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": endpoint}.items():
        monkeypatch.setenv(key, value)
    client = boto3.client("s3", endpoint_url=endpoint)
    client.create_bucket(Bucket="gio")
    yield client
    server.stop()


def test_s3_lock_is_a_conditional_put(s3):
    assert storage.create_exclusive("s3://gio/x/_LOCK", b"one")
    assert not storage.create_exclusive("s3://gio/x/_LOCK", b"two")  # If-None-Match: * refused it
    assert s3.get_object(Bucket="gio", Key="x/_LOCK")["Body"].read() == b"one"
    first = OutputLock("s3a://gio/out/run")
    first.acquire()
    with pytest.raises(UserError, match=rf"output s3://gio/out/run is in use by run {first.info.owner}"):
        OutputLock("s3://gio/out/run").acquire()
    first.release()
    assert s3.list_objects_v2(Bucket="gio", Prefix="out/run/").get("KeyCount", 0) == 0
