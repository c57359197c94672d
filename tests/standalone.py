"""A Spark standalone cluster on 127.0.0.1 for tests: a master and workers, each its own JVM,
started from the installed pyspark's launchers and stopped (with their executors) on exit."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Optional


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spark_home(python: str = sys.executable) -> Path:
    out = subprocess.run([python, "-c", "import pyspark, os; print(os.path.dirname(pyspark.__file__))"],
                         check=True, capture_output=True, text=True)
    return Path(out.stdout.strip())


@dataclass
class Cluster:
    url: str  # spark://127.0.0.1:PORT
    web: str  # http://127.0.0.1:PORT of the master's UI
    home: Path  # SPARK_HOME of the pyspark that runs it
    work: Path  # the workers' work dirs (executor logs under <work>/<worker>/<app>/<executor>/)
    procs: list = field(default_factory=list)

    def state(self) -> dict:
        with urllib.request.urlopen(f"{self.web}/json/", timeout=5) as resp:
            return json.load(resp)

    def apps(self) -> list[dict]:
        s = self.state()
        return s.get("activeapps", []) + s.get("completedapps", [])

    def executor_logs(self, app_id: str) -> dict[str, str]:
        """stderr of each executor of an application, by '<worker>/<executor id>'."""
        logs = {}
        for path in sorted(self.work.glob(f"*/{app_id}/*/stderr")):
            logs[f"{path.parts[-4]}/{path.parent.name}"] = path.read_text(errors="replace")
        return logs

    def submit(self, args: list[str], env: Optional[dict] = None, timeout: float = 600) -> subprocess.CompletedProcess:
        """spark-submit of this cluster's Spark (args name the master)."""
        cmd = [str(self.home / "bin" / "spark-submit"), *args]
        return subprocess.run(cmd, env={**os.environ, **(env or {})}, capture_output=True, text=True, timeout=timeout)


def _wait(predicate, what: str, timeout: float = 60) -> None:
    end = time.time() + timeout
    while time.time() < end:
        try:
            if predicate():
                return
        except (OSError, ValueError):  # not listening yet, or its UI answers with a page, not JSON, while it starts
            pass
        time.sleep(0.5)
    raise TimeoutError(f"standalone cluster: {what} not ready after {timeout:.0f} s")


@contextmanager
def standalone_cluster(tmp: Path, workers: list[dict], python: str = sys.executable) -> Iterator[Cluster]:
    """Start a master and one worker per entry of ``workers`` (keys: cores, memory, gpus: list
    of fake GPU addresses the worker advertises through a discovery script)."""
    home = spark_home(python)
    env = {
        **os.environ,
        "SPARK_HOME": str(home),
        "SPARK_LOCAL_IP": "127.0.0.1",
        "SPARK_LOG_DIR": str(tmp / "logs"),
        "SPARK_NO_DAEMONIZE": "1",
        "PYSPARK_PYTHON": python,
    }
    port, web_port = free_port(), free_port()
    cluster = Cluster(f"spark://127.0.0.1:{port}", f"http://127.0.0.1:{web_port}", home, tmp / "work")
    spark_class = str(home / "bin" / "spark-class")
    (tmp / "logs").mkdir(parents=True, exist_ok=True)

    def start(name: str, args: list[str], extra_env: Optional[dict] = None):
        log = open(tmp / "logs" / f"{name}.out", "w")
        proc = subprocess.Popen([spark_class, *args], env={**env, **(extra_env or {})}, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
        cluster.procs.append(proc)
        return proc

    def stop_on_sigterm(signum, frame):  # a killed test run still stops its cluster (finally below)
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, stop_on_sigterm)
    try:
        start("master", ["org.apache.spark.deploy.master.Master", "--host", "127.0.0.1", "--port", str(port),
                         "--webui-port", str(web_port)])
        _wait(lambda: cluster.state().get("status") == "ALIVE", "master")
        for i, spec in enumerate(workers):
            wdir = cluster.work / f"worker{i}"
            wdir.mkdir(parents=True, exist_ok=True)
            opts = []
            if spec.get("gpus"):
                script = tmp / f"gpus{i}.sh"
                addrs = ",".join(f'"{a}"' for a in spec["gpus"])
                script.write_text(f'#!/bin/sh\necho \'{{"name": "gpu", "addresses": [{addrs}]}}\'\n')
                script.chmod(0o755)
                opts = [f"-Dspark.worker.resource.gpu.amount={len(spec['gpus'])}",
                        f"-Dspark.worker.resource.gpu.discoveryScript={script}"]
            start(f"worker{i}", ["org.apache.spark.deploy.worker.Worker", cluster.url, "--host", "127.0.0.1",
                                 "--cores", str(spec.get("cores", 1)), "--memory", spec.get("memory", "2g"),
                                 "--webui-port", str(free_port()), "--work-dir", str(wdir)],
                  {"SPARK_WORKER_OPTS": " ".join(opts)})
        _wait(lambda: sum(w.get("state") == "ALIVE" for w in cluster.state().get("workers", [])) == len(workers),
              f"{len(workers)} workers")
        yield cluster
    finally:
        signal.signal(signal.SIGTERM, previous)
        for proc in reversed(cluster.procs):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in cluster.procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
